package dev.liteship.demo;

import android.os.Build;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Locale;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;
import org.tensorflow.lite.nnapi.NnApiDelegate;

/** A LiteRT Interpreter with the requested delegate (CPU = XNNPACK, GPU, NNAPI). Not thread-safe. */
public final class LiteRtSession implements Session {
    private final Interpreter interpreter;
    private final GpuDelegate gpu;
    private final NnApiDelegate nnapi;

    private LiteRtSession(Interpreter interpreter, GpuDelegate gpu, NnApiDelegate nnapi) {
        this.interpreter = interpreter;
        this.gpu = gpu;
        this.nnapi = nnapi;
    }

    /**
     * @param model a MappedByteBuffer or a direct ByteBuffer in native order; must stay unchanged
     *     while the session lives
     * @throws DelegateUnavailableException when the delegate cannot be created here
     */
    public static LiteRtSession open(ByteBuffer model, String delegate, int threads) throws Exception {
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        GpuDelegate gpu = null;
        NnApiDelegate nnapi = null;
        try {
            if ("gpu".equals(delegate)) {
                CompatibilityList compatibility = new CompatibilityList();
                try {
                    if (!compatibility.isDelegateSupportedOnThisDevice()) {
                        throw new DelegateUnavailableException(
                                "the LiteRT GPU delegate does not support this device (CompatibilityList)");
                    }
                } finally {
                    compatibility.close();
                }
                gpu = new GpuDelegate();
                options.addDelegate(gpu);
            } else if ("nnapi".equals(delegate)) {
                if (Build.VERSION.SDK_INT < 27) {
                    throw new DelegateUnavailableException("NNAPI needs Android 8.1 (API 27); this device has API "
                            + Build.VERSION.SDK_INT);
                }
                nnapi = new NnApiDelegate();
                options.addDelegate(nnapi);
            } else if (!"cpu".equals(delegate)) {
                throw new DelegateUnavailableException("unknown delegate '" + delegate + "'");
            }
        } catch (DelegateUnavailableException e) {
            closeQuietly(gpu, nnapi);
            throw e;
        } catch (Throwable t) {   // missing native library (UnsatisfiedLinkError), driver errors, ...
            closeQuietly(gpu, nnapi);
            throw new DelegateUnavailableException("the " + delegate + " delegate cannot be created: " + t, t);
        }
        try {
            Interpreter interpreter = new Interpreter(model, options);
            interpreter.allocateTensors();
            return new LiteRtSession(interpreter, gpu, nnapi);
        } catch (Throwable t) {
            closeQuietly(gpu, nnapi);
            if (t instanceof Exception) {
                throw (Exception) t;
            }
            throw new RuntimeException(t.toString(), t);
        }
    }

    @Override
    public TensorSpec input() {
        return spec(interpreter.getInputTensor(0));
    }

    @Override
    public int outputCount() {
        return interpreter.getOutputTensorCount();
    }

    @Override
    public void run(ByteBuffer input) {
        input.rewind();
        // Outputs are read from the tensors afterwards (their shapes are final only after invoke).
        interpreter.runForMultipleInputsOutputs(new Object[] {input}, new HashMap<Integer, Object>());
    }

    @Override
    public TensorSpec output(int i) {
        return spec(interpreter.getOutputTensor(i));
    }

    @Override
    public ByteBuffer outputData(int i) {
        ByteBuffer src = interpreter.getOutputTensor(i).asReadOnlyBuffer();
        src.rewind();
        ByteBuffer copy = ByteBuffer.allocate(src.remaining()).order(ByteOrder.nativeOrder());
        copy.put(src);
        copy.rewind();
        return copy;
    }

    @Override
    public void close() {
        interpreter.close();
        closeQuietly(gpu, nnapi);
    }

    /** Lower-cased DataType name: FLOAT32 -> float32, UINT8 -> uint8 (the protocol's dtype names). */
    static String dtype(DataType type) {
        return type.toString().toLowerCase(Locale.ROOT);
    }

    private static TensorSpec spec(Tensor t) {
        Tensor.QuantizationParams q = t.quantizationParams();
        return new TensorSpec(t.name(), t.index(), dtype(t.dataType()), t.shape(),
                q == null ? 0f : q.getScale(), q == null ? 0 : q.getZeroPoint());
    }

    private static void closeQuietly(GpuDelegate gpu, NnApiDelegate nnapi) {
        try {
            if (gpu != null) {
                gpu.close();
            }
        } catch (Throwable ignored) {
            // closing is best effort
        }
        try {
            if (nnapi != null) {
                nnapi.close();
            }
        } catch (Throwable ignored) {
            // closing is best effort
        }
    }
}
