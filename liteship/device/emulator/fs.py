"""The emulated device's filesystem: a host folder, with Android's permission rules.

Device paths are absolute POSIX paths; ``/sdcard/x`` lives in ``<root>/sdcard/x``. Every
access goes through :meth:`DeviceFS.host`, which normalises the path lexically, refuses
anything that would leave the root (also through symlinks), and raises :class:`FsError`
with the errno Android would give for read-only partitions and other apps' private data.
"""

from __future__ import annotations

import errno
import os
import posixpath
import threading
from pathlib import Path

#: mounted read-only on a production device
READ_ONLY_PREFIXES = ("/system", "/vendor", "/product", "/apex", "/odm", "/proc", "/sys")
#: aliases of the primary external storage
SDCARD_ALIASES = ("/storage/emulated/0", "/storage/self/primary", "/mnt/sdcard")
#: folders the ``shell`` user cannot list (their children may still be reachable)
_SHELL_UNREADABLE = ("/data", "/data/local", "/data/app", "/data/misc", "/data/misc/adb", "/data/user")


class FsError(Exception):
    """An errno-carrying failure, formatted like toybox/adbd (``strerror`` text)."""

    def __init__(self, err: int, path: str) -> None:
        super().__init__(err, os.strerror(err))
        self.errno = err
        self.path = path

    @property
    def strerror(self) -> str:
        return os.strerror(self.errno)


def normalize(path: str, cwd: str = "/") -> str:
    """Absolute, lexically normalised device path (``..`` never climbs above ``/``)."""
    if "\0" in path:
        raise FsError(errno.EINVAL, path)
    full = path if path.startswith("/") else posixpath.join(cwd, path)
    norm = posixpath.normpath(full)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    for alias in SDCARD_ALIASES:
        if norm == alias or norm.startswith(alias + "/"):
            norm = "/sdcard" + norm[len(alias):]
    return norm


class DeviceFS:
    """Maps device paths into ``root`` and applies Android's access rules for ``shell``."""

    def __init__(self, root: Path, *, storage_limit_bytes: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.storage_limit_bytes = storage_limit_bytes
        self.lock = threading.Lock()
        for d in ("sdcard", "data/local/tmp", "data/app", "data/misc/adb", "system/bin"):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    # -- mapping and rules -------------------------------------------------------------

    def host(self, path: str, *, write: bool = False, cwd: str = "/") -> Path:
        dev = normalize(path, cwd)
        self.check(dev, write=write)
        rel = dev.lstrip("/")
        target = self.root / rel if rel else self.root
        real = Path(os.path.realpath(target))
        if real != self.root and self.root not in real.parents:
            raise FsError(errno.EACCES, dev)
        return target

    def check(self, dev: str, *, write: bool) -> None:
        if dev == "/":
            if write:
                raise FsError(errno.EROFS, dev)
            return
        if write and any(dev == p or dev.startswith(p + "/") for p in READ_ONLY_PREFIXES):
            raise FsError(errno.EROFS, dev)
        parts = dev.strip("/").split("/")
        if parts[0] == "data" and not write and dev in _SHELL_UNREADABLE:
            raise FsError(errno.EACCES, dev)
        if parts[0] == "data":
            # /data/data/<pkg> and /data/user/0/<pkg>: private to the app's uid
            if len(parts) >= 3 and parts[1] in ("data", "user", "user_de"):
                raise FsError(errno.EACCES, dev)
            if len(parts) >= 2 and parts[1] == "app" and write:
                raise FsError(errno.EACCES, dev)
            if write and not (len(parts) >= 3 and parts[1] == "local" and parts[2] == "tmp"):
                raise FsError(errno.EACCES, dev)
        elif parts[0] != "sdcard" and write:
            raise FsError(errno.EROFS if parts[0] not in ("mnt", "storage", "dev") else errno.EACCES, dev)

    def to_device(self, host: Path) -> str:
        rel = Path(host).resolve().relative_to(self.root)
        return "/" + rel.as_posix() if str(rel) != "." else "/"

    # -- storage accounting ------------------------------------------------------------

    def used_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    def free_bytes(self) -> int | None:
        if self.storage_limit_bytes is None:
            return None
        return max(0, self.storage_limit_bytes - self.used_bytes())
