"""Ground-truth data: images with annotated boxes in pixels, and the checks every format shares."""


from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from liteship.converter.calibration import MAX_PIXELS, to_rgb, load_rgb
from liteship.errors import CalibrationProblem, GroundTruthProblem

CSV_COLUMNS: tuple[str, ...] = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
CSV_DEFAULT_NAME = "annotations.csv"
TFRECORD_SUFFIXES = frozenset({".record", ".tfrecord", ".tfrecords"})

#: EXIF orientations that swap width and height (rotations by 90 / 270 degrees).
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class GroundTruthBox:
    """One annotated object, in pixels."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: str
    difficult: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "xmin": self.xmin,
            "ymin": self.ymin,
            "xmax": self.xmax,
            "ymax": self.ymax,
            "label": self.label,
            "difficult": self.difficult,
        }


@dataclass(frozen=True)
class GroundTruth:
    """The annotation of one image.

    ``filename`` is the image's name as the annotation gives it (the key of the image in
    :func:`liteship.validation.metrics.coco_map`'s ``detections``); ``image_path`` is
    where it was found.
    """

    filename: str
    image_path: Path
    width: int
    height: int
    boxes: tuple[GroundTruthBox, ...]
    #: the annotation file it came from (XML or CSV); not compared by ``==``
    source: Path = field(compare=False)
    #: True when the boxes refer to the EXIF-rotated (upright) view of the image
    exif_transpose: bool = False

    @property
    def num_boxes(self) -> int:
        return len(self.boxes)

    def load_rgb(self, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        """The image as uint8 HxWx3 RGB, in the orientation the boxes refer to."""
        try:
            if self.exif_transpose:
                return load_rgb(self.image_path, max_pixels)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(self.image_path) as image:
                    if image.size[0] * image.size[1] > max_pixels:
                        raise GroundTruthProblem(
                            f"{self.source}: image {self.image_path} is larger than {max_pixels / 1e6:g} MP"
                        )
                    image.load()
                    return to_rgb(image)
        except GroundTruthProblem:
            raise
        except CalibrationProblem as problem:  # load_rgb's wording is about calibration images
            reason = problem.message.split(f"{self.image_path}: ", 1)[-1]
            raise GroundTruthProblem(f"{self.source}: image {self.image_path} cannot be decoded ({reason})") from None
        except Exception as exc:  # noqa: BLE001 - untrusted file: any decoder failure
            raise GroundTruthProblem(f"{self.source}: image {self.image_path} cannot be decoded ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "image_path": str(self.image_path),
            "width": self.width,
            "height": self.height,
            "boxes": [box.to_dict() for box in self.boxes],
            "source": str(self.source),
            "exif_transpose": self.exif_transpose,
        }


# --- entry point -----------------------------------------------------------------------


SHARD = re.compile(r"^(?P<stem>.+)-(?:\d{5}|\?{5})-of-(?:\d{5}|\?{5})$")


def is_tfrecord(path: Path) -> bool:
    """``x.record``, ``x.tfrecord(s)``, or a shard / shard pattern of one."""
    name = path.name.lower()
    if path.suffix.lower() in TFRECORD_SUFFIXES:
        return True
    m = SHARD.match(name)
    return bool(m) and Path(m.group("stem")).suffix in TFRECORD_SUFFIXES


# --- shared checks ---------------------------------------------------------------------


def finite_float(where: str, name: str, raw: str) -> float:
    """A finite number from annotation text, or a GroundTruthProblem naming the field."""
    try:
        value = float(raw)
    except ValueError:
        raise GroundTruthProblem(f"{where}: {name} is {raw!r}, expected a number") from None
    if not math.isfinite(value):
        raise GroundTruthProblem(f"{where}: {name} is {raw!r}, expected a finite number")
    return value


def known_labels(class_names: Sequence[str] | None) -> frozenset[str] | None:
    return None if class_names is None else frozenset(class_names)


def resolve_image(annotation: Path, folder: Path, filename: str, *, xml_hint: bool = False) -> Path:
    image_path = folder / filename
    if image_path.is_file():
        return image_path
    hint = None
    if xml_hint:
        siblings = sorted(p.name for p in folder.glob(f"{annotation.stem}.*") if p.suffix.lower() != ".xml")
        if siblings:
            hint = f"{', '.join(siblings)} is next to the XML: was the image renamed? fix <filename>"
    raise GroundTruthProblem(f"{annotation}: image {filename!r} not found (looked for {image_path})", hint=hint)


def checked_size(annotation: Path, image_path: Path, width: int, height: int) -> tuple[int, int, bool]:
    """(width, height, exif_transpose): the annotated size checked against the image header.

    A size of 0 (or none) takes the stored size. A size that only matches the EXIF-rotated
    view means the boxes were drawn on that view (exif_transpose True).
    """
    if width < 0 or height < 0:
        raise GroundTruthProblem(f"{annotation}: image size {width}x{height} is negative")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(image_path) as image:
                real_w, real_h = image.size
                orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception as exc:  # noqa: BLE001 - untrusted file: any decoder failure means unusable
        raise GroundTruthProblem(f"{annotation}: image {image_path} cannot be read ({exc})") from None
    if width == 0 or height == 0:
        return real_w, real_h, False
    if (width, height) == (real_w, real_h):
        return width, height, False
    if (width, height) == (real_h, real_w) and orientation in _TRANSPOSING_ORIENTATIONS:
        return width, height, True
    raise GroundTruthProblem(
        f"{annotation}: annotated size {width}x{height} does not match image {image_path} ({real_w}x{real_h}); "
        "was the image resized after annotating?"
    )


def checked_box(where: str, box: GroundTruthBox, width: int, height: int, known: frozenset[str] | None) -> GroundTruthBox:
    coords = f"({box.xmin:g}, {box.ymin:g}, {box.xmax:g}, {box.ymax:g})"
    if box.xmin >= box.xmax or box.ymin >= box.ymax:
        raise GroundTruthProblem(f"{where}: box {coords} of {box.label!r} is empty: needs xmin < xmax and ymin < ymax")
    if box.xmin < 0 or box.ymin < 0 or box.xmax > width or box.ymax > height:
        raise GroundTruthProblem(f"{where}: box {coords} of {box.label!r} is outside the {width}x{height} image")
    if known is not None and box.label not in known:
        raise GroundTruthProblem(
            f"{where}: class {box.label!r} is not in the label list ({', '.join(sorted(known))})"
        )
    return box
