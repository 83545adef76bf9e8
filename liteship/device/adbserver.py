"""Transport through the local adb server (phones the user already sees in ``adb devices``).

Shell and state queries go through adbutils; push and pull speak the sync protocol on an
adbutils connection directly (adbutils' own push writes 4 KiB chunks with unchecked
``send`` calls). Nothing here starts an adb server: when none runs, the error says so.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import adbutils
from adbutils import errors as adbu_errors

from liteship.device.base import Device, DeviceInfo, ShellResult
from liteship.errors import (DeviceAuthProblem, DeviceConnectionProblem, DeviceProblem,
                             DeviceStorageProblem)

T = TypeVar("T")
DEFAULT_PORT = 5037
SYNC_DATA_MAX = 64 * 1024
_STORAGE_ERRORS = ("No space left on device", "Read-only file system", "Permission denied",
                   "Operation not permitted", "Is a directory", "couldn't create file", "secure_mkdirs failed",
                   "write failed")


def server_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """adb's own rules: ANDROID_ADB_SERVER_ADDRESS / ANDROID_ADB_SERVER_PORT, else 127.0.0.1:5037."""
    host = host or os.environ.get("ANDROID_ADB_SERVER_ADDRESS") or "127.0.0.1"
    if port is None:
        env = os.environ.get("ANDROID_ADB_SERVER_PORT", "")
        port = int(env) if env.isdigit() else DEFAULT_PORT
    return host, port


def server_running(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def client(host: str | None = None, port: int | None = None, *, timeout_s: float = 10.0) -> adbutils.AdbClient:
    """An adbutils client for a server that is already running (never spawns one)."""
    host, port = server_address(host, port)
    if not server_running(host, port):
        raise DeviceConnectionProblem(
            f"no adb server is running on {host}:{port}; expected one that lists your phone",
            hint="start it with `adb start-server` (and check ANDROID_ADB_SERVER_PORT), "
                 "or connect directly with tcp:HOST:PORT")
    return adbutils.AdbClient(host=host, port=port, socket_timeout=timeout_s)


def list_server_devices(host: str | None = None, port: int | None = None) -> tuple[list[DeviceInfo], str]:
    """(devices, reason): reason says why the list is empty when no server answers."""
    h, p = server_address(host, port)
    if not server_running(h, p):
        return [], f"no adb server on {h}:{p} (start one with `adb start-server`)"
    try:
        infos = adbutils.AdbClient(host=h, port=p, socket_timeout=5).list(extended=True)
    except (adbu_errors.AdbError, OSError, EOFError) as e:
        return [], f"the adb server on {h}:{p} did not answer host:devices-l ({e})"
    return [DeviceInfo(serial=i.serial, state=i.state, transport="adb-server",
                       model=i.tags.get("model", ""), product=i.tags.get("product", "")) for i in infos], ""


def server_connect(addr: str, *, host: str | None = None, port: int | None = None,
                   timeout_s: float = 10.0) -> str:
    """``adb connect addr`` and wait until the server has the device online; returns the serial."""
    c = client(host, port, timeout_s=timeout_s)
    try:
        answer = c.connect(addr, timeout=timeout_s)
    except (adbu_errors.AdbError, OSError, EOFError) as e:
        raise DeviceConnectionProblem(f"adb connect {addr} failed: {e}",
                                      hint="check that the device listens on that address") from None
    if answer.startswith(("unable to connect", "failed to connect", "cannot connect")):
        raise DeviceConnectionProblem(f"adb connect {addr}: {answer}",
                                      hint="enable wireless debugging on the phone, or check host:port")
    _wait_online(c, addr, timeout_s)
    return addr


def _wait_online(c: adbutils.AdbClient, serial: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = "absent"
    while time.monotonic() < deadline:
        try:
            state = next((i.state for i in c.list() if i.serial == serial), "absent")
        except (adbu_errors.AdbError, OSError, EOFError):
            state = "absent"
        if state == "device":
            return
        time.sleep(0.1)
    if state == "unauthorized":
        raise DeviceAuthProblem(
            f"{serial} is unauthorized: the phone has not accepted this computer's adb key",
            hint="unlock the phone and accept \"Allow USB debugging?\", then rerun")
    raise DeviceConnectionProblem(f"{serial} is {state} on the adb server after {timeout_s:g} s; expected \"device\"",
                                  hint="reconnect the cable (or `adb connect` again) and check `adb devices`")


class AdbServerDevice(Device):
    transport = "adb-server"

    def __init__(self, serial: str, *, host: str | None = None, port: int | None = None,
                 timeout_s: float = 10.0) -> None:
        self.serial = serial
        self._timeout_s = timeout_s
        self._client = client(host, port, timeout_s=timeout_s)
        self._dev = self._client.device(serial)
        self._closed = False
        _wait_online(self._client, serial, min(timeout_s, 3.0))
        try:
            self._features = set(self._dev.get_features().split(","))
        except (adbu_errors.AdbError, OSError, EOFError):
            self._features = set()

    def _call(self, what: str, fn: Callable[[], T], *, retry: bool = False) -> T:
        if self._closed:
            raise DeviceConnectionProblem(f"{what}: the device connection was closed", hint="open the device again")
        try:
            return fn()
        except DeviceProblem:
            raise
        except (adbu_errors.AdbError, OSError, EOFError) as e:  # noqa: F841 -- used by the raise below
            if retry:
                time.sleep(0.2)
                try:
                    return fn()
                except (adbu_errors.AdbError, OSError, EOFError) as e2:
                    e = e2
            raise self._map(e, what) from None

    def _map(self, e: BaseException, what: str) -> DeviceProblem:
        text = str(e)
        if "unauthorized" in text:
            return DeviceAuthProblem(f"{what}: {self.serial} is unauthorized ({text})",
                                     hint="accept \"Allow USB debugging?\" on the phone, then rerun")
        if isinstance(e, (adbu_errors.AdbTimeout, socket.timeout, TimeoutError)):
            return DeviceConnectionProblem(f"{what}: timed out ({text})", hint="check the connection, then rerun")
        if "not found" in text and "device" in text:
            return DeviceConnectionProblem(f"{what}: the adb server does not know {self.serial} ({text})",
                                           hint="check `adb devices`; for network devices run `adb connect` first")
        return DeviceConnectionProblem(f"{what}: {type(e).__name__}: {text}",
                                       hint="check `adb devices` and reconnect the device")

    # -- Device ----------------------------------------------------------------------------

    def shell(self, command: str, *, timeout_s: float = 60.0) -> ShellResult:
        from liteship.device.adbshell import READ_ONLY_COMMAND

        v2 = "shell_v2" in self._features
        r = self._call(f"shell `{command[:80]}`",
                       lambda: self._dev.shell2(command, timeout=timeout_s, encoding=None, v2=v2),
                       retry=bool(READ_ONLY_COMMAND.match(command)))
        if v2:
            return ShellResult(r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace"))
        return ShellResult(r.returncode, r.output.decode("utf-8", "replace"))

    def _sync(self, timeout_s: float) -> Any:
        c = self._dev.open_transport(timeout=timeout_s)
        c.send_command("sync:")
        c.check_okay()
        return c

    def _sync_send(self, local: Path, remote: str, timeout_s: float) -> None:
        c = self._sync(timeout_s)
        try:
            sock = c.conn
            spec = f"{remote},{0o100644}".encode("utf-8")
            sock.sendall(b"SEND" + struct.pack("<I", len(spec)) + spec)
            with open(local, "rb") as f:
                while True:
                    chunk = f.read(SYNC_DATA_MAX)
                    if not chunk:
                        break
                    sock.sendall(b"DATA" + struct.pack("<I", len(chunk)))
                    sock.sendall(chunk)
            sock.sendall(b"DONE" + struct.pack("<I", int(local.stat().st_mtime)))
            status = c.read_exact(8)
            if status[:4] == b"FAIL":
                n = struct.unpack("<I", status[4:])[0]
                msg = c.read_exact(n).decode("utf-8", "replace")
                raise DeviceStorageProblem(
                    f"push to {remote}: the device refused the write: {msg}",
                    hint="free space on the phone, or choose a folder the shell user may write "
                         "(/sdcard/..., /data/local/tmp)")
            if status[:4] != b"OKAY":
                raise DeviceConnectionProblem(f"push to {remote}: unexpected sync answer {status!r}; expected OKAY",
                                              hint="reconnect the device and rerun")
        finally:
            c.close()

    def _send_file(self, local: Path, remote: str, *, timeout_s: float) -> None:
        self._call(f"push {local.name} to {remote}", lambda: self._sync_send(local, remote, timeout_s))

    def _recv_file(self, remote: str, tmp: str, timeout_s: float) -> None:
        c = self._sync(timeout_s)
        try:
            spec = remote.encode("utf-8")
            c.conn.sendall(b"RECV" + struct.pack("<I", len(spec)) + spec)
            with open(tmp, "wb") as f:
                while True:
                    hdr = c.read_exact(8)
                    kind, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                    if kind == b"DONE":
                        return
                    if kind == b"FAIL":
                        msg = c.read_exact(n).decode("utf-8", "replace")
                        raise DeviceStorageProblem(f"pull {remote}: the device answered: {msg}",
                                                   hint="check the path with `adb shell ls`")
                    if kind != b"DATA":
                        raise DeviceConnectionProblem(f"pull {remote}: unexpected sync answer {hdr!r}",
                                                      hint="reconnect the device and rerun")
                    f.write(c.read_exact(n))
        finally:
            c.close()

    def pull(self, remote: str, local: Path, *, timeout_s: float = 600.0) -> None:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".partial", dir=local.parent)
        os.close(fd)
        try:
            self._call(f"pull {remote}", lambda: self._recv_file(remote, tmp, timeout_s), retry=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, local)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def exists(self, remote: str) -> bool:
        return self._call(f"stat {remote}", lambda: self._dev.sync.stat(remote).mode != 0, retry=True)

    def close(self) -> None:
        self._closed = True
