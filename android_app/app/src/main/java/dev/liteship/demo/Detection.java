package dev.liteship.demo;

/** One detection: box [ymin, xmin, ymax, xmax] normalized to the image the model saw. */
public final class Detection {
    public final float[] box;
    public final int classIndex;
    /** The label file's line for classIndex, or null when there is none. */
    public final String label;
    public final float score;

    public Detection(float[] box, int classIndex, String label, float score) {
        this.box = box.clone();
        this.classIndex = classIndex;
        this.label = label;
        this.score = score;
    }
}
