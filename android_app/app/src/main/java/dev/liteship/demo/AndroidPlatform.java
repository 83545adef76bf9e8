package dev.liteship.demo;

import android.content.Context;
import android.graphics.Bitmap;
import java.io.File;
import java.nio.ByteBuffer;

/**
 * The phone side of {@link Platform}: LiteRT 2.x (Interpreter, CompiledModel), MediaPipe Tasks, the
 * metadata reader, BitmapFactory + {@link Preprocessor}.
 */
public final class AndroidPlatform implements Platform {
    private final Context context;

    public AndroidPlatform(Context context) {
        this.context = context;
    }

    @Override
    public ModelSpec readModel(ByteBuffer model) throws Exception {
        return MetadataReader.read(model);
    }

    @Override
    public Session open(String engine, File modelFile, ByteBuffer model, String accelerator, int threads)
            throws Exception {
        if (Protocol.ENGINE_COMPILED.equals(engine)) {
            return CompiledModelSession.open(modelFile, model, accelerator, threads);
        }
        if (Protocol.ENGINE_INTERPRETER.equals(engine)) {
            return LiteRtSession.open(model, accelerator, threads);
        }
        throw new DelegateUnavailableException("no tensor engine '" + engine + "'");
    }

    @Override
    public DetectorSession openDetector(File modelFile, ByteBuffer model, ModelSpec spec, String accelerator,
                                        float scoreThreshold, int maxResults) throws Exception {
        return MediaPipeSession.open(context, model, spec, accelerator, scoreThreshold, maxResults);
    }

    @Override
    public ByteBuffer loadImage(File image, TensorSpec input, ModelSpec spec) throws Exception {
        Bitmap upright = Preprocessor.decodeFile(image);
        try {
            return Preprocessor.toInput(upright, input, spec);
        } finally {
            upright.recycle();
        }
    }

    @Override
    public String runtime() {
        return runtimeName();
    }

    /** "LiteRT 2.3.0 (Android; TFLite runtime 2.x)": the Maven artifact version and the native runtime's own. */
    public static String runtimeName() {
        return "LiteRT " + BuildConfig.LITERT_VERSION + " (Android; TFLite runtime " + LiteRtSession.nativeVersion()
                + "); MediaPipe tasks-vision " + BuildConfig.MEDIAPIPE_VERSION;
    }
}
