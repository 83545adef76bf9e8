"""Ground truth from an OD API TFRecord (what ``create_*_tf_record.py`` scripts write).

Records are ``tf.train.Example`` protos with the keys of the OD API's own
``standard_fields.TfExampleFields``. We read them with ``tf.data.TFRecordDataset`` and
``tf.train.Example`` rather than the OD API's ``TfExampleDecoder``: the decoder builds a
graph that decodes and resizes the image tensors we do not need, while we only need the
encoded bytes (written to a file) and the box lists. The keys and their meaning are the
OD API's; boxes are normalized ``[0, 1]`` and become pixels of the encoded image.

Images are extracted once per process and TFRecord (keyed by path, size and mtime) into
a temporary folder removed at exit: the report, the overlays and mAP all load
ground truth again and must see the same files.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from liteship.errors import GroundTruthProblem
from liteship.validation.groundtruth.model import SHARD, GroundTruth, GroundTruthBox, checked_box, known_labels

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")
_cache: dict[tuple[str, ...], list[GroundTruth]] = {}
_tmp_root: Path | None = None


def record_files(path: Path) -> list[Path]:
    """The file itself, or every shard of a sharded TFRecord (``x.record-00000-of-00004``)."""
    m = SHARD.match(path.name)
    if m is None:
        if not path.is_file():
            raise GroundTruthProblem(f"ground truth {path} does not exist or is not a file")
        return [path]
    shards = sorted(path.parent.glob(f"{glob_escape(m.group('stem'))}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"))
    if not shards:
        raise GroundTruthProblem(f"no shards of {m.group('stem')} found in {path.parent}")
    counts = {s.name.rsplit("-of-", 1)[1] for s in shards}
    if len(counts) != 1 or len(shards) != int(counts.pop()):
        raise GroundTruthProblem(
            f"{path.parent}: found {len(shards)} shard(s) of {m.group('stem')} but their names say otherwise "
            f"({', '.join(s.name for s in shards[:4])}...): is one missing?")
    return shards


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def load_tfrecord(path: Path, class_names: Sequence[str] | None = None) -> list[GroundTruth]:
    files = record_files(path)
    key = tuple(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files) + tuple(class_names or ())
    if key not in _cache:
        _cache[key] = _load(path, files, class_names)
    return list(_cache[key])


def _load(path: Path, files: list[Path], class_names: Sequence[str] | None) -> list[GroundTruth]:
    import tensorflow as tf
    from object_detection.core.standard_fields import TfExampleFields as F

    known = known_labels(class_names)
    folder = _extract_folder(files)
    out: list[GroundTruth] = []
    used: set[str] = set()
    dataset = tf.data.TFRecordDataset([str(f) for f in files])
    index = 0
    try:
        for raw in dataset.as_numpy_iterator():
            where = f"{path}, record {index}"
            try:
                example = tf.train.Example.FromString(raw)
            except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
                raise GroundTruthProblem(f"{where}: not a tf.train.Example ({exc})") from None
            out.append(_record(where, example.features.feature, F, folder, used, known, class_names, path))
            index += 1
    except tf.errors.OpError as exc:
        raise GroundTruthProblem(
            f"{path}: TFRecord unreadable after {index} record(s) ({_op_message(exc)}): the file is truncated or corrupt",
            hint="write it again with the OD API's create_*_tf_record script",
        ) from None
    if not out:
        raise GroundTruthProblem(f"{path}: the TFRecord has no records")
    return out


def _op_message(exc: Exception) -> str:
    """TF's OpError text without the function-node prefix and the [Op:...] suffix."""
    text = str(getattr(exc, "message", exc)).splitlines()[0]
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:.*$", "", text).rstrip("' ")[:200]


def _record(where: str, feature, F, folder: Path, used: set[str], known, class_names, source: Path) -> GroundTruth:  # noqa: ANN001
    def values(key: str) -> list:
        if key not in feature:
            return []
        f = feature[key]
        kind = f.WhichOneof("kind")
        return list(getattr(f, kind).value) if kind else []

    encoded = values(F.image_encoded)
    if len(encoded) != 1 or not encoded[0]:
        raise GroundTruthProblem(f"{where}: no {F.image_encoded!r} (the encoded image) in the record")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(encoded[0])) as image:
                real_w, real_h = image.size
                fmt = (image.format or "jpeg").lower()
    except Exception as exc:  # noqa: BLE001 - untrusted bytes
        raise GroundTruthProblem(f"{where}: the encoded image cannot be decoded ({exc})") from None
    width = int((values(F.width) or [real_w])[0])
    height = int((values(F.height) or [real_h])[0])
    if (width, height) != (real_w, real_h):
        raise GroundTruthProblem(
            f"{where}: image/width x image/height is {width}x{height} but the encoded image is {real_w}x{real_h}")
    name = _name(values(F.filename), values(F.source_id), fmt, used, len(used))
    image_path = folder / name
    if not image_path.exists():
        tmp = image_path.with_name(f".{name}.tmp")
        tmp.write_bytes(encoded[0])
        tmp.replace(image_path)

    coords = [values(k) for k in (F.object_bbox_xmin, F.object_bbox_ymin, F.object_bbox_xmax, F.object_bbox_ymax)]
    n = len(coords[0])
    if any(len(c) != n for c in coords):
        raise GroundTruthProblem(f"{where}: bbox lists differ in length ({', '.join(str(len(c)) for c in coords)})")
    texts = [t.decode("utf-8", "replace") for t in values(F.object_class_text)]
    ids = [int(i) for i in values(F.object_class_label)]
    difficult = [bool(d) for d in values(F.object_difficult)]
    boxes = []
    for i in range(n):
        if i < len(texts) and texts[i]:
            label = texts[i]
        elif i < len(ids) and class_names is not None:
            if not 1 <= ids[i] <= len(class_names):
                raise GroundTruthProblem(
                    f"{where}: object {i} has class id {ids[i]}, the label map has ids 1..{len(class_names)}")
            label = class_names[ids[i] - 1]
        elif i < len(ids):
            raise GroundTruthProblem(f"{where}: object {i} has only a class id ({ids[i]}); pass --label-map to name it")
        else:
            raise GroundTruthProblem(f"{where}: object {i} has no class text or label")
        xmin, ymin, xmax, ymax = (c[i] for c in coords)
        if min(xmin, ymin, xmax, ymax) < -1e-3 or max(xmin, ymin, xmax, ymax) > 1 + 1e-3:
            raise GroundTruthProblem(
                f"{where}: object {i} box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) is not normalized to [0, 1] "
                "as the OD API expects")
        box = GroundTruthBox(
            min(max(xmin, 0.0), 1.0) * width, min(max(ymin, 0.0), 1.0) * height,
            min(max(xmax, 0.0), 1.0) * width, min(max(ymax, 0.0), 1.0) * height,
            label=label, difficult=difficult[i] if i < len(difficult) else False,
        )
        boxes.append(checked_box(f"{where}, object {i}", box, width, height, known))
    return GroundTruth(name, image_path, width, height, tuple(boxes), source)


def _name(filenames: list, source_ids: list, fmt: str, used: set[str], index: int) -> str:
    """A safe, unique file name: the record's own name without any folder part."""
    raw = (filenames or source_ids or [b""])[0]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    base = _UNSAFE.sub("_", text.replace("\\", "/").rsplit("/", 1)[-1]).strip(". ") or f"record{index:06d}"
    if "." not in base:
        base += ".jpg" if fmt == "jpeg" else f".{fmt}"
    name, n = base, 1
    while name in used:
        stem, dot, ext = base.rpartition(".")
        name = f"{stem}_{n}.{ext}"
        n += 1
    used.add(name)
    return name


def _extract_folder(files: list[Path]) -> Path:
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = Path(tempfile.mkdtemp(prefix="liteship-tfrecord-"))
        atexit.register(shutil.rmtree, _tmp_root, ignore_errors=True)
    digest = hashlib.sha256("\n".join(str(f.resolve()) for f in files).encode()).hexdigest()[:16]
    folder = _tmp_root / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder
