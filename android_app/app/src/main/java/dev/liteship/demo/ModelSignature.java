package dev.liteship.demo;

/**
 * Signature 0 of the model as the flatbuffer stores it: CompiledModel's Kotlin API names inputs and
 * outputs by signature name but cannot list them, so the app reads the names (and the tensor each
 * names) from the model itself.
 */
public final class ModelSignature {
    public final String key;
    public final String inputName;
    /** Signature output names, and the tensor index each one names. */
    public final String[] outputNames;
    public final int[] outputTensors;

    public ModelSignature(String key, String inputName, String[] outputNames, int[] outputTensors) {
        this.key = key;
        this.inputName = inputName;
        this.outputNames = outputNames.clone();
        this.outputTensors = outputTensors.clone();
    }

    /** The signature output naming tensor {@code tensorIndex}, or -1. */
    public int outputFor(int tensorIndex) {
        for (int k = 0; k < outputTensors.length; k++) {
            if (outputTensors[k] == tensorIndex) {
                return k;
            }
        }
        return -1;
    }
}
