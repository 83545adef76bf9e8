package dev.liteship.demo;

import android.content.Context;
import android.graphics.Bitmap;
import java.io.File;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * The live detector of MainActivity, on the engine and accelerator the settings name: the same
 * sessions, preprocessing and decoding classes the validation entry point uses. Create, use and
 * close it on one thread (the GPU needs that).
 */
final class Detector implements AutoCloseable {
    /** One frame's outcome. */
    static final class Result {
        final List<Detection> detections;
        final double inferenceMs;
        final int frameWidth;
        final int frameHeight;

        Result(List<Detection> detections, double inferenceMs, int frameWidth, int frameHeight) {
            this.detections = detections;
            this.inferenceMs = inferenceMs;
            this.frameWidth = frameWidth;
            this.frameHeight = frameHeight;
        }
    }

    final String engine;
    final String accelerator;
    final int threads;
    private final Session session;           // interpreter, compiled
    private final MediaPipeSession mediapipe;  // mediapipe
    private final ModelSpec spec;
    private final ModelRoles roles;

    private Detector(Session session, MediaPipeSession mediapipe, ModelSpec spec, ModelRoles roles, String engine,
                     String accelerator, int threads) {
        this.session = session;
        this.mediapipe = mediapipe;
        this.spec = spec;
        this.roles = roles;
        this.engine = engine;
        this.accelerator = accelerator;
        this.threads = threads;
    }

    /** @param modelFile the same model as a file (CompiledModel opens files) */
    static Detector open(Context context, File modelFile, ByteBuffer model, ModelSpec spec, String engine,
                         String accelerator, int threads, int maxResults) throws Exception {
        ModelRoles roles = ModelRoles.fromNames(spec.outputNames);
        if (!spec.hasMetadata) {
            throw new ProtocolException("the model has no TFLite metadata; write it with `liteship metadata`");
        }
        if (Protocol.ENGINE_MEDIAPIPE.equals(engine)) {
            MediaPipeSession mp = MediaPipeSession.open(context, model, spec, accelerator, 0f, maxResults);
            return new Detector(null, mp, spec, roles, engine, accelerator, threads);
        }
        if (!roles.isComplete()) {
            throw new ProtocolException(roles.problem());
        }
        Session s = new AndroidPlatform(context).open(engine, modelFile, model, accelerator, threads);
        return new Detector(s, null, spec, roles, engine, accelerator, threads);
    }

    /** What runs the model, e.g. "gpu" or "cpu (gpu fell back)". */
    String acceleratorShown() {
        String used = session != null ? session.acceleratorUsed() : mediapipe.acceleratorUsed();
        return used.equals(accelerator) ? used : used + " (" + accelerator + " fell back)";
    }

    Result detect(Bitmap upright, float scoreThreshold, int maxResults) throws Exception {
        long t0;
        List<Detection> detections;
        double ms;
        if (mediapipe != null) {
            t0 = System.nanoTime();
            List<Detection> all = mediapipe.detect(upright);
            ms = ResultWriter.millis(System.nanoTime() - t0);
            detections = new ArrayList<>();
            for (Detection d : all) {
                if (d.score >= scoreThreshold && detections.size() < maxResults) {
                    detections.add(d);
                }
            }
        } else {
            ByteBuffer input = Preprocessor.toInput(upright, session.input(), spec);
            t0 = System.nanoTime();
            session.run(input);
            ms = ResultWriter.millis(System.nanoTime() - t0);
            detections = DetectionDecoder.decode(session, roles, spec, scoreThreshold, maxResults);
        }
        return new Result(detections, ms, upright.getWidth(), upright.getHeight());
    }

    @Override
    public void close() {
        if (session != null) {
            session.close();
        }
        if (mediapipe != null) {
            mediapipe.close();
        }
    }
}
