"""The emulated phone: filesystem, packages, trusted keys, and the TCP listener."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from liteship.device import keys
from liteship.device.emulator import adbd
from liteship.device.emulator.faults import Faults
from liteship.device.emulator.fs import DeviceFS
from liteship.device.emulator.packages import ActivityManager, PackageManager
from liteship.device.emulator.shell import Shell, default_props

log = logging.getLogger(__name__)

ADB_KEYS = "data/misc/adb/adb_keys"
#: ports the adb server scans for emulators (and then calls them emulator-5554...); keep out
ADB_EMULATOR_PORTS = range(5554, 5586)


class EmulatedDevice:
    def __init__(self, root: Path, faults: Faults, *, serial: str, installed_packages: tuple[str, ...] = (),
                 model: str = "liteship emulated device", product: str = "liteship_emu",
                 device_name: str = "emu64a") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.faults = faults
        self.serial = serial
        self.model, self.product, self.device_name = model, product, device_name
        self.fs = DeviceFS(self.root, storage_limit_bytes=faults.storage_limit_bytes)
        self.pm = PackageManager(self.fs, faults, tuple(installed_packages))
        self.am = ActivityManager(self.fs, self.pm, faults)
        self.props = default_props(serial, self.model, product, device_name)
        self.shell = Shell(self.fs, self.pm, self.am, faults, self.props)
        self.keys_file = self.root / ADB_KEYS
        self._keys_lock = threading.Lock()

    def check_signature(self, token: bytes, signature: bytes) -> bool:
        with self._keys_lock:
            trusted = adbd.load_trusted(self.keys_file)
        return any(keys.verify_token(k, token, signature) for k in trusted)

    def accept_key(self, data: bytes) -> bool:
        """The user taps "Allow": the key is appended to adb_keys, as adbd does."""
        line = data.rstrip(b"\0").decode("ascii", "replace").strip()
        try:
            keys.parse_public_key(line)
        except (ValueError, TypeError):
            log.warning("emulated adbd: malformed public key from host")
            return False
        with self._keys_lock:
            self.keys_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.keys_file, "a", encoding="ascii") as f:
                f.write(line + "\n")
        return True

    def trust_key(self, pub_line: str) -> None:
        self.accept_key(pub_line.encode())

    def service_for(self, dest: str) -> Callable[..., None] | None:
        return adbd.resolve_service(dest)


@dataclass
class EmulatorHandle:
    """A running emulator (background threads). ``stop()`` is idempotent."""

    host: str
    port: int
    device: EmulatedDevice
    _sock: socket.socket = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _conns: list[adbd.Connection] = field(default_factory=list, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def spec(self) -> str:
        return f"tcp:{self.host}:{self.port}"

    @property
    def root(self) -> Path:
        return self.device.root

    @property
    def faults(self) -> Faults:
        return self.device.faults

    def drop_connections(self) -> None:
        """Cut every open connection (like pulling the cable); the listener keeps running."""
        for c in list(self._conns):
            c.drop("drop_connections()")

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        self.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> "EmulatorHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    if port in ADB_EMULATOR_PORTS:
        log.warning("port %d is in 5554-5585: a local adb server will list this device as "
                    "emulator-%d", port, port - 1 if port % 2 else port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(16)
    return sock


def _accept_loop(handle_ref: list[EmulatorHandle], sock: socket.socket, device: EmulatedDevice,
                 stopped: threading.Event) -> None:
    while not stopped.is_set():
        try:
            client, _addr = sock.accept()
        except OSError:
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = adbd.Connection(device, client)
        if handle_ref:
            conns = handle_ref[0]._conns
            conns[:] = [c for c in conns if not c.dropped]
            conns.append(conn)
        threading.Thread(target=conn.serve, daemon=True, name=f"adbd-conn:{device.serial}").start()


def start(root: Path, port: int = 0, faults: Faults | None = None, installed_packages: tuple[str, ...] = (),
          *, host: str = "127.0.0.1", trusted_keys: tuple[str, ...] = (), **device_kw: str) -> EmulatorHandle:
    """Start an emulated device in background threads; port 0 picks a free port."""
    faults = faults or Faults()
    sock = _listen(host, port)
    real_port = sock.getsockname()[1]
    device = EmulatedDevice(Path(root), faults, serial=f"{host}:{real_port}",
                            installed_packages=tuple(installed_packages), **device_kw)
    for line in trusted_keys:
        device.trust_key(line)
    stopped = threading.Event()
    ref: list[EmulatorHandle] = []
    thread = threading.Thread(target=_accept_loop, args=(ref, sock, device, stopped), daemon=True,
                              name=f"adbd-accept:{real_port}")
    handle = EmulatorHandle(host, real_port, device, sock, thread, _stopped=stopped)
    ref.append(handle)
    thread.start()
    return handle


def serve_forever(root: Path, port: int, host: str = "127.0.0.1", faults: Faults | None = None,
                  serial: str | None = None, installed_packages: tuple[str, ...] = ()) -> None:
    """Run in the foreground until interrupted (``liteship emulator``)."""
    handle = start(root, port, faults, installed_packages, host=host)
    if serial:
        handle.device.serial = serial
        handle.device.props["ro.serialno"] = serial
    try:
        handle._thread.join()
    finally:
        handle.stop()
