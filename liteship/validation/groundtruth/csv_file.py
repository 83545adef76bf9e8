"""CSV ground truth: ``filename,width,height,class,xmin,ymin,xmax,ymax`` (xml_to_csv.py's format)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from liteship.errors import GroundTruthProblem
from liteship.validation.groundtruth.model import (
    CSV_COLUMNS,
    GroundTruth,
    GroundTruthBox,
    checked_box,
    checked_size,
    finite_float,
    known_labels,
    resolve_image,
)


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
    known = known_labels(class_names)
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
            image_path = resolve_image(path, path.parent, filename)
            width, height, transpose = checked_size(Path(where), image_path, width, height)
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
        boxes.append(checked_box(where, box, width, height, known))
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
    return finite_float(where, name, cell[name])


