package dev.liteship.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Locale;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.TensorFlowLite;

/**
 * The "interpreter" engine: LiteRT's Interpreter (org.tensorflow.lite.Interpreter, kept in LiteRT 2.x
 * for compatibility). In LiteRT 2.x it runs on the CPU only (XNNPACK): its Options have no delegates,
 * so "gpu" and "nnapi" are unavailable here, said so, never silently run on the CPU. Not thread-safe.
 */
public final class LiteRtSession implements Session {
    static final String NO_DELEGATES = "LiteRT 2.x's Interpreter runs on the CPU only (it has no GPU or NNAPI "
            + "delegates); run the compiled engine (CompiledModel) on gpu instead";

    private final Interpreter interpreter;

    private LiteRtSession(Interpreter interpreter) {
        this.interpreter = interpreter;
    }

    /**
     * @param model a MappedByteBuffer or a direct ByteBuffer in native order; must stay unchanged
     *     while the session lives
     * @throws DelegateUnavailableException for "gpu" and "nnapi"
     */
    public static LiteRtSession open(ByteBuffer model, String delegate, int threads) throws Exception {
        if (!"cpu".equals(delegate)) {
            throw new DelegateUnavailableException(NO_DELEGATES + " (asked for " + delegate + ")");
        }
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        Interpreter interpreter = new Interpreter(model, options);
        try {
            interpreter.allocateTensors();
        } catch (RuntimeException e) {
            interpreter.close();
            throw e;
        }
        return new LiteRtSession(interpreter);
    }

    @Override
    public TensorSpec input() {
        return spec(interpreter.getInputTensor(0));
    }

    @Override
    public int outputCount() {
        return interpreter.getOutputTensorCount();
    }

    /** Bytes the Interpreter allocated for output i (after allocateTensors: the op's real size). */
    long outputBytes(int i) {
        return interpreter.getOutputTensor(i).numBytes();
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
    public String runtime() {
        return "LiteRT " + BuildConfig.LITERT_VERSION + " Interpreter";
    }

    @Override
    public void close() {
        interpreter.close();
    }

    /** Lower-cased DataType name: FLOAT32 -> float32, UINT8 -> uint8 (the protocol's dtype names). */
    static String dtype(DataType type) {
        return type.toString().toLowerCase(Locale.ROOT);
    }

    static TensorSpec spec(Tensor t) {
        Tensor.QuantizationParams q = t.quantizationParams();
        return new TensorSpec(t.name(), t.index(), dtype(t.dataType()), t.shape(),
                q == null ? 0f : q.getScale(), q == null ? 0 : q.getZeroPoint());
    }

    /** The native runtime's own version string, or "unknown". */
    static String nativeVersion() {
        try {
            return TensorFlowLite.runtimeVersion();
        } catch (Throwable t) {
            return "unknown";
        }
    }
}
