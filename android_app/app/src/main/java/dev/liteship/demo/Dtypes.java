package dev.liteship.demo;

/** Element sizes of the protocol's dtype names (the lower-cased LiteRT DataType names). */
public final class Dtypes {
    private Dtypes() {}

    /** Bytes per element, or -1 for a dtype the protocol does not know. */
    public static int byteSize(String dtype) {
        if (dtype == null) {
            return -1;
        }
        switch (dtype) {
            case "float32":
            case "int32":
                return 4;
            case "float16":
                return 2;
            case "int8":
            case "uint8":
            case "bool":
                return 1;
            case "int64":
                return 8;
            default:
                return -1;
        }
    }

    public static boolean isProtocolDtype(String dtype) {
        return dtype != null && Protocol.contains(Protocol.DTYPES, dtype);
    }

    public static long numElements(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }
}
