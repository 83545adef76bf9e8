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
    public static final String[] DTYPES = {"float32", "float16", "int8", "uint8", "int32", "int64", "bool"};
    public static final String[] ERROR_STAGES = {"request", "load", "delegate", "preprocess", "run", "write"};

    public static final String STAGE_REQUEST = "request";
    public static final String STAGE_LOAD = "load";
    public static final String STAGE_DELEGATE = "delegate";
    public static final String STAGE_PREPROCESS = "preprocess";
    public static final String STAGE_RUN = "run";
    public static final String STAGE_WRITE = "write";

    static boolean contains(String[] values, String value) {
        for (String v : values) {
            if (v.equals(value)) {
                return true;
            }
        }
        return false;
    }
}
