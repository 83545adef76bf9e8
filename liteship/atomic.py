"""Atomic file writes: temporary name in the same folder, fsync, then rename.

An interrupted run never leaves a file under its final name that is not complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_public(path: Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp create 0600/0700: give the final file the mode a plain open() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        make_public(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: what write_bytes and the staging folders name their temporaries: ``.<final name>.<random>.partial``
TEMP_GLOB = ".*.partial"


def remove_stale_temporaries(folder: Path, depth: int = 2) -> list[Path]:
    """Temporaries a killed run left in ``folder`` (and ``depth`` levels below): no other
    process writes there, so they are garbage. Returns what was removed."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    patterns = [TEMP_GLOB] + ["/".join(["*"] * level + [TEMP_GLOB]) for level in range(1, depth + 1)]
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    """Strict JSON: NaN and infinities become the strings "nan", "inf", "-inf" (bare NaN is
    not JSON and breaks most parsers)."""
    return write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=False, ensure_ascii=False,
                                       allow_nan=False) + "\n")


def json_safe(obj: Any) -> Any:
    """Strict-JSON values: non-finite floats as strings, and the typed values measurements
    carry (dataclasses, enums, paths, numpy scalars and arrays) as plain ones, so that one
    measurement object left in a report can never keep the report from being written."""
    import dataclasses
    import enum

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k.value if isinstance(k, enum.Enum) else k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return json_safe(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return json_safe(obj.tolist())
    return obj


def replace_dir(src: Path, dst: Path) -> Path:
    """Move a fully written folder ``src`` to ``dst`` (replacing an older ``dst``)."""
    dst = Path(dst)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    return dst
