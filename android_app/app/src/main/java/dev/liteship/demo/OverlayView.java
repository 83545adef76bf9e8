package dev.liteship.demo;

import android.content.Context;
import android.graphics.Canvas;
import android.graphics.Color;
import android.graphics.Paint;
import android.graphics.RectF;
import android.util.AttributeSet;
import android.view.View;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Draws detection boxes and labels over the camera preview. The preview (PreviewView FILL_CENTER)
 * scales the upright frame to cover the view and crops the overflow; boxes get the same mapping.
 */
public final class OverlayView extends View {
    private final Paint boxPaint = new Paint();
    private final Paint textPaint = new Paint();
    private final Paint textBackground = new Paint();
    private final RectF rect = new RectF();
    private List<Detection> detections = new ArrayList<>();
    private int frameWidth = 1;
    private int frameHeight = 1;

    public OverlayView(Context context, AttributeSet attrs) {
        super(context, attrs);
        boxPaint.setStyle(Paint.Style.STROKE);
        boxPaint.setStrokeWidth(6f);
        boxPaint.setColor(Color.rgb(0, 200, 255));
        boxPaint.setAntiAlias(true);
        textPaint.setColor(Color.WHITE);
        textPaint.setTextSize(42f);
        textPaint.setAntiAlias(true);
        textBackground.setStyle(Paint.Style.FILL);
        textBackground.setColor(Color.argb(170, 0, 0, 0));
    }

    /** Call on the UI thread. Boxes are normalized to the upright frame of frameWidth x frameHeight. */
    public void show(List<Detection> detections, int frameWidth, int frameHeight) {
        this.detections = new ArrayList<>(detections);
        this.frameWidth = Math.max(1, frameWidth);
        this.frameHeight = Math.max(1, frameHeight);
        invalidate();
    }

    @Override
    protected void onDraw(Canvas canvas) {
        super.onDraw(canvas);
        float scale = Math.max(getWidth() / (float) frameWidth, getHeight() / (float) frameHeight);
        float dx = (getWidth() - frameWidth * scale) / 2f;
        float dy = (getHeight() - frameHeight * scale) / 2f;
        for (Detection d : detections) {
            float top = dy + clamp(d.box[0]) * frameHeight * scale;
            float left = dx + clamp(d.box[1]) * frameWidth * scale;
            float bottom = dy + clamp(d.box[2]) * frameHeight * scale;
            float right = dx + clamp(d.box[3]) * frameWidth * scale;
            rect.set(left, top, right, bottom);
            canvas.drawRect(rect, boxPaint);
            String text = (d.label != null ? d.label : "class " + d.classIndex)
                    + String.format(Locale.US, " %.0f%%", d.score * 100f);
            float textWidth = textPaint.measureText(text);
            float baseline = Math.max(top, 48f);
            canvas.drawRect(left, baseline - 46f, left + textWidth + 16f, baseline + 8f, textBackground);
            canvas.drawText(text, left + 8f, baseline - 4f, textPaint);
        }
    }

    private static float clamp(float v) {
        return Math.max(0f, Math.min(1f, v));
    }
}
