package dev.liteship.demo;

import java.io.File;
import java.util.List;

/**
 * One model behind a task API that takes images and answers detections (MediaPipe Tasks'
 * ObjectDetector): no tensors in, no tensors out.
 */
public interface DetectorSession extends AutoCloseable {
    /** Decodes the image file (EXIF upright) for the next detect() calls (not timed). */
    void load(File image) throws Exception;

    /** Detects on the loaded image; boxes normalized to that image (the timed call). */
    List<Detection> detect() throws Exception;

    /** What actually runs the model: may differ from what was asked, see fallbackReason. */
    String acceleratorUsed();

    /** Why the requested accelerator is not the one used (the runtime's words), or null. */
    String fallbackReason();

    /** e.g. "MediaPipe tasks-vision 1.0.0 ObjectDetector". */
    String runtime();

    @Override
    void close();
}
