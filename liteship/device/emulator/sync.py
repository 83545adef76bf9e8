"""The ``sync:`` service: STAT/LSTAT (v1), STA2/LST2, LIST, SEND, RECV, QUIT.

SEND writes into a temporary file next to the destination and renames it on DONE, so a
dropped connection or a full disk never leaves a partial file under the final name. A
failure during SEND is answered with FAIL once the client sends DONE (the point where
every client, adb-shell included, reads the answer), after discarding the remaining data.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as stat_mod
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from liteship.device.emulator.fs import FsError

if TYPE_CHECKING:
    from liteship.device.emulator.adbd import Connection, Stream

SYNC_DATA_MAX = 64 * 1024
MAX_PATH = 1024


def _id(s: bytes) -> int:
    return int.from_bytes(s, "little")


ID_STAT, ID_LSTAT_V1, ID_STAT_V2, ID_LSTAT_V2 = _id(b"STAT"), _id(b"LSTA"), _id(b"STA2"), _id(b"LST2")
ID_LIST, ID_SEND, ID_RECV, ID_DENT, ID_DONE = _id(b"LIST"), _id(b"SEND"), _id(b"RECV"), _id(b"DENT"), _id(b"DONE")
ID_DATA, ID_OKAY, ID_FAIL, ID_QUIT = _id(b"DATA"), _id(b"OKAY"), _id(b"FAIL"), _id(b"QUIT")
REQ = struct.Struct("<II")
STAT_V1 = struct.Struct("<IIII")
STAT_V2 = struct.Struct("<IIQQIIIIQqqq")
DENT = struct.Struct("<IIIII")


class SyncService:
    def __init__(self, conn: "Connection", stream: "Stream") -> None:
        self.conn = conn
        self.stream = stream
        self.fs = conn.device.fs
        self.faults = conn.device.faults

    def run(self) -> None:
        s = self.stream
        while True:
            hdr = s.read_exact(8)
            if hdr is None:
                return
            cmd, length = REQ.unpack(hdr)
            if cmd == ID_QUIT:
                return
            if length > MAX_PATH:
                self.fail(f"path too long: {length}")
                return
            raw = s.read_exact(length)
            if raw is None:
                return
            path = raw.decode("utf-8", "surrogateescape")
            if cmd in (ID_STAT, ID_LSTAT_V1):
                s.write(self.stat_v1(path))
            elif cmd in (ID_STAT_V2, ID_LSTAT_V2):
                s.write(self.stat_v2(path, follow=cmd == ID_STAT_V2))
            elif cmd == ID_LIST:
                s.write(self.list(path))
            elif cmd == ID_SEND:
                if not self.send(path):
                    return
            elif cmd == ID_RECV:
                if not self.recv(path):
                    return
            else:
                self.fail(f"unknown command {raw[:4]!r}")
                return

    # -- replies -------------------------------------------------------------------------

    def fail(self, message: str) -> None:
        data = message.encode("utf-8", "surrogateescape")
        self.stream.write(REQ.pack(ID_FAIL, len(data)) + data)

    def _lstat(self, path: str, follow: bool = False) -> os.stat_result:
        h = self.fs.host(path)
        return os.stat(h) if follow else os.lstat(h)

    def stat_v1(self, path: str) -> bytes:
        try:
            st = self._lstat(path)
            return STAT_V1.pack(ID_STAT, st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except (FsError, OSError):
            return STAT_V1.pack(ID_STAT, 0, 0, 0)

    def stat_v2(self, path: str, *, follow: bool) -> bytes:
        cmd = ID_STAT_V2 if follow else ID_LSTAT_V2
        try:
            st = self._lstat(path, follow)
        except FsError as e:
            return STAT_V2.pack(cmd, e.errno, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        except OSError as e:
            return STAT_V2.pack(cmd, e.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return STAT_V2.pack(cmd, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, 2000, 2000,
                            st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime))

    def list(self, path: str) -> bytes:
        out = bytearray()
        try:
            h = self.fs.host(path)
            names = sorted(os.listdir(h)) if h.is_dir() else []
        except (FsError, OSError):
            names = []
            h = Path("/nonexistent")
        for name in [".", ".."] + names:
            try:
                st = os.lstat(h / name)
            except OSError:
                continue
            b = name.encode("utf-8", "surrogateescape")
            out += DENT.pack(ID_DENT, st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(b)) + b
        out += DENT.pack(ID_DONE, 0, 0, 0, 0)
        return bytes(out)

    def recv(self, path: str) -> bool:
        try:
            h = self.fs.host(path)
            f = open(h, "rb")
        except FsError as e:
            self.fail(f"open failed: {e.strerror}")
            return True
        except OSError as e:
            self.fail(f"open failed: {os.strerror(e.errno or errno.EIO)}")
            return True
        with f:
            if os.path.isdir(h):
                self.fail("read failed: Is a directory")
                return True
            batch = bytearray()
            limit = max(SYNC_DATA_MAX + 8, self.conn.maxdata)
            while True:
                chunk = f.read(SYNC_DATA_MAX)
                if not chunk:
                    break
                batch += REQ.pack(ID_DATA, len(chunk)) + chunk
                if len(batch) + SYNC_DATA_MAX + 8 > limit:
                    self.stream.write(bytes(batch))
                    batch = bytearray()
            batch += REQ.pack(ID_DONE, 0)
            self.stream.write(bytes(batch))
        return True

    def send(self, spec: str) -> bool:
        """Returns False when the stream must close (after FAIL, like adbd)."""
        path, _, mode_s = spec.rpartition(",")
        if not path:
            path, mode_s = spec, "33188"
        try:
            mode = int(mode_s)
        except ValueError:
            mode = 0o100644
        s = self.stream
        error: str | None = None
        tmp: Path | None = None
        f = None
        dest: Path | None = None
        try:
            dest = self.fs.host(path, write=True)
            if stat_mod.S_ISLNK(mode):
                error = "symlinks are not supported by the emulated device"
            elif dest.is_dir():
                error = f"couldn't create file: {os.strerror(errno.EISDIR)}"
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.adbd-{secrets.token_hex(4)}")
                f = open(tmp, "wb")
        except FsError as e:
            error = f"couldn't create file: {e.strerror}"
        except OSError as e:
            error = f"secure_mkdirs failed: {os.strerror(e.errno or errno.EIO)}"
        limit = self.faults.storage_limit_bytes
        free = None if limit is None else max(0, limit - self.fs.used_bytes())
        drop_after = self.faults.drop_after_bytes
        received = 0
        done_mtime = None
        try:
            while True:
                hdr = s.read_exact(8)
                if hdr is None:
                    return False  # connection gone: `finally` removes the partial file
                cmd, length = REQ.unpack(hdr)
                if cmd == ID_DONE:
                    done_mtime = length
                    break
                if cmd != ID_DATA or length > SYNC_DATA_MAX:
                    error = error or f"invalid data message: expected DATA (max {SYNC_DATA_MAX} bytes)"
                    self.fail(error)
                    return False
                if drop_after is not None and received + length > drop_after:
                    s.read_exact(max(0, drop_after - received))
                    self.conn.drop("fault: drop_after_bytes")
                    return False
                data = s.read_exact(length)
                if data is None:
                    return False
                received += length
                if error is None and free is not None and received > free:
                    error = f"write failed: {os.strerror(errno.ENOSPC)}"
                    f.close()  # type: ignore[union-attr]
                    f = None
                    tmp.unlink(missing_ok=True)  # type: ignore[union-attr]
                if error is None:
                    f.write(data)  # type: ignore[union-attr]
            if error is not None:
                self.fail(error)
                return False
            assert f is not None and tmp is not None and dest is not None
            f.close()
            f = None
            os.chmod(tmp, (mode & 0o777) or 0o644)
            os.utime(tmp, (done_mtime, done_mtime))
            os.replace(tmp, dest)
            tmp = None
            s.write(REQ.pack(ID_OKAY, 0))
            return True
        finally:
            if f is not None:
                f.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
