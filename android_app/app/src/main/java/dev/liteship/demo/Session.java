package dev.liteship.demo;

import java.nio.ByteBuffer;

/** One interpreter with one delegate (LiteRtSession on the phone, a fake in the Java test harness). */
public interface Session extends AutoCloseable {
    /** Input 0, the only input an SSD detector has. */
    TensorSpec input();

    int outputCount();

    /** Feeds input 0 (exactly the tensor's byte size) and invokes the model. */
    void run(ByteBuffer input) throws Exception;

    /** Output i as the runtime reports it after run(). */
    TensorSpec output(int i);

    /** A copy of output i's bytes after run(), in the device's native (little-endian) order. */
    ByteBuffer outputData(int i);

    @Override
    void close();
}
