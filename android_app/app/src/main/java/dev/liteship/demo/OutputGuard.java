package dev.liteship.demo;

/**
 * Guards the CompiledModel run. LiteRT 2.x's CompiledModel sizes its output buffers from the shapes
 * STORED in the model; TFLite_Detection_PostProcess outputs stored as shape [] get 4-byte buffers,
 * the op writes [1, N, 4] into them, and the heap is corrupted (LiteRT#9518; on the desktop:
 * "Custom allocation is too small for tensor idx: N", then an abort). A native abort would kill the
 * app and every result with it, so the app measures first: each output buffer's size as CompiledModel
 * reports it (getOutputBufferRequirements) against the bytes the Interpreter allocates for the same
 * tensor after allocateTensors(), and refuses to run when a buffer is too small.
 */
public final class OutputGuard {
    private OutputGuard() {}

    /** Null when every buffer holds its tensor; otherwise what is too small, by how much, and the fix. */
    public static String problem(String[] tensorNames, long[] bufferBytes, long[] neededBytes) {
        StringBuilder small = new StringBuilder();
        for (int i = 0; i < tensorNames.length; i++) {
            if (bufferBytes[i] < neededBytes[i]) {
                small.append(small.length() == 0 ? "" : ", ").append('\'').append(tensorNames[i]).append("' ")
                        .append(bufferBytes[i]).append(" < ").append(neededBytes[i]).append(" bytes");
            }
        }
        if (small.length() == 0) {
            return null;
        }
        return "CompiledModel's output buffers are too small for what the model writes (" + small
                + "; sized from the shapes stored in the model, e.g. [] for TFLite_Detection_PostProcess "
                + "outputs, LiteRT#9518); not run: it would corrupt the app's memory. Store the real output "
                + "shapes ([1,N,4], [1,N], [1,N], [1]) in the model, or use the interpreter engine";
    }
}
