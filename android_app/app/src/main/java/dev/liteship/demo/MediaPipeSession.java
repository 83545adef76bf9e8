package dev.liteship.demo;

import android.content.Context;
import android.graphics.Bitmap;
import android.graphics.RectF;
import com.google.mediapipe.framework.image.BitmapImageBuilder;
import com.google.mediapipe.framework.image.MPImage;
import com.google.mediapipe.tasks.components.containers.Category;
import com.google.mediapipe.tasks.core.BaseOptions;
import com.google.mediapipe.tasks.core.Delegate;
import com.google.mediapipe.tasks.vision.core.RunningMode;
import com.google.mediapipe.tasks.vision.objectdetector.ObjectDetector;
import com.google.mediapipe.tasks.vision.objectdetector.ObjectDetectorResult;
import java.io.File;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * The "mediapipe" engine: MediaPipe Tasks ObjectDetector (com.google.mediapipe:tasks-vision) in IMAGE
 * mode with the request's score threshold and max results. It stretches the image to the input size
 * and reads the model's metadata itself; it exposes no tensors. "gpu" that cannot start falls back
 * to the CPU and says so. Both model forms load as they are: the postprocess op's four outputs, and
 * the "gpu" variant's two (location + score), which MediaPipe decodes and suppresses itself from the
 * model's DETECTOR_METADATA (IoU 0.3); its categories are named by the score tensor's
 * TENSOR_AXIS_LABELS, which {@link MetadataReader} reads into the spec's labels (class index by name).
 */
final class MediaPipeSession implements DetectorSession {
    private final ObjectDetector detector;
    private final ModelSpec spec;
    private final String used;
    private final String fallback;
    private Bitmap bitmap;
    private MPImage image;

    private MediaPipeSession(ObjectDetector detector, ModelSpec spec, String used, String fallback) {
        this.detector = detector;
        this.spec = spec;
        this.used = used;
        this.fallback = fallback;
    }

    static MediaPipeSession open(Context context, ByteBuffer model, ModelSpec spec, String accelerator,
                                 float scoreThreshold, int maxResults) throws Exception {
        if (!Protocol.contains(Protocol.MEDIAPIPE_ACCELERATORS, accelerator)) {
            throw new DelegateUnavailableException("the mediapipe engine runs on cpu or gpu, not " + accelerator);
        }
        try {
            return new MediaPipeSession(create(context, model, "gpu".equals(accelerator) ? Delegate.GPU : Delegate.CPU,
                    scoreThreshold, maxResults), spec, accelerator, null);
        } catch (RuntimeException e) {
            if (!"gpu".equals(accelerator)) {
                throw e;
            }
            String reason = "the MediaPipe GPU delegate could not start: " + e;
            return new MediaPipeSession(create(context, model, Delegate.CPU, scoreThreshold, maxResults), spec, "cpu",
                    reason);
        }
    }

    private static ObjectDetector create(Context context, ByteBuffer model, Delegate delegate, float scoreThreshold,
                                         int maxResults) {
        BaseOptions base = BaseOptions.builder().setModelAssetBuffer(model.duplicate()).setDelegate(delegate).build();
        return ObjectDetector.createFromOptions(context, ObjectDetector.ObjectDetectorOptions.builder()
                .setBaseOptions(base)
                .setRunningMode(RunningMode.IMAGE)
                .setScoreThreshold(scoreThreshold)
                .setMaxResults(maxResults)
                .build());
    }

    @Override
    public void load(File file) throws Exception {
        release();
        bitmap = Preprocessor.decodeFile(file);
        image = new BitmapImageBuilder(bitmap).build();
    }

    @Override
    public List<Detection> detect() throws Exception {
        if (image == null) {
            throw new IllegalStateException("no image loaded");
        }
        return detect(image);
    }

    /** Detections on an upright camera frame (MainActivity); the bitmap stays the caller's. */
    List<Detection> detect(Bitmap upright) throws Exception {
        MPImage frame = new BitmapImageBuilder(upright).build();
        try {
            return detect(frame);
        } finally {
            frame.close();
        }
    }

    private List<Detection> detect(MPImage input) throws Exception {
        ObjectDetectorResult result = detector.detect(input);
        List<Detection> out = new ArrayList<>();
        for (com.google.mediapipe.tasks.components.containers.Detection d : result.detections()) {
            if (d.categories().isEmpty()) {
                continue;
            }
            RectF box = d.boundingBox();
            Category c = d.categories().get(0);
            out.add(DetectionBoxes.fromPixels(box.left, box.top, box.right, box.bottom, input.getWidth(),
                    input.getHeight(), c.index(), c.categoryName(), c.score(), spec));
        }
        return out;
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
        return "MediaPipe tasks-vision " + BuildConfig.MEDIAPIPE_VERSION + " ObjectDetector";
    }

    private void release() {
        if (image != null) {
            image.close();
            image = null;
        }
        if (bitmap != null) {
            bitmap.recycle();
            bitmap = null;
        }
    }

    @Override
    public void close() {
        release();
        detector.close();
    }
}
