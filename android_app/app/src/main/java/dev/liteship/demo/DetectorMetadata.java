package dev.liteship.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;

/**
 * MediaPipe's DETECTOR_METADATA of a model of liteship's "gpu" variant (two outputs, raw box
 * encodings "location" and class scores "score", no TFLite_Detection_PostProcess): the SSD anchors
 * and the decoding options (schema mediapipe/tasks/metadata/object_detector_metadata_schema.fbs),
 * read straight from the model's bytes.
 *
 * <p>Why read the model here rather than take anchors in the request: the anchors belong to the
 * model (the same bytes MediaPipe decodes on the phone), so the app's CompiledModel decoder cannot
 * drift from what the model says, and a real app can use this class on its own models. Neither
 * LiteRT's MetadataExtractor nor the metadata schema classes expose custom metadata in the version
 * the app ships, so this is a minimal FlatBuffers reader (little-endian tables, vtables, vectors):
 * TFLite Model.metadata["TFLITE_METADATA"] -> its buffer -> ModelMetadata.subgraph_metadata[0]
 * .custom_metadata["DETECTOR_METADATA"].data -> ObjectDetectorOptions. Pure Java (no android.*).
 */
public final class DetectorMetadata {
    public static final String NAME = "DETECTOR_METADATA";
    static final String TFLITE_METADATA = "TFLITE_METADATA";
    private static final Charset UTF8 = Charset.forName("UTF-8");

    /** Per anchor x_center, y_center, width, height (normalized), 4 floats each. */
    public final float[] anchors;
    public final int numClasses;
    public final int numBoxes;
    public final int numCoords;
    public final float xScale;
    public final float yScale;
    public final float wScale;
    public final float hScale;
    public final boolean applyExponentialOnBoxSize;
    public final boolean sigmoidScore;

    DetectorMetadata(float[] anchors, int numClasses, int numBoxes, int numCoords, float xScale, float yScale,
                     float wScale, float hScale, boolean applyExponentialOnBoxSize, boolean sigmoidScore) {
        this.anchors = anchors;
        this.numClasses = numClasses;
        this.numBoxes = numBoxes;
        this.numCoords = numCoords;
        this.xScale = xScale;
        this.yScale = yScale;
        this.wScale = wScale;
        this.hScale = hScale;
        this.applyExponentialOnBoxSize = applyExponentialOnBoxSize;
        this.sigmoidScore = sigmoidScore;
    }

    /** The model's DETECTOR_METADATA, or null when it has none (a model with the postprocess op). */
    public static DetectorMetadata fromModel(ByteBuffer model) throws ProtocolException {
        byte[] data = find(model);
        return data == null ? null : parse(data);
    }

    /** The raw DETECTOR_METADATA bytes of a .tflite, or null when the model carries none. */
    public static byte[] find(ByteBuffer model) throws ProtocolException {
        Flat m = new Flat(copy(model));
        try {
            int root = m.root();
            int metadata = m.vector(root, 6);            // Model.metadata: [Metadata]
            int buffers = m.vector(root, 4);             // Model.buffers: [Buffer]
            if (metadata < 0 || buffers < 0) {
                return null;
            }
            for (int i = 0; i < m.length(metadata); i++) {
                int entry = m.table(metadata, i);
                if (!TFLITE_METADATA.equals(m.string(entry, 0))) {
                    continue;
                }
                int index = m.uint(entry, 1);
                if (index < 0 || index >= m.length(buffers)) {
                    throw new ProtocolException("TFLITE_METADATA names buffer " + index + ", the model has "
                            + m.length(buffers));
                }
                return custom(new Flat(bufferBytes(m, m.table(buffers, index))));
            }
            return null;
        } catch (IndexOutOfBoundsException e) {
            throw new ProtocolException("the model's metadata is not a readable FlatBuffer: " + e);
        }
    }

    private static byte[] bufferBytes(Flat m, int buffer) throws ProtocolException {
        int data = m.vector(buffer, 0);
        if (data >= 0) {
            return m.bytes(data);
        }
        long offset = m.ulong(buffer, 1);
        long size = m.ulong(buffer, 2);
        if (offset > 1 && offset + size <= m.b.capacity()) {   // stored after the FlatBuffer (> 2 GB models)
            byte[] out = new byte[(int) size];
            ByteBuffer d = m.b.duplicate();
            d.position((int) offset);
            d.get(out);
            return out;
        }
        throw new ProtocolException("the TFLITE_METADATA buffer is empty");
    }

    /** ModelMetadata.subgraph_metadata[0].custom_metadata[name == DETECTOR_METADATA].data. */
    private static byte[] custom(Flat md) {
        int root = md.root();
        int subgraphs = md.vector(root, 3);
        if (subgraphs < 0 || md.length(subgraphs) == 0) {
            return null;
        }
        int custom = md.vector(md.table(subgraphs, 0), 9);
        for (int i = 0; custom >= 0 && i < md.length(custom); i++) {
            int entry = md.table(custom, i);
            if (NAME.equals(md.string(entry, 0))) {
                int data = md.vector(entry, 1);
                return data < 0 ? new byte[0] : md.bytes(data);
            }
        }
        return null;
    }

    /** An ObjectDetectorOptions FlatBuffer (file identifier V001). */
    public static DetectorMetadata parse(byte[] data) throws ProtocolException {
        if (data.length < 8 || data[4] != 'V' || data[5] != '0' || data[6] != '0' || data[7] != '1') {
            throw new ProtocolException(NAME + " is not an ObjectDetectorOptions FlatBuffer (file identifier V001)");
        }
        Flat f = new Flat(ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN));
        try {
            int root = f.root();
            int ssd = f.sub(root, 1);
            int fixed = ssd < 0 ? -1 : f.sub(ssd, 0);
            if (fixed < 0) {
                throw new ProtocolException(NAME + " has no ssd_anchors_options.fixed_anchors_schema");
            }
            int vec = f.vector(fixed, 0);
            int count = vec < 0 ? 0 : f.length(vec);
            float[] anchors = new float[4 * count];
            for (int i = 0; i < count; i++) {
                int a = f.table(vec, i);
                for (int k = 0; k < 4; k++) {
                    anchors[4 * i + k] = f.float32(a, k, 0f);
                }
            }
            int dec = f.sub(root, 2);
            if (dec < 0) {
                throw new ProtocolException(NAME + " has no tensors_decoding_options");
            }
            int numBoxes = f.int32(dec, 1, 0);
            if (numBoxes != count) {
                throw new ProtocolException(NAME + " says num_boxes " + numBoxes + " but holds " + count + " anchors");
            }
            return new DetectorMetadata(anchors, f.int32(dec, 0, 0), numBoxes, f.int32(dec, 2, 0),
                    f.float32(dec, 6, 0f), f.float32(dec, 7, 0f), f.float32(dec, 8, 0f), f.float32(dec, 9, 0f),
                    f.bool(dec, 10), f.bool(dec, 11));
        } catch (IndexOutOfBoundsException e) {
            throw new ProtocolException(NAME + " is not a readable FlatBuffer: " + e);
        }
    }

    private static ByteBuffer copy(ByteBuffer model) {
        ByteBuffer d = model.duplicate();
        d.rewind();
        return d.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The few FlatBuffers reads this needs; positions are absolute in {@code b}. */
    static final class Flat {
        final ByteBuffer b;

        Flat(ByteBuffer b) {
            this.b = b.order(ByteOrder.LITTLE_ENDIAN);
        }

        Flat(byte[] data) {
            this(ByteBuffer.wrap(data));
        }

        int root() {
            return b.getInt(0);
        }

        /** Absolute position of a field of table t, or 0 when absent. */
        int field(int t, int slot) {
            int vtable = t - b.getInt(t);
            int vlen = b.getShort(vtable) & 0xffff;
            int at = 4 + 2 * slot;
            if (at >= vlen) {
                return 0;
            }
            int off = b.getShort(vtable + at) & 0xffff;
            return off == 0 ? 0 : t + off;
        }

        int indirect(int pos) {
            return pos + b.getInt(pos);
        }

        /** The table a field points to, or -1. */
        int sub(int t, int slot) {
            int f = field(t, slot);
            return f == 0 ? -1 : indirect(f);
        }

        /** Position of a vector's length word, or -1 when the field is absent. */
        int vector(int t, int slot) {
            return sub(t, slot);
        }

        int length(int vector) {
            return b.getInt(vector);
        }

        /** Element i of a vector of tables. */
        int table(int vector, int i) {
            return indirect(vector + 4 + 4 * i);
        }

        byte[] bytes(int vector) {
            byte[] out = new byte[length(vector)];
            ByteBuffer d = b.duplicate();
            d.position(vector + 4);
            d.get(out);
            return out;
        }

        String string(int t, int slot) {
            int s = sub(t, slot);
            return s < 0 ? null : new String(bytes(s), UTF8);
        }

        int int32(int t, int slot, int dflt) {
            int f = field(t, slot);
            return f == 0 ? dflt : b.getInt(f);
        }

        int uint(int t, int slot) {
            return int32(t, slot, 0);
        }

        long ulong(int t, int slot) {
            int f = field(t, slot);
            return f == 0 ? 0L : b.getLong(f);
        }

        float float32(int t, int slot, float dflt) {
            int f = field(t, slot);
            return f == 0 ? dflt : b.getFloat(f);
        }

        boolean bool(int t, int slot) {
            int f = field(t, slot);
            return f != 0 && b.get(f) != 0;
        }
    }
}
