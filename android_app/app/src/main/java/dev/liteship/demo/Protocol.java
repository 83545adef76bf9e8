package dev.liteship.demo;

/**
 * The host <-> app validation protocol as the app sees it.
 *
 * <p>Every value here must equal its twin in {@code liteship/device/protocol.py}; the Python test
 * {@code tests/test_android_app.py} parses this file and compares them. Keep them plain string
 * literals (no concatenation) so that check stays simple.
 *
 * <p>The full protocol is the JSON Schema {@code liteship/device/schema/validation-protocol.schema.json},
 * packaged as the asset {@link #SCHEMA_ASSET} by app/build.gradle.kts (no copy in this project).
 */
public final class Protocol {
    private Protocol() {}

    /** applicationId of the app. */
    public static final String APP_PACKAGE = "dev.liteship.demo";
    /** Component the host starts: {@code am start -n <this> --es request <abs path>}. Debug builds only. */
    public static final String VALIDATION_ACTIVITY = "dev.liteship.demo/.ValidationActivity";
    /** Intent extra: absolute device path of the run folder's request.json. */
    public static final String REQUEST_EXTRA = "request";
    /** What the host writes to and the app reads from: getExternalFilesDir(null). */
    public static final String APP_FILES_DIR = "/sdcard/Android/data/dev.liteship.demo/files";
    /** Run folders live here, relative to {@link #APP_FILES_DIR}: {@code <files>/liteship/runs/<run_id>/}. */
    public static final String RUNS_SUBDIR = "liteship/runs";
    public static final String REQUEST_NAME = "request.json";
    public static final String RESULT_NAME = "result.json";
    /** Written first, then renamed to {@link #RESULT_NAME} in the same folder. */
    public static final String RESULT_TMP_NAME = "result.json.tmp";

    public static final String REQUEST_SCHEMA = "liteship.device.request";
    public static final String RESULT_SCHEMA = "liteship.device.result";
    public static final int VERSION = 1;

    /** The protocol schema, shipped as an asset straight from liteship/device/schema/. */
    public static final String SCHEMA_ASSET = "validation-protocol.schema.json";

    public static final String[] DELEGATES = {"cpu", "gpu", "nnapi"};
    /** Engines a request may name ({@code engines[].engine}), each with the accelerators it accepts. */
    public static final String[] ENGINES = {"interpreter", "compiled", "mediapipe"};
    public static final String[] INTERPRETER_ACCELERATORS = {"cpu", "gpu", "nnapi"};
    public static final String[] COMPILED_ACCELERATORS = {"cpu", "gpu"};
    public static final String[] MEDIAPIPE_ACCELERATORS = {"cpu", "gpu"};
    /** What {@code accelerator_used} may say. */
    public static final String[] ACCELERATORS_USED = {"cpu", "gpu", "nnapi", "npu"};
    public static final String[] DTYPES = {"float32", "float16", "int8", "uint8", "int32", "int64", "bool"};
    public static final String[] ERROR_STAGES = {"request", "load", "delegate", "preprocess", "run", "write"};

    public static final String STAGE_REQUEST = "request";
    public static final String STAGE_LOAD = "load";
    public static final String STAGE_DELEGATE = "delegate";
    public static final String STAGE_PREPROCESS = "preprocess";
    public static final String STAGE_RUN = "run";
    public static final String STAGE_WRITE = "write";

    public static final String ENGINE_INTERPRETER = "interpreter";
    public static final String ENGINE_COMPILED = "compiled";
    public static final String ENGINE_MEDIAPIPE = "mediapipe";

    public static final String NNAPI_WARNING = "NNAPI is deprecated since Android 15 (API 35); prefer the compiled engine (CompiledModel) on gpu";
    public static final String MEDIAPIPE_IMAGES_ONLY = "MediaPipe Tasks takes images and exposes no tensors: tensor inputs do not apply";

    /** The accelerators {@code engine} accepts, or null for an unknown engine. */
    static String[] acceleratorsOf(String engine) {
        if (ENGINE_INTERPRETER.equals(engine)) {
            return INTERPRETER_ACCELERATORS;
        }
        if (ENGINE_COMPILED.equals(engine)) {
            return COMPILED_ACCELERATORS;
        }
        if (ENGINE_MEDIAPIPE.equals(engine)) {
            return MEDIAPIPE_ACCELERATORS;
        }
        return null;
    }

    static boolean contains(String[] values, String value) {
        for (String v : values) {
            if (v.equals(value)) {
                return true;
            }
        }
        return false;
    }
}
