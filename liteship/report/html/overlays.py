"""Detections drawn on ground-truth images, from detections the validation stage computed.

The renderer runs no model: :class:`Overlay` carries each image, its ground truth and each
variant's detections (or why a variant has none).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from liteship.report.html.text import e, get, variants_of

OVERLAY_SCORE = 0.3
PANEL_WIDTH = 220


@dataclass(frozen=True)
class OverlayImage:
    filename: str
    rgb: Any  # uint8 HxWx3, as the boxes refer to it
    gt_boxes: tuple[Any, ...]  # liteship.validation.groundtruth.GroundTruthBox (pixel xmin..ymax)
    #: variant name -> its Detections (pixel boxes), or why it has none for this image
    detections: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Overlays:
    labels: tuple[str, ...]
    images: tuple[OverlayImage, ...]



def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _dashed_rect(draw: Any, box: Sequence[float], colour: str, width: int = 2, dash: int = 5) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay, bx, by) in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
        length = math.hypot(bx - ax, by - ay)
        steps = max(int(length // dash), 1)
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min((k + 1) / steps, 1.0)
            draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                      fill=colour, width=width)


def _panel(rgb: Any, gt_boxes: Sequence[Any], detections: Any, labels: Sequence[str]) -> str:
    """A JPEG data URI: the image scaled to PANEL_WIDTH, ground truth dashed green,
    detections above OVERLAY_SCORE solid red/orange with 'label score'."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb, "RGB")
    scale = PANEL_WIDTH / image.width
    size = (PANEL_WIDTH, max(int(round(image.height * scale)), 1))
    image = image.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    font = _font(11)
    for box in gt_boxes:
        _dashed_rect(draw, [box.xmin * scale, box.ymin * scale, box.xmax * scale, box.ymax * scale], "#00e000")
    if detections is not None:
        for b, c, s in zip(detections.boxes, detections.classes, detections.scores):
            if float(s) < OVERLAY_SCORE:
                continue
            x0, y0, x1, y1 = (float(t) * scale for t in b)
            draw.rectangle([x0, y0, x1, y1], outline="#ff2020", width=2)
            name = labels[int(c)] if 0 <= int(c) < len(labels) else f"class {int(c)}"
            text = f"{name} {float(s):.2f}"
            tx, ty = x0 + 1, max(y0 - 13, 0)
            text_w = draw.textlength(text, font=font)
            tx = max(min(tx, image.width - text_w - 2), 0)
            bbox = draw.textbbox((tx, ty), text, font=font)
            draw.rectangle(bbox, fill="#ff2020")
            draw.text((tx, ty), text, fill="#ffffff", font=font)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def overlays_section(report: dict[str, Any], overlays: Overlays | None) -> str:
    out = ['<h2 id="overlays">Detections on ground-truth images</h2>']
    if not variants_of(report) and report.get("devices"):
        return ""
    if not variants_of(report):
        out.append('<p class="note">No overlays: the run wrote no model variant.</p>')
        return "".join(out)
    if not get(report, "validation", "ground_truth"):
        out.append('<p class="note">No overlays: this run had no ground truth (pass ground-truth images to '
                   "<code>liteship run</code> to see each variant's detections here).</p>")
        return "".join(out)
    if overlays is None or not overlays.images:
        out.append('<p class="note">No overlays: the validation stage computed none for this page.</p>')
        return "".join(out)
    names = [str(v.get("name")) for v in variants_of(report)]
    out.append(
        '<p class="legend"><span><i class="swatch" style="border-color:#00c000;border-top-style:dashed"></i>ground truth</span>'
        f'<span><i class="swatch" style="border-color:#ff2020"></i>detections with score ≥ {OVERLAY_SCORE}</span>'
        f"first {len(overlays.images)} ground-truth image(s); each model ran like an app: one image at a time.</p>"
    )
    head = "".join(f"<th>{e(name)}</th>" for name in names)
    rows = []
    for image in overlays.images:
        cells = []
        for name in names:
            det = image.detections.get(name, "not run on this image")
            if isinstance(det, str):
                cells.append(f'<td class="sectionerror">{e(det)}</td>')
                continue
            shown = int((det.scores >= OVERLAY_SCORE).sum())
            uri = _panel(image.rgb, image.gt_boxes, det, overlays.labels)
            cells.append(
                f'<td><img src="{uri}" alt="{e(name)} on {e(image.filename)}" width="{PANEL_WIDTH}">'
                f"{shown} det. / {len(image.gt_boxes)} GT</td>"
            )
        rows.append(f"<tr><th><code>{e(image.filename)}</code></th>{''.join(cells)}</tr>")
    out.append(f'<table class="overlay"><tr><th>image</th>{head}</tr>{"".join(rows)}</table>')
    return "".join(out)
