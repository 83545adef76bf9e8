package dev.liteship.demo;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * A parsed {@code liteship.device.request} v1. The host validates requests against the schema
 * before pushing them; the app checks the same constraints again so that a hand-written or
 * truncated request becomes a result with {@code error.stage = "request"}, never a crash.
 */
public final class ValidationRequest {
    /** The schema's $defs.name pattern: relative, no "..", no backslash or NUL, 1-200 chars. */
    static final Pattern NAME = Pattern.compile("^(?!/)(?!.*(^|/)\\.\\.(/|$))[^\\\\\\x00]{1,200}$");
    static final Pattern RUN_ID = Pattern.compile("^[A-Za-z0-9._-]{1,64}$");
    static final Pattern SHA256 = Pattern.compile("^[0-9a-f]{64}$");
    private static final Set<String> KEYS = new HashSet<>(java.util.Arrays.asList(
            "schema", "version", "run_id", "model", "model_sha256", "inputs", "delegates", "engines", "threads",
            "warmup", "iterations", "score_threshold", "max_results", "return_tensors"));
    private static final Set<String> INPUT_KEYS = new HashSet<>(java.util.Arrays.asList(
            "id", "kind", "file", "dtype", "shape"));

    /** One entry of inputs[]. */
    public static final class Input {
        public final String id;
        /** "tensor" or "image". */
        public final String kind;
        public final String file;
        /** Only for kind "tensor". */
        public final String dtype;
        public final int[] shape;

        Input(String id, String kind, String file, String dtype, int[] shape) {
            this.id = id;
            this.kind = kind;
            this.file = file;
            this.dtype = dtype;
            this.shape = shape;
        }
    }

    /** One engine and the accelerators to run it with (an entry of engines[], or the v1 delegates). */
    public static final class EngineRun {
        public final String engine;
        public final List<String> accelerators;

        EngineRun(String engine, List<String> accelerators) {
            this.engine = engine;
            this.accelerators = Collections.unmodifiableList(accelerators);
        }
    }

    public final String runId;
    public final String model;
    /** Lower-case hex or null. */
    public final String modelSha256;
    public final List<Input> inputs;
    /** The interpreter's delegates of a v1 request; empty when the request names engines. */
    public final List<String> delegates;
    /** What to run, in order: engines[] as given, or the interpreter with delegates. */
    public final List<EngineRun> runs;
    /** True when the request named engines: the result then carries engine, accelerator_used, runtime. */
    public final boolean enginesForm;
    public final int threads;
    public final int warmup;
    public final int iterations;
    public final float scoreThreshold;
    public final int maxResults;
    public final boolean returnTensors;

    private ValidationRequest(String runId, String model, String modelSha256, List<Input> inputs,
                              List<String> delegates, List<EngineRun> runs, boolean enginesForm, int threads,
                              int warmup, int iterations, float scoreThreshold, int maxResults,
                              boolean returnTensors) {
        this.runId = runId;
        this.model = model;
        this.modelSha256 = modelSha256;
        this.inputs = Collections.unmodifiableList(inputs);
        this.delegates = Collections.unmodifiableList(delegates);
        this.runs = Collections.unmodifiableList(runs);
        this.enginesForm = enginesForm;
        this.threads = threads;
        this.warmup = warmup;
        this.iterations = iterations;
        this.scoreThreshold = scoreThreshold;
        this.maxResults = maxResults;
        this.returnTensors = returnTensors;
    }

    public static ValidationRequest parse(String text) throws ProtocolException {
        JSONObject o;
        try {
            o = new JSONObject(text);
        } catch (JSONException e) {
            throw new ProtocolException("request.json is not a JSON object: " + e.getMessage(), e);
        }
        Iterator<String> keys = o.keys();
        while (keys.hasNext()) {
            String k = keys.next();
            if (!KEYS.contains(k)) {
                throw new ProtocolException("request: unknown property '" + k + "' (liteship.device.request v1)");
            }
        }
        if (!Protocol.REQUEST_SCHEMA.equals(o.opt("schema"))) {
            throw new ProtocolException("request: schema must be '" + Protocol.REQUEST_SCHEMA + "', found "
                    + o.opt("schema"));
        }
        if (integer(o, "version", 0, Integer.MAX_VALUE, -1) != Protocol.VERSION) {
            throw new ProtocolException("request: version " + o.opt("version") + " is not supported; this app speaks v"
                    + Protocol.VERSION + " (reinstall the app that matches your liteship)");
        }
        String runId = string(o, "run_id");
        if (!RUN_ID.matcher(runId).find()) {
            throw new ProtocolException("request: run_id '" + runId + "' must match " + RUN_ID.pattern());
        }
        String model = name(o, "model");
        String sha = null;
        if (o.has("model_sha256")) {
            sha = string(o, "model_sha256");
            if (!SHA256.matcher(sha).find()) {
                throw new ProtocolException("request: model_sha256 must be 64 lower-case hex digits");
            }
        }
        JSONArray rawInputs = array(o, "inputs");
        if (rawInputs.length() > 10000) {
            throw new ProtocolException("request: more than 10000 inputs");
        }
        List<Input> inputs = new ArrayList<>();
        for (int i = 0; i < rawInputs.length(); i++) {
            Object item = rawInputs.opt(i);
            if (!(item instanceof JSONObject)) {
                throw new ProtocolException("request: inputs[" + i + "] is not an object");
            }
            inputs.add(input((JSONObject) item, i));
        }
        boolean enginesForm = o.has("engines");
        if (enginesForm == o.has("delegates")) {
            throw new ProtocolException("request: give either 'delegates' (the interpreter's) or 'engines', "
                    + (enginesForm ? "not both" : "found neither"));
        }
        List<String> delegates = new ArrayList<>();
        List<EngineRun> runs = new ArrayList<>();
        if (enginesForm) {
            JSONArray rawEngines = array(o, "engines");
            if (rawEngines.length() < 1 || rawEngines.length() > Protocol.ENGINES.length) {
                throw new ProtocolException("request: engines must name 1 to " + Protocol.ENGINES.length + " engines");
            }
            Set<String> seen = new HashSet<>();
            for (int i = 0; i < rawEngines.length(); i++) {
                Object item = rawEngines.opt(i);
                if (!(item instanceof JSONObject)) {
                    throw new ProtocolException("request: engines[" + i + "] is not an object");
                }
                EngineRun run = engineRun((JSONObject) item, i);
                if (!seen.add(run.engine)) {
                    throw new ProtocolException("request: engine '" + run.engine + "' is listed more than once");
                }
                runs.add(run);
            }
        } else {
            delegates = accelerators(array(o, "delegates"), "delegates", Protocol.DELEGATES);
            runs.add(new EngineRun(Protocol.ENGINE_INTERPRETER, delegates));
        }
        int threads = integer(o, "threads", 1, 64, -1);
        int warmup = integer(o, "warmup", 0, 1000, -1);
        int iterations = integer(o, "iterations", 1, 10000, -1);
        float threshold = 0f;
        if (o.has("score_threshold")) {
            Object t = o.opt("score_threshold");
            if (!(t instanceof Number) || !(((Number) t).doubleValue() >= 0) || ((Number) t).doubleValue() > 1) {
                throw new ProtocolException("request: score_threshold must be a number in [0, 1], found " + t);
            }
            threshold = ((Number) t).floatValue();
        }
        int maxResults = o.has("max_results") ? integer(o, "max_results", 1, Integer.MAX_VALUE, -1) : 100;
        boolean returnTensors = true;
        if (o.has("return_tensors")) {
            Object r = o.opt("return_tensors");
            if (!(r instanceof Boolean)) {
                throw new ProtocolException("request: return_tensors must be true or false, found " + r);
            }
            returnTensors = (Boolean) r;
        }
        return new ValidationRequest(runId, model, sha, inputs, delegates, runs, enginesForm, threads, warmup,
                iterations, threshold, maxResults, returnTensors);
    }

    private static EngineRun engineRun(JSONObject o, int i) throws ProtocolException {
        Iterator<String> keys = o.keys();
        while (keys.hasNext()) {
            String k = keys.next();
            if (!"engine".equals(k) && !"accelerators".equals(k)) {
                throw new ProtocolException("request: engines[" + i + "] has unknown property '" + k + "'");
            }
        }
        String engine = string(o, "engine");
        String[] allowed = Protocol.acceleratorsOf(engine);
        if (allowed == null) {
            throw new ProtocolException("request: engines[" + i + "].engine '" + engine + "' is not one of "
                    + java.util.Arrays.toString(Protocol.ENGINES));
        }
        return new EngineRun(engine, accelerators(array(o, "accelerators"), "engines[" + i + "].accelerators", allowed));
    }

    private static List<String> accelerators(JSONArray raw, String where, String[] allowed) throws ProtocolException {
        if (raw.length() < 1) {
            throw new ProtocolException("request: " + where + " must name at least one of "
                    + java.util.Arrays.toString(allowed));
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i < raw.length(); i++) {
            Object d = raw.opt(i);
            if (!(d instanceof String) || !Protocol.contains(allowed, (String) d)) {
                throw new ProtocolException("request: " + where + "[" + i + "] = " + d + " is not one of "
                        + java.util.Arrays.toString(allowed));
            }
            if (out.contains(d)) {
                throw new ProtocolException("request: " + where + " lists '" + d + "' twice");
            }
            out.add((String) d);
        }
        return out;
    }

    /** A request file name resolved inside the run folder; refuses anything that escapes it. */
    public static File resolve(File runDir, String name) throws ProtocolException {
        if (!NAME.matcher(name).find()) {
            throw new ProtocolException("'" + name + "' is not a file name inside the run folder");
        }
        File f = new File(runDir, name);
        try {
            String root = runDir.getCanonicalPath() + File.separator;
            if (!f.getCanonicalPath().startsWith(root)) {
                throw new ProtocolException("'" + name + "' leaves the run folder");
            }
        } catch (IOException e) {
            throw new ProtocolException("cannot resolve '" + name + "': " + e.getMessage(), e);
        }
        return f;
    }

    private static Input input(JSONObject o, int i) throws ProtocolException {
        Iterator<String> keys = o.keys();
        while (keys.hasNext()) {
            String k = keys.next();
            if (!INPUT_KEYS.contains(k)) {
                throw new ProtocolException("request: inputs[" + i + "] has unknown property '" + k + "'");
            }
        }
        String id = string(o, "id");
        if (id.isEmpty() || id.length() > 200) {
            throw new ProtocolException("request: inputs[" + i + "].id must have 1 to 200 characters");
        }
        String kind = string(o, "kind");
        if (!"tensor".equals(kind) && !"image".equals(kind)) {
            throw new ProtocolException("request: inputs[" + i + "].kind must be 'tensor' or 'image', found '" + kind + "'");
        }
        String file = name(o, "file");
        String dtype = null;
        int[] shape = null;
        if (o.has("dtype")) {
            dtype = string(o, "dtype");
            if (!Dtypes.isProtocolDtype(dtype)) {
                throw new ProtocolException("request: inputs[" + i + "].dtype '" + dtype + "' is not a protocol dtype");
            }
        }
        if (o.has("shape")) {
            JSONArray s = array(o, "shape");
            if (s.length() > 8) {
                throw new ProtocolException("request: inputs[" + i + "].shape has more than 8 dimensions");
            }
            shape = new int[s.length()];
            for (int d = 0; d < s.length(); d++) {
                Object v = s.opt(d);
                if (!isInteger(v) || ((Number) v).longValue() < 0 || ((Number) v).longValue() > Integer.MAX_VALUE) {
                    throw new ProtocolException("request: inputs[" + i + "].shape[" + d + "] is not a size: " + v);
                }
                shape[d] = ((Number) v).intValue();
            }
        }
        if ("tensor".equals(kind) && (dtype == null || shape == null)) {
            throw new ProtocolException("request: inputs[" + i + "] is a tensor input and needs dtype and shape");
        }
        return new Input(id, kind, file, dtype, shape);
    }

    private static String string(JSONObject o, String key) throws ProtocolException {
        Object v = o.opt(key);
        if (!(v instanceof String)) {
            throw new ProtocolException("request: '" + key + "' must be a string, found " + (v == null ? "nothing" : v));
        }
        return (String) v;
    }

    private static String name(JSONObject o, String key) throws ProtocolException {
        String v = string(o, key);
        if (!NAME.matcher(v).find()) {
            throw new ProtocolException("request: '" + key + "' = '" + v + "' must be a file name relative to the run folder");
        }
        return v;
    }

    private static JSONArray array(JSONObject o, String key) throws ProtocolException {
        Object v = o.opt(key);
        if (!(v instanceof JSONArray)) {
            throw new ProtocolException("request: '" + key + "' must be an array, found " + (v == null ? "nothing" : v));
        }
        return (JSONArray) v;
    }

    private static int integer(JSONObject o, String key, int min, int max, int fallback) throws ProtocolException {
        Object v = o.opt(key);
        if (v == null) {
            if (fallback >= 0) {
                return fallback;
            }
            throw new ProtocolException("request: '" + key + "' is missing");
        }
        if (!isInteger(v)) {
            throw new ProtocolException("request: '" + key + "' must be an integer, found " + v);
        }
        long value = ((Number) v).longValue();
        if (value < min || value > max) {
            throw new ProtocolException("request: '" + key + "' = " + value + " is outside [" + min + ", " + max + "]");
        }
        return (int) value;
    }

    /** JSON Schema's "integer": a number with no fractional part (2.0 counts). */
    private static boolean isInteger(Object v) {
        if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
            return true;
        }
        if (v instanceof Number) {
            double d = ((Number) v).doubleValue();
            return !Double.isNaN(d) && !Double.isInfinite(d) && d == Math.rint(d) && Math.abs(d) < 9.0e15;
        }
        return false;
    }
}
