package dev.liteship.demo;

import java.io.File;
import java.nio.ByteBuffer;

/** What the validation runner needs from the device: the runtime, the metadata reader, the image path. */
public interface Platform {
    /** Reads the model's TFLite metadata (output names, labels, normalization). */
    ModelSpec readModel(ByteBuffer model) throws Exception;

    /**
     * Creates an interpreter for one delegate ("cpu", "gpu", "nnapi").
     *
     * @throws DelegateUnavailableException when the delegate cannot be created on this device
     */
    Session open(ByteBuffer model, String delegate, int threads) throws Exception;

    /** Decodes an image file and runs the app's own preprocessing into input 0's bytes. */
    ByteBuffer loadImage(File image, TensorSpec input, ModelSpec spec) throws Exception;

    /** e.g. "LiteRT 1.4.0 (Android)". */
    String runtime();
}
