package dev.liteship.demo;

import android.graphics.Bitmap;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * The live detector of MainActivity: the same session, preprocessing and decoding classes the
 * validation entry point uses. Create, use and close it on one thread (the GPU delegate needs that).
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

    final String delegate;
    final int threads;
    private final Session session;
    private final ModelSpec spec;
    private final ModelRoles roles;

    private Detector(Session session, ModelSpec spec, ModelRoles roles, String delegate, int threads) {
        this.session = session;
        this.spec = spec;
        this.roles = roles;
        this.delegate = delegate;
        this.threads = threads;
    }

    static Detector open(ByteBuffer model, ModelSpec spec, String delegate, int threads) throws Exception {
        ModelRoles roles = ModelRoles.fromNames(spec.outputNames);
        if (!spec.hasMetadata) {
            throw new ProtocolException("the model has no TFLite metadata; write it with `liteship metadata`");
        }
        if (!roles.isComplete()) {
            throw new ProtocolException(roles.problem());
        }
        return new Detector(LiteRtSession.open(model, delegate, threads), spec, roles, delegate, threads);
    }

    Result detect(Bitmap upright, float scoreThreshold, int maxResults) throws Exception {
        ByteBuffer input = Preprocessor.toInput(upright, session.input(), spec);
        long t0 = System.nanoTime();
        session.run(input);
        double ms = ResultWriter.millis(System.nanoTime() - t0);
        List<Detection> detections = DetectionDecoder.decode(session, roles, spec, scoreThreshold, maxResults);
        return new Result(detections, ms, upright.getWidth(), upright.getHeight());
    }

    @Override
    public void close() {
        session.close();
    }
}
