"""Device-side adbd over TCP: handshake, RSA auth, streams with flow control, services.

One thread per connection reads messages; each opened stream runs its service in its own
thread. Device-to-host WRTEs wait for the host's OKAY (the protocol's flow control);
host-to-device WRTEs are queued and acknowledged at once.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from liteship.device import keys
from liteship.device.emulator import wire
from liteship.device.emulator.shell import Shell
from liteship.device.emulator.sync import SyncService

if TYPE_CHECKING:
    from liteship.device.emulator.server import EmulatedDevice

log = logging.getLogger(__name__)

FEATURES = ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir", "apex", "fixed_push_symlink_timestamp")
SHELL_V2_STDIN, SHELL_V2_STDOUT, SHELL_V2_STDERR, SHELL_V2_EXIT, SHELL_V2_CLOSE_STDIN = 0, 1, 2, 3, 4


class StreamClosed(Exception):
    pass


class Stream:
    """One OPENed service: a byte pipe in each direction."""

    def __init__(self, conn: "Connection", local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._can_write = threading.Event()
        self._can_write.set()

    # called by the connection's reader thread
    def feed(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    def acked(self) -> None:
        self._can_write.set()

    def mark_closed(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._can_write.set()

    @property
    def closed(self) -> bool:
        return self._closed

    # called by the service thread
    def read_exact(self, n: int) -> bytes | None:
        """``n`` bytes, or None when the host closed the stream (or the connection dropped)."""
        with self._cond:
            while len(self._buf) < n and not self._closed:
                self._cond.wait()
            if len(self._buf) < n:
                return None
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out

    def read_some(self, n: int) -> bytes:
        with self._cond:
            while not self._buf and not self._closed:
                self._cond.wait()
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out

    def write(self, data: bytes) -> None:
        step = self.conn.maxdata
        view = memoryview(data)
        for i in range(0, len(data), step):
            self._can_write.wait()
            if self._closed:
                raise StreamClosed()
            self._can_write.clear()
            self.conn.send(wire.A_WRTE, self.local_id, self.remote_id, bytes(view[i:i + step]))

    def close(self) -> None:
        """Service finished: tell the host (once)."""
        if not self._closed:
            self.mark_closed()
            self.conn.send(wire.A_CLSE, self.local_id, self.remote_id, b"")
        self.conn.forget(self.local_id)


class Connection:
    def __init__(self, device: "EmulatedDevice", sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=1 << 20)
        self.send_lock = threading.Lock()
        self.version = wire.A_VERSION
        self.maxdata = wire.MAX_PAYLOAD
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.dropped = False
        self.authorized = False

    # -- I/O -----------------------------------------------------------------------------

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        hdr = wire.header(cmd, arg0, arg1, data, with_checksum=self.version < wire.A_VERSION_SKIP_CHECKSUM)
        with self.send_lock:
            try:
                self.sock.sendall(hdr + data if len(data) < 65536 else hdr)
                if len(data) >= 65536:
                    self.sock.sendall(data)
            except OSError:
                self.drop("send failed")
                raise StreamClosed() from None

    def recv(self) -> tuple[int, int, int, bytes] | None:
        hdr = self.rfile.read(24)
        if len(hdr) < 24:
            return None
        cmd, a0, a1, length, _csum, magic = wire.HEADER.unpack(hdr)
        if magic != cmd ^ 0xFFFFFFFF or length > wire.MAX_PAYLOAD:
            log.warning("bad message header from host: %r", hdr)
            return None
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            return None
        return cmd, a0, a1, data

    def drop(self, why: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        log.info("emulated adbd drops the connection: %s", why)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for s in list(self.streams.values()):
            s.mark_closed()

    def forget(self, local_id: int) -> None:
        self.streams.pop(local_id, None)

    # -- handshake -----------------------------------------------------------------------

    def banner(self) -> bytes:
        d = self.device
        return (f"device::ro.product.name={d.product};ro.product.model={d.model.replace(' ', '_')};"
                f"ro.product.device={d.device_name};features={','.join(FEATURES)}").encode()

    def send_cnxn(self) -> None:
        self.authorized = True
        self.send(wire.A_CNXN, self.version, self.maxdata, self.banner())

    def handshake(self) -> bool:
        token = b""
        while True:
            msg = self.recv()
            if msg is None:
                return False
            cmd, a0, a1, data = msg
            if cmd == wire.A_CNXN:
                self.version = max(wire.A_VERSION_MIN, min(a0, wire.A_VERSION))
                self.maxdata = max(wire.MAX_PAYLOAD_V1, min(a1 or wire.MAX_PAYLOAD_V1, wire.MAX_PAYLOAD))
                self.host_banner = data
                token = os.urandom(wire.TOKEN_SIZE)
                self.send(wire.A_AUTH, wire.AUTH_TOKEN, 0, token)
            elif cmd == wire.A_AUTH and a0 == wire.AUTH_SIGNATURE and token:
                if not self.device.faults.refuse_auth and self.device.check_signature(token, data):
                    self.send_cnxn()
                    return True
                token = os.urandom(wire.TOKEN_SIZE)
                self.send(wire.A_AUTH, wire.AUTH_TOKEN, 0, token)
            elif cmd == wire.A_AUTH and a0 == wire.AUTH_RSAPUBLICKEY and token:
                if self.device.faults.refuse_auth:
                    # "Allow USB debugging?" is never accepted: like a phone whose user
                    # ignores the prompt, the connection stays open and unauthorized
                    log.info("emulated adbd: key not accepted (faults.refuse_auth)")
                    continue
                if not self.device.accept_key(data):
                    return False
                self.send_cnxn()
                return True
            else:
                log.debug("ignoring %s before the connection is authorized", wire.NAMES.get(cmd, cmd))

    # -- main loop -----------------------------------------------------------------------

    def serve(self) -> None:
        try:
            if not self.handshake():
                return
            while True:
                msg = self.recv()
                if msg is None:
                    return
                self.dispatch(*msg)
        except (OSError, StreamClosed, ValueError):
            return
        finally:
            self.drop("connection closed")
            try:
                self.sock.close()
            except OSError:
                pass

    def dispatch(self, cmd: int, a0: int, a1: int, data: bytes) -> None:
        if cmd == wire.A_OPEN:
            dest = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            local_id = self.next_id
            self.next_id += 1
            handler = self.device.service_for(dest)
            if handler is None:
                self.send(wire.A_CLSE, 0, a0, b"")
                return
            stream = Stream(self, local_id, a0)
            self.streams[local_id] = stream
            self.send(wire.A_OKAY, local_id, a0, b"")
            threading.Thread(target=self._run_service, args=(handler, stream), daemon=True,
                             name=f"adbd-service:{dest[:40]}").start()
        elif cmd == wire.A_WRTE:
            stream = self.streams.get(a1)
            if stream is None:
                self.send(wire.A_CLSE, a1, a0, b"")
                return
            stream.feed(data)
            self.send(wire.A_OKAY, a1, a0, b"")
        elif cmd == wire.A_OKAY:
            stream = self.streams.get(a1)
            if stream is not None:
                stream.remote_id = a0
                stream.acked()
        elif cmd == wire.A_CLSE:
            stream = self.streams.pop(a1, None)
            if stream is not None and not stream.closed:
                stream.mark_closed()
                self.send(wire.A_CLSE, a1, a0, b"")
        elif cmd == wire.A_CNXN:
            self.send_cnxn()

    def _run_service(self, handler: Callable[["Connection", Stream], None], stream: Stream) -> None:
        try:
            handler(self, stream)
        except StreamClosed:
            pass
        except Exception:  # a bug in the emulator must not hang the host: close the stream
            log.exception("emulated adbd service failed")
        finally:
            if not self.dropped:
                try:
                    stream.close()
                except StreamClosed:
                    pass


# -- services ------------------------------------------------------------------------------

SHELL_RE = re.compile(r"^shell(?P<args>(,[^:]*)?):(?P<cmd>.*)$", re.S)


def service_sync(conn: Connection, stream: Stream) -> None:
    SyncService(conn, stream).run()


def make_shell_service(args: list[str], command: str) -> Callable[[Connection, Stream], None]:
    v2 = "v2" in args

    def run(conn: Connection, stream: Stream) -> None:
        shell: Shell = conn.device.shell
        if not command.strip():
            msg = b"liteship emulator: interactive shells are not supported; pass a command\n"
            if v2:
                stream.write(_v2(SHELL_V2_STDERR, msg) + _v2(SHELL_V2_EXIT, b"\x01"))
            else:
                stream.write(msg)
            return
        stdin = _V2Stdin(stream) if v2 else stream.read_some
        out, err, merged, code = shell.run_merged(command, stdin=stdin)
        if v2:
            payload = bytearray()
            for i in range(0, len(out), 1 << 19):
                payload += _v2(SHELL_V2_STDOUT, out[i:i + (1 << 19)])
            if err:
                payload += _v2(SHELL_V2_STDERR, err)
            payload += _v2(SHELL_V2_EXIT, bytes([code & 0xFF]))
            stream.write(bytes(payload))
        elif merged:
            stream.write(merged)

    return run


def make_exec_service(command: str) -> Callable[[Connection, Stream], None]:
    def run(conn: Connection, stream: Stream) -> None:
        _out, _err, merged, _code = conn.device.shell.run_merged(command, stdin=stream.read_some)
        if merged:
            stream.write(merged)

    return run


def make_text_service(text: str) -> Callable[[Connection, Stream], None]:
    def run(conn: Connection, stream: Stream) -> None:
        stream.write(text.encode())

    return run


def _v2(kind: int, data: bytes) -> bytes:
    return bytes([kind]) + len(data).to_bytes(4, "little") + data


class _V2Stdin:
    """stdin of a shell v2 session: unwraps id-0 packets until CLOSE_STDIN."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.pending = b""
        self.eof = False

    def __call__(self, n: int) -> bytes:
        while not self.pending and not self.eof:
            hdr = self.stream.read_exact(5)
            if hdr is None:
                self.eof = True
                break
            length = int.from_bytes(hdr[1:5], "little")
            data = self.stream.read_exact(length) if length else b""
            if data is None or hdr[0] == SHELL_V2_CLOSE_STDIN:
                self.eof = True
            elif hdr[0] == SHELL_V2_STDIN:
                self.pending = data
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


def resolve_service(dest: str) -> Callable[[Connection, Stream], None] | None:
    if dest == "sync:":
        return service_sync
    m = SHELL_RE.match(dest)
    if m:
        args = [a for a in m.group("args").split(",") if a]
        return make_shell_service(args, m.group("cmd"))
    if dest.startswith("exec:"):
        return make_exec_service(dest[len("exec:"):])
    if dest in ("host:features", "features"):
        return make_text_service(",".join(FEATURES))
    if dest.startswith("root:"):
        return make_text_service("adbd cannot run as root in production builds\n")
    if dest.startswith("unroot:"):
        return make_text_service("adbd not running as root\n")
    if dest.startswith("reboot:"):
        return make_text_service("")
    return None


def load_trusted(path: Path) -> list:
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                try:
                    out.append(keys.parse_public_key(line))
                except (ValueError, TypeError):
                    log.warning("ignoring a malformed line in %s", path)
    return out
