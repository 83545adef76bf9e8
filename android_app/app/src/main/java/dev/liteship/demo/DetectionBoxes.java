package dev.liteship.demo;

/**
 * A task API's detection (MediaPipe: a pixel RectF and a category) as the protocol's detection: box
 * [ymin, xmin, ymax, xmax] normalized by the image size (not clamped), class index from the
 * category's index, or from its name in the model's label file when the index is unset (-1, as
 * MediaPipe answers for models with labels).
 */
public final class DetectionBoxes {
    private DetectionBoxes() {}

    public static Detection fromPixels(float left, float top, float right, float bottom, int width, int height,
                                       int index, String name, float score, ModelSpec spec) throws ProtocolException {
        if (width <= 0 || height <= 0) {
            throw new ProtocolException("the image has no size: " + width + "x" + height);
        }
        int classIndex = index >= 0 ? index : spec.labels.indexOf(name);
        if (classIndex < 0) {
            throw new ProtocolException("the detector returned category '" + name + "' with no index, and the "
                    + "model's labels do not contain it");
        }
        String label = name != null && !name.isEmpty() ? name : spec.label(classIndex);
        float[] box = {top / height, left / width, bottom / height, right / width};
        return new Detection(box, classIndex, label, score);
    }
}
