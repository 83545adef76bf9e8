package dev.liteship.demo;

import android.graphics.Bitmap;
import java.io.File;
import java.nio.ByteBuffer;
import org.tensorflow.lite.TensorFlowLite;

/** The phone side of {@link Platform}: LiteRT, its metadata reader, BitmapFactory + {@link Preprocessor}. */
public final class AndroidPlatform implements Platform {
    @Override
    public ModelSpec readModel(ByteBuffer model) throws Exception {
        return MetadataReader.read(model);
    }

    @Override
    public Session open(ByteBuffer model, String delegate, int threads) throws Exception {
        return LiteRtSession.open(model, delegate, threads);
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

    /** "LiteRT 1.4.0 (Android; TFLite runtime 2.x)": the Maven artifact version and the native runtime's own. */
    public static String runtimeName() {
        String native_;
        try {
            native_ = TensorFlowLite.runtimeVersion();
        } catch (Throwable t) {
            native_ = "unknown";
        }
        return "LiteRT " + BuildConfig.LITERT_VERSION + " (Android; TFLite runtime " + native_ + ")";
    }
}
