package dev.liteship.demo;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.Charset;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Serves one validation request (schema {@code liteship.device.request} v1) and writes the result
 * ({@code liteship.device.result} v1) next to it. Plain Java + org.json: the device specifics come
 * in through {@link Platform}, so the same code runs in the desktop test harness.
 *
 * <p>Every failure lands in the result, never in a crash: a request or model problem makes
 * {@code status: "error"} with {@code error{stage,type,message}}; a delegate that cannot be created
 * is {@code status: "unavailable"}; a delegate that fails is {@code status: "error"}; an input that
 * fails carries its own {@code error} and the other inputs still run.
 */
public final class ValidationRunner {
    /** Progress and failures (android.util.Log on the phone). */
    public interface Log {
        void info(String message);

        void error(String message, Throwable t);
    }

    private static final Charset UTF8 = Charset.forName("UTF-8");

    private final Platform platform;
    private final DeviceFacts device;
    private final String appVersion;
    private final String schemaText;
    private final Log log;

    /**
     * @param schemaText the packaged protocol schema (checked against this code first), or null
     */
    public ValidationRunner(Platform platform, DeviceFacts device, String appVersion, String schemaText, Log log) {
        this.platform = platform;
        this.device = device;
        this.appVersion = appVersion;
        this.schemaText = schemaText;
        this.log = log;
    }

    /** Runs the request and writes result.json into the request's folder; returns the document. */
    public JSONObject run(File requestFile) {
        File runDir = requestFile.getAbsoluteFile().getParentFile();
        JSONObject doc = null;
        String text;
        try {
            doc = serve(requestFile, runDir);
            text = doc.toString();
        } catch (Throwable t) {   // even building the document failed (e.g. out of memory)
            log.error("building the result failed", t);
            doc = null;
            text = null;
        }
        try {
            if (text == null) {
                throw new IOException("the result document could not be built");
            }
            File written = ResultWriter.writeAtomically(runDir, text);
            log.info("wrote " + written);
            return doc;
        } catch (Throwable t) {
            log.error("writing the result failed", t);
            // last resort: a small document that at least says what happened
            try {
                JSONObject small = base(runDir.getName(), ResultWriter.utcNow());
                small.put("status", "error");
                small.put("error", ResultWriter.error(Protocol.STAGE_WRITE, t));
                small.put("finished_at", ResultWriter.utcNow());
                ResultWriter.writeAtomically(runDir, small.toString());
                return small;
            } catch (Throwable again) {
                log.error("writing the error result failed too", again);
                return doc;
            }
        }
    }

    private JSONObject serve(File requestFile, File runDir) throws JSONException {
        String started = ResultWriter.utcNow();
        JSONObject doc = base(runDir.getName(), started);
        try {
            ValidationRequest request = loadRequest(requestFile);
            doc.put("run_id", request.runId);
            execute(request, runDir, doc);
            doc.put("status", "ok");
        } catch (ResultWriter.StageException e) {
            log.error("run failed at stage " + e.stage, e.getCause());
            doc.put("status", "error");
            doc.put("error", ResultWriter.error(e.stage, e));
        } catch (Throwable t) {
            log.error("run failed", t);
            doc.put("status", "error");
            doc.put("error", ResultWriter.error(Protocol.STAGE_RUN, t));
        }
        doc.put("finished_at", ResultWriter.utcNow());
        return doc;
    }

    private JSONObject base(String runId, String started) throws JSONException {
        JSONObject doc = new JSONObject();
        doc.put("schema", Protocol.RESULT_SCHEMA);
        doc.put("version", Protocol.VERSION);
        doc.put("run_id", runId);
        doc.put("status", "error");
        JSONObject producer = new JSONObject();
        producer.put("kind", "device");
        producer.put("app_version", appVersion);
        producer.put("runtime", runtimeName());
        doc.put("producer", producer);
        JSONObject dev = new JSONObject();
        dev.put("model", device.model);
        dev.put("manufacturer", device.manufacturer);
        dev.put("android_version", device.androidVersion);
        dev.put("sdk_int", device.sdkInt);
        dev.put("abi", device.abi);
        doc.put("device", dev);
        doc.put("started_at", started);
        doc.put("delegates", new JSONArray());
        return doc;
    }

    private String runtimeName() {
        try {
            return platform.runtime();
        } catch (Throwable t) {
            return "LiteRT (version unknown: " + t + ")";
        }
    }

    private ValidationRequest loadRequest(File requestFile) throws ResultWriter.StageException {
        try {
            if (schemaText != null) {
                List<String> problems = SchemaCheck.problems(schemaText);
                if (!problems.isEmpty()) {
                    throw new ProtocolException("this app was built against a protocol schema it does not implement: "
                            + problems);
                }
            }
            return ValidationRequest.parse(new String(readAll(requestFile), UTF8));
        } catch (Throwable t) {
            throw new ResultWriter.StageException(Protocol.STAGE_REQUEST, t);
        }
    }

    private void execute(ValidationRequest request, File runDir, JSONObject doc) throws Exception {
        ByteBuffer model;
        ModelSpec spec;
        File modelFile;
        JSONObject modelInfo = new JSONObject();
        try {
            modelFile = ValidationRequest.resolve(runDir, request.model);
            String sha = sha256(modelFile);
            modelInfo.put("sha256", sha);
            if (request.modelSha256 != null && !request.modelSha256.equals(sha)) {
                throw new ProtocolException("model " + request.model + " has sha256 " + sha + ", the request says "
                        + request.modelSha256 + " (incomplete push?)");
            }
            model = map(modelFile);
            spec = platform.readModel(model);
        } catch (Throwable t) {
            throw new ResultWriter.StageException(Protocol.STAGE_LOAD, t);
        }
        doc.put("model", modelInfo);
        ModelRoles roles = ModelRoles.fromNames(spec.outputNames);
        JSONArray delegates = doc.getJSONArray("delegates");
        for (ValidationRequest.EngineRun run : request.runs) {
            for (String accelerator : run.accelerators) {
                log.info(run.engine + " on " + accelerator + ": " + request.inputs.size() + " inputs");
                JSONObject result = Protocol.ENGINE_MEDIAPIPE.equals(run.engine)
                        ? runDetector(request, runDir, modelFile, model, spec, accelerator)
                        : runSession(request, runDir, run.engine, modelFile, model, spec, roles, accelerator, modelInfo);
                delegates.put(result);
            }
        }
    }

    /** The engines form tags every run with its engine (a v1 request's result stays v1). */
    private static JSONObject runEntry(ValidationRequest request, String engine, String accelerator)
            throws JSONException {
        JSONObject result = new JSONObject();
        result.put("delegate", accelerator);
        if (request.enginesForm) {
            result.put("engine", engine);
            if ("nnapi".equals(accelerator)) {
                JSONArray warnings = new JSONArray();
                warnings.put(Protocol.NNAPI_WARNING);
                result.put("warnings", warnings);
            }
        }
        return result;
    }

    private static void putAccelerator(ValidationRequest request, JSONObject result, String used, String fallback,
                                       String runtime) throws JSONException {
        if (!request.enginesForm) {
            return;
        }
        if (used != null && Protocol.contains(Protocol.ACCELERATORS_USED, used)) {
            result.put("accelerator_used", used);
        }
        if (fallback != null) {
            result.put("fallback_reason", fallback);
        }
        if (runtime != null && !runtime.isEmpty()) {
            result.put("runtime", runtime);
        }
    }

    private JSONObject runSession(ValidationRequest request, File runDir, String engine, File modelFile,
                                  ByteBuffer model, ModelSpec spec, ModelRoles roles, String delegate,
                                  JSONObject modelInfo) throws JSONException {
        JSONObject result = runEntry(request, engine, delegate);
        Session session;
        try {
            session = platform.open(engine, modelFile, model, delegate, request.threads);
        } catch (DelegateUnavailableException e) {
            result.put("status", "unavailable");
            result.put("error", ResultWriter.error(Protocol.STAGE_DELEGATE, e));
            return result;
        } catch (Throwable t) {
            result.put("status", "error");
            result.put("error", ResultWriter.error("cpu".equals(delegate) ? Protocol.STAGE_LOAD : Protocol.STAGE_DELEGATE, t));
            return result;
        }
        try {
            putAccelerator(request, result, session.acceleratorUsed(), session.fallbackReason(), session.runtime());
            TensorSpec input = session.input();
            if (!modelInfo.has("input")) {
                JSONObject in = new JSONObject();
                if (Dtypes.isProtocolDtype(input.dtype)) {
                    in.put("dtype", input.dtype);
                }
                in.put("shape", ResultWriter.ints(input.shape));
                modelInfo.put("input", in);
                modelInfo.put("output_roles", ResultWriter.strings(
                        ModelRoles.describe(spec.outputNames, session.outputCount())));
            }
            JSONArray warmupMs = new JSONArray();
            JSONArray latencyMs = new JSONArray();
            JSONArray outputs = new JSONArray();
            for (int i = 0; i < request.inputs.size(); i++) {
                outputs.put(runInput(request, runDir, spec, roles, session, request.inputs.get(i), i == 0,
                        warmupMs, latencyMs));
            }
            result.put("status", "ok");
            result.put("warmup_ms", warmupMs);
            result.put("latency_ms", latencyMs);
            result.put("outputs", outputs);
        } catch (Throwable t) {
            result.put("status", "error");
            result.put("error", ResultWriter.error(Protocol.STAGE_RUN, t));
        } finally {
            try {
                session.close();
            } catch (Throwable t) {
                log.error("closing the " + engine + " " + delegate + " session failed", t);
            }
        }
        return result;
    }

    /** The mediapipe engine: image inputs only (tensor inputs are not_applicable), detections, no tensors. */
    private JSONObject runDetector(ValidationRequest request, File runDir, File modelFile, ByteBuffer model,
                                   ModelSpec spec, String accelerator) throws JSONException {
        JSONObject result = runEntry(request, Protocol.ENGINE_MEDIAPIPE, accelerator);
        DetectorSession detector;
        try {
            detector = platform.openDetector(modelFile, model, spec, accelerator, request.scoreThreshold,
                    request.maxResults);
        } catch (DelegateUnavailableException e) {
            result.put("status", "unavailable");
            result.put("error", ResultWriter.error(Protocol.STAGE_DELEGATE, e));
            return result;
        } catch (Throwable t) {
            result.put("status", "error");
            result.put("error", ResultWriter.error(Protocol.STAGE_LOAD, t));
            return result;
        }
        try {
            putAccelerator(request, result, detector.acceleratorUsed(), detector.fallbackReason(), detector.runtime());
            JSONArray warmupMs = new JSONArray();
            JSONArray latencyMs = new JSONArray();
            JSONArray outputs = new JSONArray();
            boolean first = true;
            for (ValidationRequest.Input input : request.inputs) {
                JSONObject out = new JSONObject();
                out.put("input_id", input.id);
                if (!"image".equals(input.kind)) {
                    out.put("not_applicable", Protocol.MEDIAPIPE_IMAGES_ONLY);
                    outputs.put(out);
                    continue;
                }
                boolean timed = first;
                first = false;
                try {
                    detector.load(ValidationRequest.resolve(runDir, input.file));
                } catch (Throwable t) {
                    out.put("error", ResultWriter.error(Protocol.STAGE_PREPROCESS, t));
                    outputs.put(out);
                    continue;
                }
                try {
                    List<Detection> found = null;
                    double firstMs = -1;
                    int runs = timed ? request.warmup + request.iterations : 1;
                    for (int k = 0; k < runs; k++) {
                        long t0 = System.nanoTime();
                        found = detector.detect();
                        double ms = ResultWriter.millis(System.nanoTime() - t0);
                        if (timed && k < request.warmup) {
                            warmupMs.put(ms);
                            continue;
                        }
                        if (timed) {
                            latencyMs.put(ms);
                        }
                        if (firstMs < 0) {
                            firstMs = ms;
                        }
                    }
                    out.put("latency_ms", firstMs);
                    out.put("detections", ResultWriter.detections(found));
                } catch (Throwable t) {
                    out.put("error", ResultWriter.error(Protocol.STAGE_RUN, t));
                }
                outputs.put(out);
            }
            result.put("status", "ok");
            result.put("warmup_ms", warmupMs);
            result.put("latency_ms", latencyMs);
            result.put("outputs", outputs);
        } catch (Throwable t) {
            result.put("status", "error");
            result.put("error", ResultWriter.error(Protocol.STAGE_RUN, t));
        } finally {
            try {
                detector.close();
            } catch (Throwable t) {
                log.error("closing the mediapipe " + accelerator + " detector failed", t);
            }
        }
        return result;
    }

    private JSONObject runInput(ValidationRequest request, File runDir, ModelSpec spec, ModelRoles roles,
                                Session session, ValidationRequest.Input input, boolean first,
                                JSONArray warmupMs, JSONArray latencyMs) throws JSONException {
        JSONObject out = new JSONObject();
        out.put("input_id", input.id);
        ByteBuffer data;
        try {
            data = prepare(runDir, input, session.input(), spec);
        } catch (Throwable t) {
            out.put("error", ResultWriter.error(Protocol.STAGE_PREPROCESS, t));
            return out;
        }
        try {
            double firstMs;
            if (first) {
                for (int w = 0; w < request.warmup; w++) {
                    warmupMs.put(timedRun(session, data));
                }
                firstMs = -1;
                for (int it = 0; it < request.iterations; it++) {
                    double ms = timedRun(session, data);
                    latencyMs.put(ms);
                    if (firstMs < 0) {
                        firstMs = ms;
                    }
                }
            } else {
                firstMs = timedRun(session, data);
            }
            out.put("latency_ms", firstMs);
        } catch (Throwable t) {
            out.put("error", ResultWriter.error(Protocol.STAGE_RUN, t));
            return out;
        }
        try {
            if (request.returnTensors) {
                JSONArray tensors = new JSONArray();
                for (int o = 0; o < session.outputCount(); o++) {
                    TensorSpec t = session.output(o);
                    if (!Dtypes.isProtocolDtype(t.dtype)) {
                        throw new ProtocolException("output " + o + " ('" + t.name + "') has dtype " + t.dtype
                                + ", which the protocol cannot carry");
                    }
                    tensors.put(ResultWriter.tensor(t, session.outputData(o)));
                }
                out.put("tensors", tensors);
            }
            // the gpu variant's form: raw heads decoded here with the model's DETECTOR_METADATA
            List<Detection> detections = spec.isRawSsd()
                    ? RawSsdDecoder.decode(session, spec, request.scoreThreshold, request.maxResults)
                    : DetectionDecoder.decode(session, roles, spec, request.scoreThreshold, request.maxResults);
            out.put("detections", ResultWriter.detections(detections));
        } catch (Throwable t) {
            out.put("error", ResultWriter.error(Protocol.STAGE_RUN, t));
        }
        return out;
    }

    private static double timedRun(Session session, ByteBuffer data) throws Exception {
        data.rewind();
        long t0 = System.nanoTime();
        session.run(data);
        return ResultWriter.millis(System.nanoTime() - t0);
    }

    private ByteBuffer prepare(File runDir, ValidationRequest.Input input, TensorSpec modelInput, ModelSpec spec)
            throws Exception {
        File file = ValidationRequest.resolve(runDir, input.file);
        if ("image".equals(input.kind)) {
            return platform.loadImage(file, modelInput, spec);
        }
        if (!input.dtype.equals(modelInput.dtype)) {
            throw new ProtocolException("input '" + input.id + "' is " + input.dtype + ", the model's input 0 is "
                    + modelInput.dtype);
        }
        if (!Arrays.equals(input.shape, modelInput.shape)) {
            throw new ProtocolException("input '" + input.id + "' has shape " + Arrays.toString(input.shape)
                    + ", the model's input 0 has " + Arrays.toString(modelInput.shape));
        }
        byte[] bytes = readAll(file);
        long expected = Dtypes.numElements(input.shape) * Dtypes.byteSize(input.dtype);
        if (bytes.length != expected) {
            throw new ProtocolException("input '" + input.id + "' has " + bytes.length + " bytes; "
                    + input.dtype + Arrays.toString(input.shape) + " needs " + expected);
        }
        ByteBuffer b = ByteBuffer.allocateDirect(bytes.length).order(ByteOrder.nativeOrder());
        b.put(bytes);
        b.rewind();
        return b;
    }

    static byte[] readAll(File f) throws IOException {
        InputStream in = new FileInputStream(f);
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream((int) Math.max(16, Math.min(f.length(), 1 << 26)));
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    /** Memory-maps the model read-only: the interpreter takes a MappedByteBuffer as is. */
    static ByteBuffer map(File f) throws IOException {
        RandomAccessFile raf = new RandomAccessFile(f, "r");
        try {
            FileChannel ch = raf.getChannel();
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size());
        } finally {
            raf.close();   // the mapping stays valid after the channel is closed
        }
    }

    static String sha256(File f) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        InputStream in = new FileInputStream(f);
        try {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        } finally {
            in.close();
        }
        StringBuilder hex = new StringBuilder();
        for (byte b : md.digest()) {
            hex.append(Character.forDigit((b >> 4) & 15, 16)).append(Character.forDigit(b & 15, 16));
        }
        return hex.toString();
    }
}
