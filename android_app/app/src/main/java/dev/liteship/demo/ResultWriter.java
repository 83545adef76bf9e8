package dev.liteship.demo;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.Charset;
import java.text.SimpleDateFormat;
import java.util.Date;
import java.util.List;
import java.util.Locale;
import java.util.TimeZone;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/** Builds the pieces of a {@code liteship.device.result} v1 document (org.json) and writes it atomically. */
public final class ResultWriter {
    private static final Charset UTF8 = Charset.forName("UTF-8");

    private ResultWriter() {}

    /** {stage, type, message}: type is the exception's class name. */
    public static JSONObject error(String stage, Throwable t) throws JSONException {
        Throwable shown = t;
        if (t instanceof StageException && t.getCause() != null) {
            shown = t.getCause();
        }
        String message = shown.getMessage();
        JSONObject e = new JSONObject();
        e.put("stage", stage);
        e.put("type", shown.getClass().getName());
        e.put("message", message == null ? shown.toString() : message);
        return e;
    }

    public static JSONObject tensor(TensorSpec spec, ByteBuffer data) throws JSONException {
        ByteBuffer b = data.duplicate();
        b.rewind();
        byte[] bytes = new byte[b.remaining()];
        b.get(bytes);
        JSONObject t = new JSONObject();
        t.put("name", spec.name);
        t.put("index", spec.index);
        t.put("dtype", spec.dtype);
        t.put("shape", ints(spec.shape));
        t.put("data_b64", Base64Codec.encode(bytes));
        return t;
    }

    public static JSONArray detections(List<Detection> detections) throws JSONException {
        JSONArray out = new JSONArray();
        for (Detection d : detections) {
            JSONObject o = new JSONObject();
            JSONArray box = new JSONArray();
            for (float v : d.box) {
                box.put(number(v));
            }
            o.put("box", box);
            o.put("class_index", d.classIndex);
            o.put("label", d.label == null ? JSONObject.NULL : d.label);
            o.put("score", number(d.score));
            out.put(o);
        }
        return out;
    }

    public static JSONArray ints(int[] values) {
        JSONArray a = new JSONArray();
        for (int v : values) {
            a.put(v);
        }
        return a;
    }

    public static JSONArray strings(List<String> values) {
        JSONArray a = new JSONArray();
        for (String v : values) {
            a.put(v);
        }
        return a;
    }

    /** The shortest decimal that reads back as the same float32 (0.1f -> 0.1, not 0.10000000149). */
    public static double number(float v) {
        return Double.parseDouble(Float.toString(v));
    }

    /** Milliseconds rounded to microseconds. */
    public static double millis(long nanos) {
        return Math.round(nanos / 1000.0) / 1000.0;
    }

    public static String utcNow() {
        SimpleDateFormat f = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", Locale.US);
        f.setTimeZone(TimeZone.getTimeZone("UTC"));
        return f.format(new Date());
    }

    /**
     * Writes {@code result.json.tmp} in the run folder, syncs it, then renames it to
     * {@code result.json}: the host either sees no result or a complete one.
     */
    public static File writeAtomically(File runDir, String text) throws IOException {
        File tmp = new File(runDir, Protocol.RESULT_TMP_NAME);
        File dst = new File(runDir, Protocol.RESULT_NAME);
        FileOutputStream out = new FileOutputStream(tmp);
        try {
            out.write(text.getBytes(UTF8));
            out.flush();
            out.getFD().sync();
        } finally {
            out.close();
        }
        if (!tmp.renameTo(dst)) {
            // rename(2) replaces an existing file; a filesystem that refuses gets one more try.
            if (dst.exists() && !dst.delete()) {
                throw new IOException("cannot replace " + dst);
            }
            if (!tmp.renameTo(dst)) {
                throw new IOException("cannot rename " + tmp + " to " + dst);
            }
        }
        return dst;
    }

    /** Carries the protocol stage a failure belongs to; the reported type is the cause's class. */
    static final class StageException extends Exception {
        final String stage;

        StageException(String stage, Throwable cause) {
            super(cause.getMessage(), cause);
            this.stage = stage;
        }
    }
}
