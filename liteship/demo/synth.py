"""Seeded synthetic detection data: shapes on cluttered backgrounds.

Used by ``scripts/train_demo.py`` to make the embedded demo's training, validation and
calibration sets, and by the tests to make tiny fixtures. Pure numpy + Pillow.

Classes (label-map ids): 1 circle, 2 square, 3 triangle. Each image holds 1-3 objects of
varied scale (18-45 % of the shorter side), colour and rotation, over a gradient with
noise and clutter lines. Boxes are tight, in pixels, ``(xmin, ymin, xmax, ymax)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True)
class SynthObject:
    label: str  # one of CLASSES
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def class_id(self) -> int:
        """OD API label-map id (1-based)."""
        return CLASSES.index(self.label) + 1


@dataclass(frozen=True)
class SynthSample:
    name: str
    image: Image.Image
    objects: tuple[SynthObject, ...]


def _luma(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    c0 = rng.uniform(0, 255, 3)
    c1 = np.clip(c0 + rng.uniform(-70, 70, 3), 0, 255)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xx * math.cos(angle) + yy * math.sin(angle)) / max(width, height)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    for _ in range(int(rng.integers(2, 9))):  # clutter: thin random lines
        pts = [tuple(rng.uniform(0, [width, height])) for _ in range(int(rng.integers(2, 4)))]
        col = tuple(int(v) for v in rng.uniform(0, 255, 3))
        draw.line(pts, fill=col, width=int(rng.integers(1, 3)))
    return out


def _object_colour(rng: np.random.Generator, bg: np.ndarray) -> tuple[int, int, int]:
    bg_luma = _luma(bg)
    for _ in range(50):
        col = rng.uniform(0, 255, 3)
        if abs(_luma(col) - bg_luma) >= 70:
            break
    else:
        col = np.array([0.0, 0.0, 0.0]) if bg_luma > 127 else np.array([255.0, 255.0, 255.0])
    return (int(col[0]), int(col[1]), int(col[2]))


def _polygon(label: str, cx: float, cy: float, size: float, rot: float) -> list[tuple[float, float]]:
    if label == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        half = size / 2 / math.sqrt(2) * math.sqrt(2)  # side == size when unrotated
        r = half
    else:  # triangle
        corners = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        r = size / 2
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in corners]


def _overlaps(box: tuple[float, float, float, float], boxes: list[tuple[float, float, float, float]]) -> bool:
    for b in boxes:
        ix = max(0.0, min(box[2], b[2]) - max(box[0], b[0]))
        iy = max(0.0, min(box[3], b[3]) - max(box[1], b[1]))
        inter = ix * iy
        area = (box[2] - box[0]) * (box[3] - box[1])
        if inter > 0.15 * area:
            return True
    return False


def make_sample(rng: np.random.Generator, name: str, width: int | None = None, height: int | None = None) -> SynthSample:
    """One image with 1-3 shapes. Width/height default to a random 4:3-ish size."""
    if width is None or height is None:
        width = int(rng.integers(200, 321))
        height = int(width * rng.uniform(0.7, 1.0))
    image = _background(rng, width, height)
    arr = np.asarray(image)
    draw = ImageDraw.Draw(image)
    placed: list[tuple[float, float, float, float]] = []
    objects: list[SynthObject] = []
    short = min(width, height)
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            label = CLASSES[int(rng.integers(0, len(CLASSES)))]
            size = short * rng.uniform(0.18, 0.45)
            cx = rng.uniform(size / 2, width - size / 2)
            cy = rng.uniform(size / 2, height - size / 2)
            if label == "circle":
                aspect = rng.uniform(0.85, 1.15)
                w, h = size * aspect, size / aspect
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                poly = None
            else:
                rot = rng.uniform(-0.35, 0.35)
                poly = _polygon(label, cx, cy, size, rot)
                xs, ys = [p[0] for p in poly], [p[1] for p in poly]
                box = (min(xs), min(ys), max(xs), max(ys))
            box = (max(0.0, box[0]), max(0.0, box[1]), min(width - 1.0, box[2]), min(height - 1.0, box[3]))
            if not _overlaps(box, placed):
                break
        else:
            continue
        ix, iy = int(np.clip(cx, 0, width - 1)), int(np.clip(cy, 0, height - 1))
        colour = _object_colour(rng, arr[iy, ix].astype(np.float32))
        if poly is None:
            draw.ellipse(box, fill=colour)
        else:
            draw.polygon(poly, fill=colour)
        placed.append(box)
        objects.append(SynthObject(label, *box))
    if rng.uniform() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return SynthSample(name=name, image=image, objects=tuple(objects))


def generate(seed: int, count: int, prefix: str = "img") -> Iterator[SynthSample]:
    """``count`` samples from one seeded generator (same seed -> same images)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield make_sample(rng, f"{prefix}_{i:05d}")


def voc_xml(sample: SynthSample, filename: str) -> str:
    """Pascal VOC annotation, as labelImg writes it."""
    w, h = sample.image.size
    parts = [
        "<annotation>",
        f"  <filename>{filename}</filename>",
        f"  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>",
    ]
    for o in sample.objects:
        parts += [
            "  <object>",
            f"    <name>{o.label}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>",
            "    <bndbox>"
            f"<xmin>{round(o.xmin)}</xmin><ymin>{round(o.ymin)}</ymin>"
            f"<xmax>{round(o.xmax)}</xmax><ymax>{round(o.ymax)}</ymax></bndbox>",
            "  </object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def label_map_pbtxt(classes: tuple[str, ...] = CLASSES) -> str:
    return "".join(f"item {{\n  id: {i}\n  name: '{n}'\n}}\n" for i, n in enumerate(classes, start=1))
