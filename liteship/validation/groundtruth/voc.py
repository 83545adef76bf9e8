"""Pascal VOC: a folder of labelImg XML files, one per image."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

from liteship.errors import GroundTruthProblem
from liteship.validation.groundtruth.model import (
    GroundTruth,
    GroundTruthBox,
    checked_box,
    checked_size,
    finite_float,
    known_labels,
    resolve_image,
)


def load_voc_folder(folder: Path | str, class_names: Sequence[str] | None = None) -> list[GroundTruth]:
    """One :class:`GroundTruth` per ``.xml`` file directly in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GroundTruthProblem(f"Pascal VOC folder {folder} does not exist or is not a folder")
    files = sorted(xml_files(folder))
    if not files:
        raise GroundTruthProblem(f"Pascal VOC folder {folder} has no .xml files")
    known = known_labels(class_names)
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


def xml_files(folder: Path) -> Iterable[Path]:
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
    image_path = resolve_image(xml_path, xml_path.parent, filename, xml_hint=True)
    width = _voc_int(xml_path, root, "size/width", default=0)
    height = _voc_int(xml_path, root, "size/height", default=0)
    width, height, transpose = checked_size(xml_path, image_path, width, height)
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
        boxes.append(checked_box(f"{where}", box, width, height, known))
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
    return finite_float(where, f"<{tag}>", raw)


