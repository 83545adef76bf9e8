package dev.liteship.demo;

import java.nio.ByteBuffer;

/**
 * One model on one engine and accelerator, fed tensors: the LiteRT Interpreter (LiteRtSession) or
 * CompiledModel (CompiledModelSession) on the phone, a fake in the Java test harness.
 */
public interface Session extends AutoCloseable {
    /** Input 0, the only input an SSD detector has. */
    TensorSpec input();

    int outputCount();

    /** Feeds input 0 (exactly the tensor's byte size) and invokes the model. */
    void run(ByteBuffer input) throws Exception;

    /** Output i (in the model's output order) as the runtime reports it after run(). */
    TensorSpec output(int i);

    /** A copy of output i's bytes after run(), in the device's native (little-endian) order. */
    ByteBuffer outputData(int i);

    /** What actually runs the model ("cpu", "gpu", ...): may differ from what was asked, see fallbackReason. */
    default String acceleratorUsed() {
        return "cpu";
    }

    /** Why the requested accelerator is not the one used (the runtime's words), or null. */
    default String fallbackReason() {
        return null;
    }

    /** The runtime behind this session, e.g. "LiteRT 2.3.0 CompiledModel". */
    default String runtime() {
        return "";
    }

    @Override
    void close();
}
