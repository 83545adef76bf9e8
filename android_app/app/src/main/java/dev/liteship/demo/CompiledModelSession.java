package dev.liteship.demo;

import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.CompiledModel;
import com.google.ai.edge.litert.TensorBuffer;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The "compiled" engine: LiteRT 2.x CompiledModel (com.google.ai.edge.litert) on "cpu" or "gpu".
 *
 * <ul>
 *   <li>"gpu" asks for the GPU accelerator alone; when it cannot compile the model (no GPU, or an
 *       op it refuses, e.g. TFLite_Detection_PostProcess: LiteRT#7936) the session falls back to
 *       the CPU and says so in acceleratorUsed()/fallbackReason(), the runtime's own words;
 *   <li>buffers are created by signature name (the Kotlin API cannot list names: {@link
 *       SignatureReader}); outputs are answered in the model's output order, like the Interpreter's.
 *       For the "gpu" variant (no postprocess op, so the GPU accelerator compiles the whole graph)
 *       those names are "location" and "score": its raw heads are read by name and decoded by
 *       {@link RawSsdDecoder} with the model's DETECTOR_METADATA;
 *   <li>before any run, {@link OutputGuard} compares each output buffer with what the Interpreter
 *       allocates for that tensor: a model whose outputs are stored without static shapes is refused
 *       instead of corrupting the app's memory.
 * </ul>
 */
public final class CompiledModelSession implements Session {
    private final CompiledModel model;
    private final ModelSignature signature;
    private final Map<String, TensorBuffer> inputs;
    private final Map<String, TensorBuffer> outputs;
    private final TensorSpec inputSpec;
    private final TensorSpec[] outputSpecs;
    private final String[] outputNames;
    private final String used;
    private final String fallback;

    private CompiledModelSession(CompiledModel model, ModelSignature signature, Map<String, TensorBuffer> inputs,
                                 Map<String, TensorBuffer> outputs, TensorSpec inputSpec, TensorSpec[] outputSpecs,
                                 String[] outputNames, String used, String fallback) {
        this.model = model;
        this.signature = signature;
        this.inputs = inputs;
        this.outputs = outputs;
        this.inputSpec = inputSpec;
        this.outputSpecs = outputSpecs;
        this.outputNames = outputNames;
        this.used = used;
        this.fallback = fallback;
    }

    public static CompiledModelSession open(File modelFile, ByteBuffer mapped, String accelerator, int threads)
            throws Exception {
        if (!Protocol.contains(Protocol.COMPILED_ACCELERATORS, accelerator)) {
            throw new DelegateUnavailableException("the compiled engine runs on cpu or gpu, not " + accelerator);
        }
        ModelSignature signature = SignatureReader.read(mapped);
        // The Interpreter on the same bytes: input 0's spec (CompiledModel's Kotlin types have no
        // uint8) and the bytes each output really needs once the postprocess op has sized it.
        TensorSpec inputSpec;
        TensorSpec[] specs;
        long[] needed;
        LiteRtSession probe = LiteRtSession.open(mapped, "cpu", 1);
        try {
            inputSpec = probe.input();
            specs = new TensorSpec[probe.outputCount()];
            needed = new long[specs.length];
            for (int i = 0; i < specs.length; i++) {
                specs[i] = probe.output(i);
                needed[i] = probe.outputBytes(i);
            }
        } finally {
            probe.close();
        }
        String[] names = new String[specs.length];
        String[] tensorNames = new String[specs.length];
        for (int i = 0; i < specs.length; i++) {
            int k = signature.outputFor(specs[i].index);
            if (k < 0) {
                throw new ProtocolException("output " + i + " ('" + specs[i].name + "') is not in signature '"
                        + signature.key + "'");
            }
            names[i] = signature.outputNames[k];
            tensorNames[i] = specs[i].name;
        }
        String used = accelerator;
        String fallback = null;
        CompiledModel model;
        try {
            model = CompiledModel.create(modelFile.getAbsolutePath(), options(accelerator, threads));
        } catch (Exception e) {
            if (!"gpu".equals(accelerator)) {
                throw e;
            }
            fallback = "the GPU accelerator could not compile the model: " + e;
            used = "cpu";
            model = CompiledModel.create(modelFile.getAbsolutePath(), options("cpu", threads));
        }
        Map<String, TensorBuffer> inputs = new HashMap<>();
        Map<String, TensorBuffer> outputs = new LinkedHashMap<>();
        try {
            inputs.put(signature.inputName, model.createInputBuffer(signature.inputName, signature.key));
            long[] have = new long[names.length];
            for (int i = 0; i < names.length; i++) {
                outputs.put(names[i], model.createOutputBuffer(names[i], signature.key));
                have[i] = model.getOutputBufferRequirements(names[i], signature.key).getBufferSize();
            }
            String problem = OutputGuard.problem(tensorNames, have, needed);
            if (problem != null) {
                throw new ProtocolException(problem);
            }
            return new CompiledModelSession(model, signature, inputs, outputs, inputSpec, specs, names, used, fallback);
        } catch (Exception e) {
            closeAll(inputs);
            closeAll(outputs);
            model.close();
            throw e;
        }
    }

    private static CompiledModel.Options options(String accelerator, int threads) {
        CompiledModel.Options options = new CompiledModel.Options("gpu".equals(accelerator) ? Accelerator.GPU
                : Accelerator.CPU);
        options.setCpuOptions(new CompiledModel.CpuOptions(threads, null, null));
        return options;
    }

    @Override
    public TensorSpec input() {
        return inputSpec;
    }

    @Override
    public int outputCount() {
        return outputSpecs.length;
    }

    @Override
    public void run(ByteBuffer input) throws Exception {
        ByteBuffer b = input.duplicate().order(ByteOrder.nativeOrder());
        b.rewind();
        TensorBuffer buffer = inputs.get(signature.inputName);
        switch (inputSpec.dtype) {
            case "float32": {
                float[] values = new float[b.remaining() / 4];
                b.asFloatBuffer().get(values);
                buffer.writeFloat(values);
                break;
            }
            case "uint8":
            case "int8": {
                byte[] values = new byte[b.remaining()];
                b.get(values);
                buffer.writeInt8(values);   // a byte copy: the Kotlin API has no uint8 writer
                break;
            }
            default:
                throw new ProtocolException("input 0 is " + inputSpec.dtype
                        + "; the compiled engine feeds float32, uint8 or int8 inputs");
        }
        model.run(inputs, outputs, signature.key);
    }

    @Override
    public TensorSpec output(int i) {
        return outputSpecs[i];
    }

    @Override
    public ByteBuffer outputData(int i) {
        TensorBuffer buffer = outputs.get(outputNames[i]);
        try {
            switch (outputSpecs[i].dtype) {
                case "float32": {
                    float[] v = buffer.readFloat();
                    ByteBuffer out = ByteBuffer.allocate(4 * v.length).order(ByteOrder.nativeOrder());
                    out.asFloatBuffer().put(v);
                    return out;
                }
                case "int32": {
                    int[] v = buffer.readInt();
                    ByteBuffer out = ByteBuffer.allocate(4 * v.length).order(ByteOrder.nativeOrder());
                    out.asIntBuffer().put(v);
                    return out;
                }
                case "uint8":
                case "int8":
                    return ByteBuffer.wrap(buffer.readInt8()).order(ByteOrder.nativeOrder());
                default:
                    throw new IllegalStateException("output " + i + " is " + outputSpecs[i].dtype
                            + ", which the compiled engine does not read");
            }
        } catch (com.google.ai.edge.litert.LiteRtException e) {
            throw new IllegalStateException("reading output " + i + " ('" + outputSpecs[i].name + "'): " + e, e);
        }
    }

    @Override
    public String acceleratorUsed() {
        return used;
    }

    @Override
    public String fallbackReason() {
        return fallback;
    }

    @Override
    public String runtime() {
        return "LiteRT " + BuildConfig.LITERT_VERSION + " CompiledModel";
    }

    @Override
    public void close() {
        closeAll(inputs);
        closeAll(outputs);
        model.close();
    }

    private static void closeAll(Map<String, TensorBuffer> buffers) {
        for (TensorBuffer b : buffers.values()) {
            try {
                b.close();
            } catch (Throwable ignored) {
                // closing is best effort
            }
        }
    }
}
