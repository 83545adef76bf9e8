package dev.liteship.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns the four outputs of TFLite_Detection_PostProcess into detections, like the Task Library's
 * ObjectDetector: outputs found by metadata role, the first min(count, N) entries in the op's own
 * order (best first), entries below the score threshold skipped, at most maxResults kept. Boxes
 * stay as the model emits them ([ymin, xmin, ymax, xmax] ratios, not clamped) so the host can
 * compare them with the desktop run of the same model.
 */
public final class DetectionDecoder {
    private DetectionDecoder() {}

    public static List<Detection> decode(Session session, ModelRoles roles, ModelSpec spec,
                                         float scoreThreshold, int maxResults) throws ProtocolException {
        if (!roles.isComplete()) {
            throw new ProtocolException(roles.problem());
        }
        float[] locations = floats(session, roles.location);
        float[] categories = floats(session, roles.category);
        float[] scores = floats(session, roles.score);
        float[] count = roles.count >= 0 ? floats(session, roles.count) : null;
        return decode(locations, categories, scores, count, spec, scoreThreshold, maxResults);
    }

    public static List<Detection> decode(float[] locations, float[] categories, float[] scores, float[] count,
                                         ModelSpec spec, float scoreThreshold, int maxResults) {
        int n = Math.min(Math.min(scores.length, categories.length), locations.length / 4);
        if (count != null && count.length > 0 && !Float.isNaN(count[0])) {
            n = Math.max(0, Math.min(n, Math.round(count[0])));
        }
        List<Detection> out = new ArrayList<>();
        for (int i = 0; i < n && out.size() < maxResults; i++) {
            float score = scores[i];
            if (!(score >= scoreThreshold) || Float.isInfinite(score)) {
                continue;   // NaN and scores below the threshold are skipped
            }
            float c = categories[i];
            if (Float.isNaN(c) || Float.isInfinite(c) || c < 0) {
                continue;
            }
            float[] box = {locations[4 * i], locations[4 * i + 1], locations[4 * i + 2], locations[4 * i + 3]};
            if (!finite(box)) {
                continue;
            }
            int classIndex = Math.round(c);   // the op writes whole numbers as floats
            out.add(new Detection(box, classIndex, spec.label(classIndex), score));
        }
        return out;
    }

    /** The float32 values of an output after run(). */
    static float[] floats(Session session, int output) throws ProtocolException {
        TensorSpec t = session.output(output);
        if (!"float32".equals(t.dtype)) {
            throw new ProtocolException("output " + output + " ('" + t.name + "') is " + t.dtype
                    + "; the detection outputs of TFLite_Detection_PostProcess are float32");
        }
        return toFloats(session.outputData(output));
    }

    static float[] toFloats(ByteBuffer data) {
        ByteBuffer b = data.duplicate().order(ByteOrder.nativeOrder());
        b.rewind();
        float[] out = new float[b.remaining() / 4];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getFloat(4 * i);
        }
        return out;
    }

    private static boolean finite(float[] values) {
        for (float v : values) {
            if (Float.isNaN(v) || Float.isInfinite(v)) {
                return false;
            }
        }
        return true;
    }
}
