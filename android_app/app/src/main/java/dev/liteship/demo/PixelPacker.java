package dev.liteship.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The app's input normalization, shared by the live camera path and the validation path:
 * ARGB pixels already scaled to the input size become the bytes of input 0.
 *
 * <ul>
 *   <li>uint8 input: the raw R, G, B bytes (the quantized model carries its normalization in the
 *       input's quantization parameters; this is what the Task Library feeds too);
 *   <li>float32 input: (value - mean[c]) / std[c] with the metadata's NormalizationOptions
 *       (one value for all channels or one per channel); no metadata means no guess, an error;
 *   <li>int8 input: the float value above quantized with the input's scale and zero point.
 * </ul>
 */
public final class PixelPacker {
    private PixelPacker() {}

    /** {height, width} of an NHWC RGB input [1, H, W, 3]. */
    public static int[] inputSize(TensorSpec input) throws ProtocolException {
        int[] s = input.shape;
        if (s.length != 4 || s[0] != 1 || s[3] != 3 || s[1] <= 0 || s[2] <= 0) {
            throw new ProtocolException("input 0 has shape " + java.util.Arrays.toString(s)
                    + "; an image detector needs [1, height, width, 3] (RGB)");
        }
        return new int[] {s[1], s[2]};
    }

    public static ByteBuffer pack(int[] argb, int width, int height, TensorSpec input, ModelSpec spec)
            throws ProtocolException {
        int[] hw = inputSize(input);
        if (hw[0] != height || hw[1] != width) {
            throw new ProtocolException("pixels are " + width + "x" + height + ", input 0 needs "
                    + hw[1] + "x" + hw[0]);
        }
        if (argb.length < width * height) {
            throw new ProtocolException("pixel buffer too small: " + argb.length);
        }
        int n = width * height;
        switch (input.dtype) {
            case "uint8": {
                ByteBuffer out = ByteBuffer.allocateDirect(n * 3).order(ByteOrder.nativeOrder());
                for (int i = 0; i < n; i++) {
                    int p = argb[i];
                    out.put((byte) ((p >> 16) & 0xff)).put((byte) ((p >> 8) & 0xff)).put((byte) (p & 0xff));
                }
                out.rewind();
                return out;
            }
            case "float32": {
                requireNormalization(spec, input);
                ByteBuffer out = ByteBuffer.allocateDirect(n * 3 * 4).order(ByteOrder.nativeOrder());
                for (int i = 0; i < n; i++) {
                    int p = argb[i];
                    out.putFloat(normalize((p >> 16) & 0xff, 0, spec));
                    out.putFloat(normalize((p >> 8) & 0xff, 1, spec));
                    out.putFloat(normalize(p & 0xff, 2, spec));
                }
                out.rewind();
                return out;
            }
            case "int8": {
                requireNormalization(spec, input);
                if (!(input.scale > 0)) {
                    throw new ProtocolException("int8 input 0 has no quantization scale");
                }
                ByteBuffer out = ByteBuffer.allocateDirect(n * 3).order(ByteOrder.nativeOrder());
                for (int i = 0; i < n; i++) {
                    int p = argb[i];
                    out.put(quantize(normalize((p >> 16) & 0xff, 0, spec), input));
                    out.put(quantize(normalize((p >> 8) & 0xff, 1, spec), input));
                    out.put(quantize(normalize(p & 0xff, 2, spec), input));
                }
                out.rewind();
                return out;
            }
            default:
                throw new ProtocolException("input 0 is " + input.dtype
                        + "; the app feeds images to uint8, int8 or float32 inputs only");
        }
    }

    static float normalize(int value, int channel, ModelSpec spec) {
        float mean = spec.mean[Math.min(channel, spec.mean.length - 1)];
        float std = spec.std[Math.min(channel, spec.std.length - 1)];
        return (value - mean) / std;
    }

    static byte quantize(float value, TensorSpec input) {
        long q = Math.round(value / input.scale) + input.zeroPoint;
        return (byte) Math.max(-128, Math.min(127, q));
    }

    private static void requireNormalization(ModelSpec spec, TensorSpec input) throws ProtocolException {
        if (!spec.hasNormalization()) {
            throw new ProtocolException("input 0 is " + input.dtype + " but the model metadata has no "
                    + "NormalizationOptions (mean/std); write the metadata with `liteship metadata`");
        }
        for (float s : spec.std) {
            if (!(s != 0) || Float.isNaN(s)) {
                throw new ProtocolException("NormalizationOptions std contains 0 or NaN");
            }
        }
    }
}
