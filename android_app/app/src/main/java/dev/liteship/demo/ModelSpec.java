package dev.liteship.demo;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** What the app reads from the model's TFLite metadata (not from tensor positions). */
public final class ModelSpec {
    public final boolean hasMetadata;
    /** Metadata name of every output tensor, in tensor order; null where the metadata has none. */
    public final List<String> outputNames;
    /** Lines of the TENSOR_VALUE_LABELS file of the category output; empty when there is none. */
    public final List<String> labels;
    /** NormalizationOptions of input 0 (per channel or one value); null when absent. */
    public final float[] mean;
    public final float[] std;
    /**
     * MediaPipe's DETECTOR_METADATA (anchors, box-coder scales) of a model of the "gpu" variant's form
     * (outputs location + score, no TFLite_Detection_PostProcess): the app decodes its outputs with
     * {@link RawSsdDecoder}. Null for a model with the postprocess op.
     */
    public final DetectorMetadata detector;

    public ModelSpec(boolean hasMetadata, List<String> outputNames, List<String> labels,
                     float[] mean, float[] std) {
        this(hasMetadata, outputNames, labels, mean, std, null);
    }

    public ModelSpec(boolean hasMetadata, List<String> outputNames, List<String> labels,
                     float[] mean, float[] std, DetectorMetadata detector) {
        this.detector = detector;
        this.hasMetadata = hasMetadata;
        this.outputNames = Collections.unmodifiableList(new ArrayList<>(outputNames));
        this.labels = Collections.unmodifiableList(new ArrayList<>(labels));
        this.mean = mean == null ? null : mean.clone();
        this.std = std == null ? null : std.clone();
    }

    public static ModelSpec withoutMetadata() {
        return new ModelSpec(false, new ArrayList<String>(), new ArrayList<String>(), null, null);
    }

    /** The gpu variant's form: raw heads decoded by the app, not the postprocess op's four outputs. */
    public boolean isRawSsd() {
        return detector != null;
    }

    public boolean hasNormalization() {
        return mean != null && std != null && mean.length > 0 && std.length > 0;
    }

    /** The label of a class index, or null when the label file has no such line. */
    public String label(int classIndex) {
        return classIndex >= 0 && classIndex < labels.size() ? labels.get(classIndex) : null;
    }
}
