package dev.liteship.demo;

import android.app.Activity;
import android.content.Context;
import android.content.Intent;
import android.os.Build;
import android.os.Bundle;
import android.util.Log;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;

/**
 * The on-device validation entry point (debug builds only: declared and exported in
 * src/debug/AndroidManifest.xml, so release builds do not contain it).
 *
 * <pre>
 * adb shell am start -n dev.liteship.demo/.ValidationActivity \
 *     --es request /sdcard/Android/data/dev.liteship.demo/files/liteship/runs/RUN/request.json
 * </pre>
 *
 * <p>The work runs on a background thread; the result ({@code result.json}, written as
 * {@code result.json.tmp} then renamed) lands in the request's folder; the activity finishes itself.
 * Requests outside {@code <external files>/liteship/runs/} are refused (logged, nothing written).
 */
public final class ValidationActivity extends Activity {
    private static final String TAG = "liteship-validation";
    /** One run at a time: a second request waits, so latencies are not measured in parallel. */
    private static final Object RUN_LOCK = new Object();

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        Intent intent = getIntent();
        final String request = intent == null ? null : intent.getStringExtra(Protocol.REQUEST_EXTRA);
        final File filesDir = getExternalFilesDir(null);
        final String schema = readSchemaAsset();
        final Context context = getApplicationContext();
        Thread worker = new Thread(() -> {
            try {
                serve(context, request, filesDir, schema);
            } catch (Throwable t) {
                Log.e(TAG, "validation failed", t);
            } finally {
                runOnUiThread(this::finish);
            }
        }, "liteship-validation");
        worker.start();
    }

    private static void serve(Context context, String request, File filesDir, String schema) throws IOException {
        if (request == null || request.isEmpty()) {
            Log.e(TAG, "no request: start with --es " + Protocol.REQUEST_EXTRA + " <absolute path of request.json>");
            return;
        }
        if (filesDir == null) {
            Log.e(TAG, "external storage is not available; cannot read " + request);
            return;
        }
        File requestFile = new File(request);
        String runs = new File(filesDir, Protocol.RUNS_SUBDIR).getCanonicalPath() + File.separator;
        if (!requestFile.getCanonicalPath().startsWith(runs)) {
            Log.e(TAG, "refusing " + request + ": requests must live under " + runs);
            return;
        }
        DeviceFacts device = new DeviceFacts(Build.MODEL, Build.MANUFACTURER, Build.VERSION.RELEASE,
                Build.VERSION.SDK_INT, Build.SUPPORTED_ABIS.length > 0 ? Build.SUPPORTED_ABIS[0] : "");
        ValidationRunner runner = new ValidationRunner(new AndroidPlatform(context), device, BuildConfig.VERSION_NAME, schema,
                new ValidationRunner.Log() {
                    @Override
                    public void info(String message) {
                        Log.i(TAG, message);
                    }

                    @Override
                    public void error(String message, Throwable t) {
                        Log.e(TAG, message, t);
                    }
                });
        synchronized (RUN_LOCK) {
            Log.i(TAG, "serving " + requestFile);
            runner.run(requestFile);
        }
    }

    /** The protocol schema packaged from liteship/device/schema/ (null if the build did not add it). */
    private String readSchemaAsset() {
        try {
            InputStream in = getAssets().open(Protocol.SCHEMA_ASSET);
            try {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                byte[] buf = new byte[8192];
                int n;
                while ((n = in.read(buf)) > 0) {
                    out.write(buf, 0, n);
                }
                return out.toString("UTF-8");
            } finally {
                in.close();
            }
        } catch (IOException e) {
            Log.w(TAG, "no " + Protocol.SCHEMA_ASSET + " asset; the schema self-check is skipped", e);
            return null;
        }
    }
}
