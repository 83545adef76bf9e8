package dev.liteship.demo;

import java.util.Arrays;

/** What the runtime says about one tensor, in protocol terms (dtype as in the schema). */
public final class TensorSpec {
    public final String name;
    /** The tensor's index in the model (what the runtime's tensor index() returns). */
    public final int index;
    public final String dtype;
    public final int[] shape;
    /** Quantization of the tensor; scale 0 when it is not quantized. */
    public final float scale;
    public final int zeroPoint;

    public TensorSpec(String name, int index, String dtype, int[] shape, float scale, int zeroPoint) {
        this.name = name == null ? "" : name;
        this.index = index;
        this.dtype = dtype;
        this.shape = shape == null ? new int[0] : shape.clone();
        this.scale = scale;
        this.zeroPoint = zeroPoint;
    }

    public long numElements() {
        return Dtypes.numElements(shape);
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
