package dev.liteship.demo;

import java.io.File;
import java.nio.ByteBuffer;

/** What the validation runner needs from the device: the runtimes, the metadata reader, the image path. */
public interface Platform {
    /** Reads the model's TFLite metadata (output names, labels, normalization). */
    ModelSpec readModel(ByteBuffer model) throws Exception;

    /**
     * Opens a tensor engine ("interpreter" or "compiled") on one accelerator ("cpu", "gpu", "nnapi").
     *
     * @throws DelegateUnavailableException when the accelerator cannot be used on this device at all
     */
    Session open(String engine, File modelFile, ByteBuffer model, String accelerator, int threads) throws Exception;

    /** Opens the "mediapipe" engine (MediaPipe Tasks ObjectDetector) on one accelerator. */
    DetectorSession openDetector(File modelFile, ByteBuffer model, ModelSpec spec, String accelerator,
                                 float scoreThreshold, int maxResults) throws Exception;

    /** Decodes an image file and runs the app's own preprocessing into input 0's bytes. */
    ByteBuffer loadImage(File image, TensorSpec input, ModelSpec spec) throws Exception;

    /** e.g. "LiteRT 2.3.0 (Android)". */
    String runtime();
}
