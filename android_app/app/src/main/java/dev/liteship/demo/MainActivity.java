package dev.liteship.demo;

import android.Manifest;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.os.Bundle;
import android.util.Log;
import android.widget.Button;
import android.widget.RadioGroup;
import android.widget.SeekBar;
import android.widget.LinearLayout;
import android.widget.TextView;
import androidx.activity.ComponentActivity;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.core.resolutionselector.AspectRatioStrategy;
import androidx.camera.core.resolutionselector.ResolutionSelector;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;
import androidx.core.graphics.Insets;
import androidx.core.view.ViewCompat;
import androidx.core.view.WindowInsetsCompat;
import com.google.common.util.concurrent.ListenableFuture;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Live detection: CameraX preview + ImageAnalysis, the bundled model (assets/model.tflite, see
 * README), boxes with labels from the model's metadata, inference time, and settings for score
 * threshold, threads, engine (LiteRT Interpreter, LiteRT CompiledModel, MediaPipe ObjectDetector)
 * and accelerator (CPU, GPU). Edge-to-edge (Android 15 enforces it at targetSdk 35): the control
 * panel is padded by the system bars' insets so it never sits under the navigation bar.
 */
public final class MainActivity extends ComponentActivity {
    private static final String TAG = "liteship";
    static final String MODEL_ASSET = "model.tflite";
    /** The Task Library app's default (3) is too few for a demo with several objects. */
    private static final int MAX_RESULTS = 10;

    /** Immutable settings snapshot, swapped on the UI thread, read on the analysis thread. */
    private static final class Settings {
        final float threshold;
        final int threads;
        final String engine;
        final String accelerator;

        Settings(float threshold, int threads, String engine, String accelerator) {
            this.threshold = threshold;
            this.threads = threads;
            this.engine = engine;
            this.accelerator = accelerator;
        }
    }

    private final ExecutorService analysisExecutor = Executors.newSingleThreadExecutor();
    private volatile Settings settings = new Settings(0.5f, 2, Protocol.ENGINE_INTERPRETER, "cpu");

    // Touched only on analysisExecutor:
    private ByteBuffer model;
    private File modelFile;
    private ModelSpec spec;
    private Detector detector;
    private String loadProblem;
    private Settings failedSettings;

    private PreviewView previewView;
    private OverlayView overlay;
    private TextView status;
    private TextView thresholdLabel;
    private TextView threadsLabel;
    private ActivityResultLauncher<String> permissionLauncher;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        previewView = findViewById(R.id.preview);
        overlay = findViewById(R.id.overlay);
        status = findViewById(R.id.status);
        thresholdLabel = findViewById(R.id.threshold_label);
        threadsLabel = findViewById(R.id.threads_label);
        SeekBar threshold = findViewById(R.id.threshold);
        Button threadsMinus = findViewById(R.id.threads_minus);
        Button threadsPlus = findViewById(R.id.threads_plus);
        RadioGroup engines = findViewById(R.id.engines);
        RadioGroup accelerators = findViewById(R.id.accelerators);
        LinearLayout controls = findViewById(R.id.controls);
        final int padLeft = controls.getPaddingLeft();
        final int padTop = controls.getPaddingTop();
        final int padRight = controls.getPaddingRight();
        final int padBottom = controls.getPaddingBottom();
        ViewCompat.setOnApplyWindowInsetsListener(controls, (v, insets) -> {
            Insets bars = insets.getInsets(WindowInsetsCompat.Type.systemBars());
            v.setPadding(padLeft + bars.left, padTop, padRight + bars.right, padBottom + bars.bottom);
            return insets;
        });

        threshold.setMax(100);
        threshold.setProgress(Math.round(settings.threshold * 100));
        threshold.setOnSeekBarChangeListener(new SeekBar.OnSeekBarChangeListener() {
            @Override
            public void onProgressChanged(SeekBar bar, int progress, boolean fromUser) {
                Settings s = settings;
                settings = new Settings(progress / 100f, s.threads, s.engine, s.accelerator);
                showSettings();
            }

            @Override
            public void onStartTrackingTouch(SeekBar bar) {
            }

            @Override
            public void onStopTrackingTouch(SeekBar bar) {
            }
        });
        threadsMinus.setOnClickListener(v -> changeThreads(-1));
        threadsPlus.setOnClickListener(v -> changeThreads(+1));
        engines.check(R.id.engine_interpreter);
        engines.setOnCheckedChangeListener((group, checkedId) -> {
            String e = checkedId == R.id.engine_compiled ? Protocol.ENGINE_COMPILED
                    : checkedId == R.id.engine_mediapipe ? Protocol.ENGINE_MEDIAPIPE : Protocol.ENGINE_INTERPRETER;
            Settings s = settings;
            settings = new Settings(s.threshold, s.threads, e, s.accelerator);
            showSettings();
        });
        accelerators.check(R.id.accelerator_cpu);
        accelerators.setOnCheckedChangeListener((group, checkedId) -> {
            String a = checkedId == R.id.accelerator_gpu ? "gpu" : "cpu";
            Settings s = settings;
            settings = new Settings(s.threshold, s.threads, s.engine, a);
            showSettings();
        });
        showSettings();

        permissionLauncher = registerForActivityResult(new ActivityResultContracts.RequestPermission(), granted -> {
            if (granted) {
                startCamera();
            } else {
                status.setText(R.string.camera_denied);
            }
        });
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            permissionLauncher.launch(Manifest.permission.CAMERA);
        }
    }

    private void changeThreads(int delta) {
        Settings s = settings;
        int threads = Math.max(1, Math.min(8, s.threads + delta));
        settings = new Settings(s.threshold, threads, s.engine, s.accelerator);
        showSettings();
    }

    private void showSettings() {
        Settings s = settings;
        thresholdLabel.setText(getString(R.string.threshold_value, s.threshold));
        threadsLabel.setText(getString(R.string.threads_value, s.threads));
    }

    private void startCamera() {
        final ListenableFuture<ProcessCameraProvider> future = ProcessCameraProvider.getInstance(this);
        future.addListener(() -> {
            try {
                bindCamera(future.get());
            } catch (Exception e) {
                Log.e(TAG, "camera", e);
                status.setText(getString(R.string.camera_failed, String.valueOf(e.getMessage())));
            }
        }, ContextCompat.getMainExecutor(this));
    }

    private void bindCamera(ProcessCameraProvider provider) {
        ResolutionSelector resolution = new ResolutionSelector.Builder()
                .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY)
                .build();
        Preview preview = new Preview.Builder().setResolutionSelector(resolution).build();
        preview.setSurfaceProvider(previewView.getSurfaceProvider());
        ImageAnalysis analysis = new ImageAnalysis.Builder()
                .setResolutionSelector(resolution)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build();
        analysis.setAnalyzer(analysisExecutor, this::analyze);
        provider.unbindAll();
        provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis);
    }

    /** Runs on analysisExecutor for every frame CameraX hands over (older frames are dropped). */
    private void analyze(ImageProxy image) {
        try {
            Settings s = settings;
            Detector d = detectorFor(s);
            if (d == null) {
                final String problem = loadProblem;
                status.post(() -> status.setText(problem));
                return;
            }
            Bitmap upright = Preprocessor.rotate(image.toBitmap(), image.getImageInfo().getRotationDegrees());
            final Detector.Result r = d.detect(upright, s.threshold, MAX_RESULTS);
            upright.recycle();
            final String line = String.format(Locale.US, "%s · %s · %d threads · %.1f ms · %d objects",
                    d.engine, d.acceleratorShown().toUpperCase(Locale.US), d.threads, r.inferenceMs,
                    r.detections.size());
            overlay.post(() -> {
                overlay.show(r.detections, r.frameWidth, r.frameHeight);
                status.setText(line);
            });
        } catch (Throwable t) {
            Log.e(TAG, "detection failed", t);
            final String message = t.getClass().getSimpleName() + ": " + t.getMessage();
            status.post(() -> status.setText(message));
        } finally {
            image.close();
        }
    }

    /** The detector for the current settings, recreated when they change; null with loadProblem set. */
    private Detector detectorFor(Settings s) {
        if (detector != null && detector.engine.equals(s.engine) && detector.accelerator.equals(s.accelerator)
                && detector.threads == s.threads) {
            return detector;
        }
        if (s == failedSettings) {
            return null;   // already failed with exactly these settings: do not retry on every frame
        }
        if (detector != null) {
            detector.close();
            detector = null;
        }
        try {
            if (model == null) {
                try {
                    model = loadAsset(MODEL_ASSET);
                } catch (IOException e) {
                    throw new ProtocolException(getString(R.string.no_model), e);
                }
                spec = MetadataReader.read(model);
                modelFile = copyToCache(model);
            }
            detector = Detector.open(getApplicationContext(), modelFile, model, spec, s.engine, s.accelerator, s.threads,
                    MAX_RESULTS);
            loadProblem = null;
        } catch (DelegateUnavailableException e) {
            loadProblem = getString(R.string.delegate_unavailable, s.engine + " " + s.accelerator,
                    String.valueOf(e.getMessage()));
        } catch (ProtocolException e) {
            loadProblem = e.getMessage();
        } catch (Throwable t) {
            Log.e(TAG, "model", t);
            loadProblem = t.getClass().getSimpleName() + ": " + t.getMessage();
        }
        if (detector == null) {
            failedSettings = s;
        }
        return detector;
    }

    /** The whole asset in a direct, native-order buffer (works whether or not it is stored compressed). */
    private ByteBuffer loadAsset(String name) throws IOException {
        InputStream in = getAssets().open(name);
        try {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                bytes.write(buf, 0, n);
            }
            byte[] all = bytes.toByteArray();
            ByteBuffer b = ByteBuffer.allocateDirect(all.length).order(ByteOrder.nativeOrder());
            b.put(all);
            b.rewind();
            return b;
        } finally {
            in.close();
        }
    }

    /** CompiledModel opens a file: the model once in the cache folder. */
    private File copyToCache(ByteBuffer data) throws IOException {
        File file = new File(getCacheDir(), MODEL_ASSET);
        ByteBuffer b = data.duplicate();
        b.rewind();
        byte[] bytes = new byte[b.remaining()];
        b.get(bytes);
        FileOutputStream out = new FileOutputStream(file);
        try {
            out.write(bytes);
        } finally {
            out.close();
        }
        return file;
    }

    @Override
    protected void onDestroy() {
        analysisExecutor.execute(() -> {
            if (detector != null) {
                detector.close();
                detector = null;
            }
        });
        analysisExecutor.shutdown();
        super.onDestroy();
    }
}
