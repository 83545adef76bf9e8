"""A content-addressed store for the results of expensive steps (export, conversions, validation).

An entry is a folder ``<root>/entries/<kind>/<key>/`` holding files and ``manifest.json``
(its key, kind, metadata and the SHA-256 and size of every file). The key is the SHA-256 of
everything the step's result depends on (:func:`key_of`: input bytes, options, tool
versions, liteship's own code), so an entry never needs invalidating: other inputs give
another key.

* :meth:`Cache.put` writes an entry in ``<root>/tmp/`` (every file fsynced, the manifest
  last) and renames the finished folder into place: an interrupted put leaves nothing under
  ``entries/``; what it left in ``tmp/`` is removed by the next :class:`Cache` whose owner
  process is gone.
* :meth:`Cache.get` re-hashes every file against the manifest. A missing, truncated or
  altered file, or an unreadable manifest, makes the entry "corrupt": it is deleted and the
  lookup reports :data:`REBUILT` (the caller computes the result again and puts it back).
  A corrupted entry is never used.
* Entries of a kind beyond the ``keep`` most recently used are removed (:meth:`Cache.prune`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: bump when the layout of entries or the meaning of keys changes
SCHEMA = 1
MANIFEST = "manifest.json"

# Outcomes of a lookup, as the report lists them per step.
HIT = "hit"
MISS = "miss"
REBUILT = "rebuilt"  # a corrupt entry was found, deleted and computed again
OFF = "off"  # caching disabled (--no-cache)

_CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def digest_tree(root: Path) -> str:
    """SHA-256 over the relative path and content of every file under ``root`` (a file: its
    content). A missing path digests as such, so that its later appearance changes keys."""
    root = Path(root)
    if root.is_file():
        return digest_file(root)
    if not root.is_dir():
        return digest_bytes(b"missing:" + str(root).encode())
    h = hashlib.sha256()
    for p in _files_under(root):
        h.update(str(p.relative_to(root)).encode() + b"\0" + digest_file(p).encode() + b"\n")
    return h.hexdigest()


def digest_files(paths: Iterable[Path]) -> str:
    """SHA-256 over the names and contents of ``paths`` in the given order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\0" + digest_file(Path(p)).encode() + b"\n")
    return h.hexdigest()


def key_of(kind: str, parts: Mapping[str, Any]) -> str:
    """The key of a ``kind`` step whose result depends on exactly ``parts`` (JSON-able)."""
    canonical = json.dumps({"schema": SCHEMA, "kind": kind, **parts}, sort_keys=True, default=str)
    return digest_bytes(canonical.encode())


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 of liteship's own source files: a changed converter or check is a new tool."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(package.rglob("*.py")):
        if p.relative_to(package).parts[0] == "bench":  # the benchmarks do not make results
            continue
        h.update(str(p.relative_to(package)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@functools.cache
def tool_versions() -> dict[str, str | None]:
    """Versions of everything a cached result was made with (part of every key)."""
    from liteship.report.model import dist_version, versions

    extra = {name: dist_version(name) for name in ("tf-keras", "mediapipe", "pycocotools")}
    return {**versions(), **extra, "liteship_code": code_fingerprint()}


@dataclass(frozen=True)
class Entry:
    kind: str
    key: str
    path: Path
    meta: dict[str, Any]
    #: relative path -> sha256, as verified by the lookup that returned this entry
    files: dict[str, str] = field(default_factory=dict)

    def file(self, rel: str) -> Path:
        return self.path / rel

    def read_bytes(self, rel: str) -> bytes:
        return (self.path / rel).read_bytes()

    def copy_tree(self, prefix: str, dest: Path) -> None:
        """Copy the entry's files under ``prefix/`` to ``dest`` (created)."""
        for rel in self.files:
            if rel.startswith(prefix + "/"):
                target = dest / rel[len(prefix) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.path / rel, target)


class CorruptEntry(Exception):
    """Internal: an entry failed verification (the lookup turns this into REBUILT)."""


class Cache:
    """The store under ``root``; ``root=None`` disables it (every lookup is :data:`OFF`)."""

    def __init__(self, root: Path | None, keep: int = 8) -> None:
        self.root = Path(root) if root is not None else None
        self.keep = keep
        if self.root is not None:
            self._clean_tmp()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _entry_dir(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / "entries" / kind / key

    # --- reading -----------------------------------------------------------------------

    def get(self, kind: str, key: str) -> tuple[Entry | None, str]:
        """(the verified entry or None, HIT | MISS | REBUILT | OFF)."""
        if self.root is None:
            return None, OFF
        path = self._entry_dir(kind, key)
        if not path.exists():
            return None, MISS
        try:
            entry = self._verified(path, kind, key)
        except CorruptEntry:
            self._remove(path)
            return None, REBUILT
        try:
            os.utime(path / MANIFEST)  # last use, for prune()
        except OSError:
            pass
        return entry, HIT

    def _verified(self, path: Path, kind: str, key: str) -> Entry:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("schema") != SCHEMA or manifest.get("kind") != kind or manifest.get("key") != key:
                raise CorruptEntry("manifest of another entry")
            files: dict[str, Any] = manifest["files"]
            meta: dict[str, Any] = manifest["meta"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptEntry(f"manifest unreadable: {exc}") from None
        present = {str(p.relative_to(path)) for p in _files_under(path)} - {MANIFEST}
        if present != set(files):
            raise CorruptEntry("files missing or extra")
        for rel, want in files.items():
            p = path / rel
            try:
                if p.stat().st_size != want["size"] or digest_file(p) != want["sha256"]:
                    raise CorruptEntry(f"{rel} differs from its hash")
            except (OSError, KeyError, TypeError) as exc:
                raise CorruptEntry(f"{rel}: {exc}") from None
        return Entry(kind, key, path, meta, {rel: f["sha256"] for rel, f in files.items()})

    # --- writing -----------------------------------------------------------------------

    def put(
        self,
        kind: str,
        key: str,
        *,
        meta: Mapping[str, Any] | None = None,
        blobs: Mapping[str, bytes] | None = None,
        trees: Mapping[str, Path] | None = None,
    ) -> Entry | None:
        """Store ``blobs`` (relative path -> bytes) and copies of the folders ``trees``
        (prefix -> folder) under ``key``; None when the cache is off. Atomic: the entry
        appears complete or not at all."""
        if self.root is None:
            return None
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=tmp_root))
        try:
            files: dict[str, dict[str, Any]] = {}
            for rel, data in (blobs or {}).items():
                files[rel] = self._write(staging / rel, data)
            for prefix, folder in (trees or {}).items():
                for p in _files_under(Path(folder)):
                    rel = f"{prefix}/{p.relative_to(folder)}"
                    files[rel] = self._write(staging / rel, p.read_bytes())
            manifest = {"schema": SCHEMA, "kind": kind, "key": key, "created": time.time(),
                        "meta": dict(meta or {}), "files": files}
            self._write(staging / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
            final = self._entry_dir(kind, key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a corrupt leftover or a concurrent run's: ours is verified-new
                self._remove(final)
            os.replace(staging, final)
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Entry(kind, key, final, dict(meta or {}), {rel: f["sha256"] for rel, f in files.items()})

    @staticmethod
    def _write(path: Path, data: bytes) -> dict[str, Any]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return {"sha256": digest_bytes(data), "size": len(data)}

    # --- housekeeping ------------------------------------------------------------------

    def prune(self, kind: str, keep: int | None = None) -> list[str]:
        """Remove the entries of ``kind`` beyond the ``keep`` most recently used; their keys."""
        if self.root is None:
            return []
        keep = self.keep if keep is None else keep
        folder = self.root / "entries" / kind
        if not folder.is_dir():
            return []

        def last_use(p: Path) -> float:
            try:
                return (p / MANIFEST).stat().st_mtime
            except OSError:
                return 0.0

        entries = sorted((p for p in folder.iterdir() if p.is_dir()), key=last_use, reverse=True)
        removed = []
        for p in entries[keep:]:
            self._remove(p)
            removed.append(p.name)
        return removed

    def _remove(self, path: Path) -> None:
        """Rename first (an entry is never seen half-deleted), then delete."""
        assert self.root is not None
        trash_root = self.root / "tmp"
        trash_root.mkdir(parents=True, exist_ok=True)
        trash = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-del-", dir=trash_root))
        try:
            os.replace(path, trash / "entry")
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)

    def _clean_tmp(self) -> None:
        """Leftovers of puts whose process is gone (killed mid-put)."""
        assert self.root is not None
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return
        for p in tmp.iterdir():
            pid = p.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "HIT", "MISS", "OFF", "REBUILT", "Cache", "Entry", "code_fingerprint", "digest_bytes", "digest_file",
    "digest_files", "digest_tree", "key_of", "tool_versions",
]
