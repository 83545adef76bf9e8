package dev.liteship.demo;

import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.Matrix;
import android.media.ExifInterface;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The app's image preprocessing, ONE code path for the live camera (MainActivity) and for
 * {@code kind: image} validation inputs: upright bitmap -> scaled to the input size with bilinear
 * filtering (aspect ratio NOT kept, like the OD API's fixed_shape_resizer) -> {@link PixelPacker}
 * (raw uint8, or float with the metadata's mean/std).
 */
public final class Preprocessor {
    private Preprocessor() {}

    public static ByteBuffer toInput(Bitmap upright, TensorSpec input, ModelSpec spec) throws ProtocolException {
        int[] hw = PixelPacker.inputSize(input);
        int height = hw[0];
        int width = hw[1];
        Bitmap scaled = Bitmap.createScaledBitmap(upright, width, height, true);
        try {
            int[] pixels = new int[width * height];
            scaled.getPixels(pixels, 0, width, 0, 0, width, height);
            return PixelPacker.pack(pixels, width, height, input, spec);
        } finally {
            if (scaled != upright) {
                scaled.recycle();
            }
        }
    }

    /** Decodes an image file to ARGB_8888 with its EXIF orientation applied (the upright view). */
    public static Bitmap decodeFile(File file) throws IOException {
        BitmapFactory.Options options = new BitmapFactory.Options();
        options.inPreferredConfig = Bitmap.Config.ARGB_8888;
        Bitmap bitmap = BitmapFactory.decodeFile(file.getAbsolutePath(), options);
        if (bitmap == null) {
            throw new IOException("BitmapFactory cannot decode " + file.getName()
                    + " (not an image, or a format this Android version does not read)");
        }
        int orientation = ExifInterface.ORIENTATION_NORMAL;
        try {
            orientation = new ExifInterface(file.getAbsolutePath())
                    .getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL);
        } catch (IOException | RuntimeException ignored) {
            // no readable EXIF: the stored view is the upright view
        }
        Matrix m = new Matrix();
        switch (orientation) {
            case ExifInterface.ORIENTATION_FLIP_HORIZONTAL:
                m.postScale(-1, 1);
                break;
            case ExifInterface.ORIENTATION_ROTATE_180:
                m.postRotate(180);
                break;
            case ExifInterface.ORIENTATION_FLIP_VERTICAL:
                m.postScale(1, -1);
                break;
            case ExifInterface.ORIENTATION_TRANSPOSE:
                m.postRotate(90);
                m.postScale(-1, 1);
                break;
            case ExifInterface.ORIENTATION_ROTATE_90:
                m.postRotate(90);
                break;
            case ExifInterface.ORIENTATION_TRANSVERSE:
                m.postRotate(-90);
                m.postScale(-1, 1);
                break;
            case ExifInterface.ORIENTATION_ROTATE_270:
                m.postRotate(270);
                break;
            default:
                return bitmap;
        }
        return transform(bitmap, m);
    }

    /** Rotates a camera frame clockwise by the degrees CameraX reports, giving the upright view. */
    public static Bitmap rotate(Bitmap frame, int degrees) {
        if (degrees % 360 == 0) {
            return frame;
        }
        Matrix m = new Matrix();
        m.postRotate(degrees);
        return transform(frame, m);
    }

    private static Bitmap transform(Bitmap src, Matrix m) {
        Bitmap out = Bitmap.createBitmap(src, 0, 0, src.getWidth(), src.getHeight(), m, true);
        if (out != src) {
            src.recycle();
        }
        return out;
    }
}
