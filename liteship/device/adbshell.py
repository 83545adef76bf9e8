"""Direct transport: adb-shell's ``AdbDeviceTcp`` / ``AdbDeviceUsb`` talking to adbd.

Every adb-shell (and socket, libusb) exception is turned into a ``liteship.errors.Device*``
error here; nothing else leaves this module.
"""

from __future__ import annotations

import os
import re
import select
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from adb_shell import exceptions as adb_exc
from adb_shell.adb_device import AdbDevice, AdbDeviceTcp
from adb_shell.transport.tcp_transport import TcpTransport

from liteship.device import keys
from liteship.device.base import Device, ShellResult, quote
from liteship.errors import (DeviceAuthProblem, DeviceConnectionProblem, DeviceProblem,
                             DeviceStorageProblem)

T = TypeVar("T")

_V2_STDOUT, _V2_STDERR, _V2_EXIT = 1, 2, 3
_EXIT_MARK = "__liteship_exit__:"
#: sync FAIL texts (adbd: "<what> failed: strerror") that mean the device refused the write
_STORAGE_ERRORS = ("No space left on device", "Read-only file system", "Permission denied",
                   "Operation not permitted", "Is a directory", "Not a directory", "couldn't create file",
                   "secure_mkdirs failed", "write failed", "Disk quota exceeded", "File too large")
#: shell commands that only read, and may be run again after a dropped connection
READ_ONLY_COMMAND = _READ_ONLY = re.compile(r"^\s*(getprop|ls|cat|stat|test|df|echo|id|whoami|pm (list|path)|cmd package (list|path))\b[^;&|<>`$]*$")
_FEATURES = re.compile(rb"features=([A-Za-z0-9_,.\-]*)")


class _BannerCapture:
    """Keeps the device's CNXN banner: adb-shell 0.4.4 reads it in connect() and drops it,
    but the ``features=`` list in it says whether ``shell,v2`` exists."""

    banner_bytes: bytes

    def _capture(self, data: bytes) -> bytes:
        if len(self.banner_bytes) < 8192 and b"features=" not in self.banner_bytes:
            self.banner_bytes += data
        return data


class SafeTcpTransport(_BannerCapture, TcpTransport):
    """adb-shell's TcpTransport with two fixes.

    ``bulk_write`` sends *all* bytes: adb-shell 0.4.4 calls ``socket.send`` once on a
    non-blocking socket and ignores a short write, which corrupts the stream as soon as a
    1 MiB WRTE does not fit the socket buffer. ``bulk_read`` raises on EOF instead of
    returning ``b""`` (adb-shell then spins until its read timeout).
    """

    def __init__(self, host: str, port: int = 5555) -> None:
        super().__init__(host, port)
        self.banner_bytes = b""

    def connect(self, transport_timeout_s: float | None) -> None:
        self.banner_bytes = b""
        super().connect(transport_timeout_s)
        assert self._connection is not None
        self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
        data = super().bulk_read(numbytes, transport_timeout_s)
        if not data:
            raise ConnectionResetError(f"{self._host}:{self._port} closed the connection")
        return self._capture(data)

    def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
        conn = self._connection
        if conn is None:
            raise ConnectionResetError(f"not connected to {self._host}:{self._port}")
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            _, writable, _ = select.select([], [conn], [], transport_timeout_s)
            if not writable:
                raise adb_exc.TcpTimeoutException(
                    f"Sending data to {self._host}:{self._port} timed out after {transport_timeout_s} seconds")
            try:
                sent += conn.send(view[sent:])
            except BlockingIOError:
                continue
        return sent


def _usb_transport_class() -> type:
    from adb_shell.transport.usb_transport import UsbTransport

    class SafeUsbTransport(_BannerCapture, UsbTransport):
        def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
            return self._capture(super().bulk_read(numbytes, transport_timeout_s))

    return SafeUsbTransport


def _is_storage_error(text: str) -> bool:
    return any(s in text for s in _STORAGE_ERRORS)


class AdbShellDevice(Device):
    """A device reached directly with adb-shell (TCP or USB), authenticated with our adb key."""

    transport = "adb-shell"

    def __init__(self, adb: AdbDevice, serial: str, *, key_path: Path | None = None,
                 timeout_s: float = 10.0, usb: bool = False) -> None:
        self._adb = adb
        self.serial = serial
        self._key_path = key_path
        self._timeout_s = timeout_s
        self._usb = usb
        self._signers: list[Any] | None = None
        self._features: set[str] = set()
        self._closed = False

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def connect_tcp(cls, host: str, port: int, *, key_path: Path | None = None,
                    timeout_s: float = 10.0) -> "AdbShellDevice":
        adb = AdbDeviceTcp(host, port, default_transport_timeout_s=timeout_s)
        adb._io_manager._transport = SafeTcpTransport(host, port)  # same class otherwise (see SafeTcpTransport)
        dev = cls(adb, f"{host}:{port}", key_path=key_path, timeout_s=timeout_s)
        dev._connect(retry=True)
        return dev

    @classmethod
    def connect_usb(cls, serial: str | None = None, *, key_path: Path | None = None,
                    timeout_s: float = 10.0) -> "AdbShellDevice":
        try:
            from adb_shell.adb_device import AdbDeviceUsb

            adb = AdbDeviceUsb(serial=serial, default_transport_timeout_s=timeout_s)
            transport = adb._io_manager._transport
            transport.__class__ = _usb_transport_class()  # add banner capture to the found device
            transport.banner_bytes = b""
        except adb_exc.UsbDeviceNotFoundError:
            raise DeviceConnectionProblem(
                f"no USB device with adb enabled{f' and serial {serial}' if serial else ''} was found by libusb",
                hint="plug the phone in, enable USB debugging, and check `lsusb`; if `adb devices` lists it, "
                     "the adb server holds the USB interface: pass its serial (no `usb:` prefix) instead") from None
        except (adb_exc.InvalidTransportError, ImportError, OSError) as e:
            raise DeviceConnectionProblem(
                f"USB transport unavailable: {e}",
                hint="install libusb-1.0 (apt-get install libusb-1.0-0) or use the adb server transport") from None
        dev = cls(adb, f"usb:{serial}" if serial else "usb", key_path=key_path, timeout_s=timeout_s, usb=True)
        dev._connect(retry=False)
        return dev

    def _connect(self, *, retry: bool) -> None:
        if self._signers is None:
            self._signers = keys.load_signers(self._key_path)
        prompted: list[bool] = []
        try:
            self._adb.connect(rsa_keys=self._signers, transport_timeout_s=self._timeout_s,
                              auth_timeout_s=self._timeout_s, read_timeout_s=self._timeout_s,
                              auth_callback=lambda _dev: prompted.append(True))
        except adb_exc.DeviceAuthError as e:
            raise DeviceAuthProblem(f"{self.serial}: unauthorized ({e})", hint=self._auth_hint()) from None
        except Exception as e:  # noqa: BLE001 - adb-shell raises many unrelated types
            self._adb.close()
            if prompted:
                raise DeviceAuthProblem(
                    f"{self.serial}: unauthorized: the device did not accept our adb key within "
                    f"{self._timeout_s:g} s (expected a CNXN after sending the public key, got {type(e).__name__})",
                    hint=self._auth_hint()) from None
            if retry and self._is_drop(e):
                time.sleep(0.2)
                return self._connect(retry=False)
            raise self._map(e, f"connect to {self.serial}") from None
        banner = getattr(self._adb._io_manager._transport, "banner_bytes", b"")
        m = _FEATURES.search(banner)
        self._features = set(m.group(1).decode().split(",")) if m else set()

    def _auth_hint(self) -> str:
        key = self._key_path or keys.default_key_path()
        return (f"unlock the phone and accept \"Allow USB debugging?\" for the key {key}.pub, then rerun; "
                "if no prompt appears, revoke USB debugging authorizations in Developer options and reconnect")

    # -- error handling --------------------------------------------------------------------

    @staticmethod
    def _is_drop(e: BaseException) -> bool:
        return isinstance(e, (ConnectionError, BrokenPipeError, adb_exc.TcpTimeoutException, adb_exc.AdbTimeoutError,
                              adb_exc.InvalidCommandError, adb_exc.InvalidChecksumError, adb_exc.InvalidResponseError,
                              adb_exc.AdbConnectionError, adb_exc.UsbReadFailedError, adb_exc.UsbWriteFailedError,
                              OSError))

    def _map(self, e: BaseException, what: str) -> DeviceProblem:
        if isinstance(e, DeviceProblem):
            return e
        if isinstance(e, adb_exc.DeviceAuthError):
            return DeviceAuthProblem(f"{what}: unauthorized ({e})", hint=self._auth_hint())
        if isinstance(e, (adb_exc.PushFailedError, adb_exc.AdbCommandFailureException)):
            text = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], (bytes, bytearray)) \
                else str(e)
            if _is_storage_error(text):
                return DeviceStorageProblem(
                    f"{what}: the device refused the write: {text}",
                    hint="free space on the phone, or choose a folder the shell user may write "
                         "(/sdcard/..., /data/local/tmp)")
            return DeviceStorageProblem(f"{what}: the device answered FAIL: {text}",
                                        hint="check the path on the device (adb shell ls)")
        if isinstance(e, (adb_exc.TcpTimeoutException, adb_exc.AdbTimeoutError, socket.timeout)):
            return DeviceConnectionProblem(f"{what}: timed out ({e})",
                                           hint="check the cable / Wi-Fi, then rerun; raise --timeout for slow links")
        if isinstance(e, ConnectionRefusedError):
            return DeviceConnectionProblem(f"{what}: connection refused: nothing listens on {self.serial}",
                                           hint="enable wireless debugging (adb tcpip 5555) or check host:port")
        if isinstance(e, (OSError, adb_exc.AdbConnectionError, adb_exc.InvalidCommandError,
                          adb_exc.InvalidChecksumError, adb_exc.InvalidResponseError,
                          adb_exc.UsbReadFailedError, adb_exc.UsbWriteFailedError)):
            return DeviceConnectionProblem(f"{what}: the connection to {self.serial} failed or dropped "
                                           f"({type(e).__name__}: {e})",
                                           hint="reconnect the device and rerun")
        return DeviceConnectionProblem(f"{what}: unexpected adb failure ({type(e).__name__}: {e})",
                                       hint="rerun with a fresh connection; report this if it persists")

    def _call(self, what: str, fn: Callable[[], T], *, retry: bool) -> T:
        if self._closed:
            raise DeviceConnectionProblem(f"{what}: the device connection was closed",
                                          hint="open the device again")
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            if retry and self._is_drop(e) and not isinstance(e, (adb_exc.PushFailedError,
                                                                 adb_exc.AdbCommandFailureException)):
                self._adb.close()
                try:
                    self._connect(retry=False)
                    return fn()
                except DeviceProblem:
                    raise
                except Exception as e2:  # noqa: BLE001
                    self._adb.close()
                    raise self._map(e2, what) from None
            if self._is_drop(e):
                self._adb.close()
            raise self._map(e, what) from None

    # -- Device ----------------------------------------------------------------------------

    def shell(self, command: str, *, timeout_s: float = 60.0) -> ShellResult:
        return self._shell(command, timeout_s=timeout_s, retry=bool(_READ_ONLY.match(command)))

    def _shell(self, command: str, *, timeout_s: float, retry: bool) -> ShellResult:
        if "shell_v2" in self._features:
            raw = self._call(f"shell `{command[:80]}`", lambda: self._adb._service(
                b"shell,v2,raw", command.encode("utf-8"), transport_timeout_s=timeout_s,
                read_timeout_s=timeout_s, timeout_s=timeout_s, decode=False), retry=retry)
            return _parse_v2(raw)
        wrapped = f"{command}; echo {_EXIT_MARK}$?"
        out = self._call(f"shell `{command[:80]}`", lambda: self._adb.shell(
            wrapped, transport_timeout_s=timeout_s, read_timeout_s=timeout_s,
            timeout_s=timeout_s, decode=False), retry=retry)
        text = out.decode("utf-8", "replace")
        idx = text.rfind(_EXIT_MARK)
        if idx < 0:
            return ShellResult(255, text)
        m = re.match(r"\d+", text[idx + len(_EXIT_MARK):])
        return ShellResult(int(m.group()) if m else 255, text[:idx])

    def _send_file(self, local: Path, remote: str, *, timeout_s: float) -> None:
        self._call(f"push {local.name} to {remote}", lambda: self._adb.push(
            str(local), remote, st_mode=0o100644, mtime=int(local.stat().st_mtime),
            transport_timeout_s=min(timeout_s, max(self._timeout_s, 30.0)), read_timeout_s=timeout_s),
            retry=False)

    def _remove_partial(self, partial: str) -> None:
        """``rm -f`` is safe to replay, so a dropped connection is reopened once for it (a real
        adbd leaves what it received under the partial name)."""
        try:
            self._shell(f"rm -f {quote(partial)}", timeout_s=10.0, retry=True)
        except DeviceProblem:
            pass  # the device is gone for good; the partial name never shadows the real one

    def pull(self, remote: str, local: Path, *, timeout_s: float = 600.0) -> None:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".partial", dir=local.parent)
        os.close(fd)
        try:
            self._call(f"pull {remote}", lambda: self._adb.pull(
                remote, tmp, transport_timeout_s=min(timeout_s, max(self._timeout_s, 30.0)),
                read_timeout_s=timeout_s), retry=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, local)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def exists(self, remote: str) -> bool:
        mode, _size, _mtime = self._call(f"stat {remote}", lambda: self._adb.stat(
            remote, transport_timeout_s=self._timeout_s, read_timeout_s=self._timeout_s), retry=True)
        return mode != 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._adb.close()
            except Exception:  # noqa: BLE001 - closing must not fail
                pass

    @property
    def features(self) -> frozenset[str]:
        return frozenset(self._features)


def _parse_v2(raw: bytes) -> ShellResult:
    out, err = bytearray(), bytearray()
    code = 255
    i = 0
    while i + 5 <= len(raw):
        kind = raw[i]
        n = int.from_bytes(raw[i + 1:i + 5], "little")
        data = raw[i + 5:i + 5 + n]
        i += 5 + n
        if kind == _V2_STDOUT:
            out += data
        elif kind == _V2_STDERR:
            err += data
        elif kind == _V2_EXIT and data:
            code = data[0]
    return ShellResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
