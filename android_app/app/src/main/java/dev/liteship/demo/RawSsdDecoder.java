package dev.liteship.demo;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Decodes the two outputs of liteship's "gpu" variant (no TFLite_Detection_PostProcess) into
 * detections, the way MediaPipe's ObjectDetector does with the same model's DETECTOR_METADATA
 * (TensorsToDetectionsCalculator + NonMaxSuppressionCalculator), so the compiled engine answers like
 * the mediapipe engine:
 *
 * <ul>
 *   <li>outputs by metadata NAME ("location" [1,A,4], "score" [1,A,C]); without those names outputs
 *       0 and 1, MediaPipe's fallback;
 *   <li>boxes (faster_rcnn_box_coder, ty tx th tw): yc = ty / y_scale * ha + yca, h = exp(th / h_scale) * ha
 *       (x, w alike), as [ymin, xmin, ymax, xmax], not clamped;
 *   <li>sigmoid on the scores only when the metadata says sigmoid_score (liteship applies the score
 *       converter in the graph);
 *   <li>each anchor's best class (the first on a tie; an anchor with a NaN score or a non-finite box is
 *       no detection), scores below the threshold dropped, greedy
 *       class-agnostic NMS best first (ties: lower anchor first), suppressed when IoU > 0.3 (MediaPipe's
 *       fixed min_suppression_threshold for this form), at most maxResults.
 * </ul>
 * Its Python twin is liteship/validation/raw_heads.py (the host's decoder); tests/test_android_app.py
 * runs this class on the same model outputs and compares. Pure Java.
 */
public final class RawSsdDecoder {
    public static final String LOCATION = "location";
    public static final String SCORE = "score";
    public static final float IOU_THRESHOLD = 0.3f;

    private RawSsdDecoder() {}

    /** {location, score} output positions: by metadata name, else 0 and 1. */
    public static int[] positions(List<String> outputNames) {
        int loc = outputNames.indexOf(LOCATION);
        int score = outputNames.indexOf(SCORE);
        return loc >= 0 && score >= 0 ? new int[] {loc, score} : new int[] {0, 1};
    }

    public static List<Detection> decode(Session session, ModelSpec spec, float scoreThreshold, int maxResults)
            throws ProtocolException {
        if (session.outputCount() != 2) {
            throw new ProtocolException("a model with DETECTOR_METADATA has 2 outputs (location, score); this one has "
                    + session.outputCount());
        }
        int[] pos = positions(spec.outputNames);
        float[] location = floats(session, pos[0]);
        float[] score = floats(session, pos[1]);
        return decode(location, score, spec.detector, spec, scoreThreshold, maxResults);
    }

    public static List<Detection> decode(float[] location, float[] score, DetectorMetadata meta, ModelSpec spec,
                                         float scoreThreshold, int maxResults) throws ProtocolException {
        int a = meta.numBoxes;
        if (location.length != 4 * a) {
            throw new ProtocolException("'location' holds " + location.length / 4 + " boxes, DETECTOR_METADATA has "
                    + a + " anchors");
        }
        if (a == 0 || score.length != a * meta.numClasses) {
            throw new ProtocolException("'score' holds " + score.length + " values, DETECTOR_METADATA says " + a
                    + " anchors x " + meta.numClasses + " classes");
        }
        int c = meta.numClasses;
        float[][] boxes = new float[a][];
        final float[] best = new float[a];
        int[] cls = new int[a];
        List<Integer> candidates = new ArrayList<>();
        for (int i = 0; i < a; i++) {
            boxes[i] = box(location, i, meta);
            int k = -1;
            float top = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < c; j++) {
                float s = score[i * c + j];
                if (Float.isNaN(s)) {   // a NaN score makes the anchor no detection (as raw_heads.py's argmax)
                    k = -1;
                    break;
                }
                if (meta.sigmoidScore) {
                    s = (float) (1.0 / (1.0 + Math.exp(-s)));
                }
                if (s > top || k < 0) {
                    top = s;
                    k = j;
                }
            }
            best[i] = top;
            cls[i] = k;
            if (k >= 0 && top >= scoreThreshold && !Float.isInfinite(top) && finite(boxes[i])) {
                candidates.add(i);
            }
        }
        Integer[] order = candidates.toArray(new Integer[0]);
        Arrays.sort(order, new Comparator<Integer>() {
            @Override
            public int compare(Integer x, Integer y) {
                int bySc = Float.compare(best[y], best[x]);
                return bySc != 0 ? bySc : Integer.compare(x, y);
            }
        });
        List<Integer> kept = new ArrayList<>();
        for (int i : order) {
            if (kept.size() >= maxResults) {
                break;
            }
            boolean suppressed = false;
            for (int k : kept) {
                if (iou(boxes[i], boxes[k]) > IOU_THRESHOLD) {
                    suppressed = true;
                    break;
                }
            }
            if (!suppressed) {
                kept.add(i);
            }
        }
        List<Detection> out = new ArrayList<>();
        for (int i : kept) {
            out.add(new Detection(boxes[i], cls[i], spec.label(cls[i]), best[i]));
        }
        return out;
    }

    /** Anchor i's box [ymin, xmin, ymax, xmax] from its encoding (ty, tx, th, tw). */
    static float[] box(float[] location, int i, DetectorMetadata m) {
        float xa = m.anchors[4 * i];
        float ya = m.anchors[4 * i + 1];
        float wa = m.anchors[4 * i + 2];
        float ha = m.anchors[4 * i + 3];
        float yc = location[4 * i] / m.yScale * ha + ya;
        float xc = location[4 * i + 1] / m.xScale * wa + xa;
        float h;
        float w;
        if (m.applyExponentialOnBoxSize) {
            h = (float) Math.exp(location[4 * i + 2] / m.hScale) * ha;
            w = (float) Math.exp(location[4 * i + 3] / m.wScale) * wa;
        } else {
            h = location[4 * i + 2] / m.hScale * ha;
            w = location[4 * i + 3] / m.wScale * wa;
        }
        return new float[] {yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2};
    }

    static float iou(float[] p, float[] q) {
        float ih = Math.max(0f, Math.min(p[2], q[2]) - Math.max(p[0], q[0]));
        float iw = Math.max(0f, Math.min(p[3], q[3]) - Math.max(p[1], q[1]));
        float inter = ih * iw;
        float union = area(p) + area(q) - inter;
        return union > 0 ? inter / Math.max(union, 1e-12f) : 0f;
    }

    private static float area(float[] b) {
        return Math.max(0f, b[2] - b[0]) * Math.max(0f, b[3] - b[1]);
    }

    private static float[] floats(Session session, int output) throws ProtocolException {
        TensorSpec t = session.output(output);
        if (!"float32".equals(t.dtype)) {
            throw new ProtocolException("output " + output + " ('" + t.name + "') is " + t.dtype
                    + "; the gpu variant's location and score outputs are float32");
        }
        return DetectionDecoder.toFloats(session.outputData(output));
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
