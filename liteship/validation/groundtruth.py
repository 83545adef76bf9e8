"""Ground truth for validating a detector: Pascal VOC XML folders and CSV files.

Supported formats:

* a folder of Pascal VOC XML files, one per image, as labelImg writes them; each XML's
  ``<filename>`` names the image, looked up in the same folder as the XML;
* a CSV file with the header ``filename,width,height,class,xmin,ymin,xmax,ymax`` (one row
  per box, the format of the common ``xml_to_csv.py`` scripts); other columns are
  ignored, an optional ``difficult`` column is honoured, and a row with an empty
  ``class`` and empty coordinates lists an image without objects. Image paths are
  relative to the CSV's folder.

* an OD API TFRecord (``.record`` / ``.tfrecord`` / ``.tfrecords``, or a sharded
  ``name.record-00000-of-00004`` given as any shard or as ``name.record-?????-of-?????``)
  of ``tf.train.Example`` with the OD API's keys (``object_detection.core.standard_fields
  .TfExampleFields``: ``image/encoded``, ``image/filename``, normalized
  ``image/object/bbox/*``, ``image/object/class/text`` or ``.../label`` ids, ``difficult``).
  The embedded images are extracted once per process into a temporary folder (the rest of
  liteship works on image files).

Boxes are in pixels, ``(xmin, ymin, xmax, ymax)``. Every referenced image must exist; its
header is read to check the annotated size (a size of 0, which some labelImg versions
write, is replaced by the real one). EXIF orientation: labelImg and the OD API's TFRecord
tools use the image as stored (no EXIF rotation), other tools annotate the upright view;
the annotated size tells which one when the EXIF orientation swaps width and height, and
:meth:`GroundTruth.load_rgb` decodes the image in that orientation. Every problem is a
:class:`~liteship.errors.GroundTruthProblem` naming the file.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from liteship.converter.calibration import MAX_PIXELS, _to_rgb, load_rgb
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
                    return _to_rgb(image)
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


def load_ground_truth(path: Path | str, class_names: Sequence[str] | None = None) -> list[GroundTruth]:
    """Load ground truth from what ``path`` is.

    A folder with ``.xml`` files -> Pascal VOC; a ``.csv`` file -> CSV; a folder with
    ``annotations.csv`` and no ``.xml`` -> that CSV. With ``class_names``, every label must
    be one of them.
    """
    path = Path(path)
    if not path.exists() and not is_tfrecord(path):
        raise GroundTruthProblem(
            f"ground truth {path} does not exist: pass a folder of Pascal VOC XML files, a CSV file or an OD API TFRecord")
    if path.is_dir():
        if any(_xml_files(path)):
            return load_voc_folder(path, class_names)
        if (path / CSV_DEFAULT_NAME).is_file():
            return load_csv(path / CSV_DEFAULT_NAME, class_names)
        raise GroundTruthProblem(
            f"ground truth folder {path} has no Pascal VOC .xml files and no {CSV_DEFAULT_NAME}",
            hint="pass the folder labelImg saved the XML files to, or a CSV file",
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path, class_names)
    if is_tfrecord(path):
        from liteship.validation.tfrecord import load_tfrecord

        return load_tfrecord(path, class_names)
    if suffix == ".xml":
        raise GroundTruthProblem(
            f"ground truth {path} is a single XML file: pass the folder that holds the VOC XML files"
        )
    raise GroundTruthProblem(
        f"ground truth {path} is neither a folder of Pascal VOC XML files, a .csv file nor an OD API TFRecord "
        f"(.record / .tfrecord)"
    )


_SHARD = re.compile(r"^(?P<stem>.+)-(?:\d{5}|\?{5})-of-(?:\d{5}|\?{5})$")


def is_tfrecord(path: Path) -> bool:
    """``x.record``, ``x.tfrecord(s)``, or a shard / shard pattern of one."""
    name = path.name.lower()
    if path.suffix.lower() in TFRECORD_SUFFIXES:
        return True
    m = _SHARD.match(name)
    return bool(m) and Path(m.group("stem")).suffix in TFRECORD_SUFFIXES


# --- Pascal VOC ------------------------------------------------------------------------


def load_voc_folder(folder: Path | str, class_names: Sequence[str] | None = None) -> list[GroundTruth]:
    """One :class:`GroundTruth` per ``.xml`` file directly in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GroundTruthProblem(f"Pascal VOC folder {folder} does not exist or is not a folder")
    files = sorted(_xml_files(folder))
    if not files:
        raise GroundTruthProblem(f"Pascal VOC folder {folder} has no .xml files")
    known = _known_labels(class_names)
    result: list[GroundTruth] = []
    seen: dict[str, Path] = {}
    for xml_path in files:
        gt = _load_voc_file(xml_path, known)
        if gt.filename in seen:
            raise GroundTruthProblem(
                f"{xml_path}: image {gt.filename!r} is already annotated by {seen[gt.filename]}"
            )
        seen[gt.filename] = xml_path
        result.append(gt)
    return result


def _xml_files(folder: Path) -> Iterable[Path]:
    return (p for p in folder.iterdir() if p.suffix.lower() == ".xml" and p.is_file())


def _load_voc_file(xml_path: Path, known: frozenset[str] | None) -> GroundTruth:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise GroundTruthProblem(f"{xml_path}: malformed XML ({exc})") from None
    except OSError as exc:
        raise GroundTruthProblem(f"{xml_path}: cannot be read ({exc.strerror or exc})") from None
    if root.tag != "annotation":
        raise GroundTruthProblem(f"{xml_path}: not a Pascal VOC annotation (root element <{root.tag}>, expected <annotation>)")
    filename = _text(root, "filename")
    if not filename:
        raise GroundTruthProblem(f"{xml_path}: no <filename> (the image this XML annotates)")
    image_path = _resolve_image(xml_path, xml_path.parent, filename, xml_hint=True)
    width = _voc_int(xml_path, root, "size/width", default=0)
    height = _voc_int(xml_path, root, "size/height", default=0)
    width, height, transpose = _checked_size(xml_path, image_path, width, height)
    boxes = []
    for number, obj in enumerate(root.iter("object"), start=1):
        where = f"{xml_path}: object {number}"
        label = _text(obj, "name")
        if not label:
            raise GroundTruthProblem(f"{where} has no <name>")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise GroundTruthProblem(f"{where} ({label!r}) has no <bndbox>")
        coords = [_voc_float(f"{where} ({label!r})", bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        difficult = _voc_int(xml_path, obj, "difficult", default=0) != 0
        box = GroundTruthBox(*coords, label=label, difficult=difficult)
        boxes.append(_checked_box(f"{where}", box, width, height, known))
    return GroundTruth(filename, image_path, width, height, tuple(boxes), xml_path, transpose)


def _text(element: ET.Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _voc_int(xml_path: Path, element: ET.Element, path: str, default: int) -> int:
    raw = _text(element, path)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise GroundTruthProblem(f"{xml_path}: <{path}> is {raw!r}, expected a number") from None
    if not math.isfinite(value) or value != int(value):
        raise GroundTruthProblem(f"{xml_path}: <{path}> is {raw!r}, expected a whole number")
    return int(value)


def _voc_float(where: str, bndbox: ET.Element, tag: str) -> float:
    raw = _text(bndbox, tag)
    if not raw:
        raise GroundTruthProblem(f"{where}: <bndbox> has no <{tag}>")
    try:
        value = float(raw)
    except ValueError:
        raise GroundTruthProblem(f"{where}: <{tag}> is {raw!r}, expected a number") from None
    if not math.isfinite(value):
        raise GroundTruthProblem(f"{where}: <{tag}> is {raw!r}, expected a finite number")
    return value


# --- CSV -------------------------------------------------------------------------------


def load_csv(path: Path | str, class_names: Sequence[str] | None = None) -> list[GroundTruth]:
    """One :class:`GroundTruth` per distinct ``filename``, in order of first appearance."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise GroundTruthProblem(f"{path}: no such CSV file") from None
    except IsADirectoryError:
        raise GroundTruthProblem(f"{path} is a folder, expected a CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GroundTruthProblem(f"{path}: cannot be read as CSV ({exc})") from None
    if not rows:
        raise GroundTruthProblem(f"{path}: empty CSV file, expected the header {','.join(CSV_COLUMNS)}")
    header = [name.strip().lower() for name in rows[0]]
    missing = [name for name in CSV_COLUMNS if name not in header]
    if missing:
        raise GroundTruthProblem(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(header is {','.join(rows[0])!r}; expected {','.join(CSV_COLUMNS)})"
        )
    column = {name: header.index(name) for name in (*CSV_COLUMNS, "difficult") if name in header}
    known = _known_labels(class_names)
    images: dict[str, tuple[Path, int, int, list[GroundTruthBox], bool]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}, line {line}"
        if len(row) < len(header):
            raise GroundTruthProblem(f"{where}: {len(row)} values, the header has {len(header)}")
        cell = {name: row[index].strip() for name, index in column.items()}
        filename = cell["filename"]
        if not filename:
            raise GroundTruthProblem(f"{where}: empty filename")
        width, height = _csv_int(where, cell, "width"), _csv_int(where, cell, "height")
        if filename in images:
            image_path, known_w, known_h, boxes, _ = images[filename]
            if (width, height) != (known_w, known_h) and (width, height) != (0, 0):
                raise GroundTruthProblem(
                    f"{where}: {filename} is {width}x{height} here but {known_w}x{known_h} on an earlier line"
                )
        else:
            image_path = _resolve_image(path, path.parent, filename)
            width, height, transpose = _checked_size(Path(where), image_path, width, height)
            boxes = []
            images[filename] = (image_path, width, height, boxes, transpose)
        width, height = images[filename][1], images[filename][2]
        coords = [cell[name] for name in ("xmin", "ymin", "xmax", "ymax")]
        if not cell["class"] and not any(coords):
            continue  # an image without objects
        if not cell["class"]:
            raise GroundTruthProblem(f"{where}: empty class")
        difficult = cell.get("difficult", "").lower() not in ("", "0", "false")
        xmin, ymin, xmax, ymax = (_csv_float(where, cell, n) for n in ("xmin", "ymin", "xmax", "ymax"))
        box = GroundTruthBox(xmin, ymin, xmax, ymax, label=cell["class"], difficult=difficult)
        boxes.append(_checked_box(where, box, width, height, known))
    if not images:
        raise GroundTruthProblem(f"{path}: no rows after the header")
    return [
        GroundTruth(name, image_path, width, height, tuple(boxes), path, transpose)
        for name, (image_path, width, height, boxes, transpose) in images.items()
    ]


def _csv_int(where: str, cell: dict[str, str], name: str) -> int:
    value = _csv_float(where, cell, name)
    if value != int(value):
        raise GroundTruthProblem(f"{where}: {name} is {cell[name]!r}, expected a whole number")
    return int(value)


def _csv_float(where: str, cell: dict[str, str], name: str) -> float:
    raw = cell[name]
    try:
        value = float(raw)
    except ValueError:
        raise GroundTruthProblem(f"{where}: {name} is {raw!r}, expected a number") from None
    if not math.isfinite(value):
        raise GroundTruthProblem(f"{where}: {name} is {raw!r}, expected a finite number")
    return value


# --- shared checks ---------------------------------------------------------------------


def _known_labels(class_names: Sequence[str] | None) -> frozenset[str] | None:
    return None if class_names is None else frozenset(class_names)


def _resolve_image(annotation: Path, folder: Path, filename: str, *, xml_hint: bool = False) -> Path:
    image_path = folder / filename
    if image_path.is_file():
        return image_path
    hint = None
    if xml_hint:
        siblings = sorted(p.name for p in folder.glob(f"{annotation.stem}.*") if p.suffix.lower() != ".xml")
        if siblings:
            hint = f"{', '.join(siblings)} is next to the XML: was the image renamed? fix <filename>"
    raise GroundTruthProblem(f"{annotation}: image {filename!r} not found (looked for {image_path})", hint=hint)


def _checked_size(annotation: Path, image_path: Path, width: int, height: int) -> tuple[int, int, bool]:
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


def _checked_box(where: str, box: GroundTruthBox, width: int, height: int, known: frozenset[str] | None) -> GroundTruthBox:
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
