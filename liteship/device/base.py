"""The one device interface every transport implements.

Transports raise only ``liteship.errors.Device*`` errors (never library exceptions), so the
deploy flow and the CLI map every failure to a documented exit code.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: str
    stderr: str = ""


@dataclass(frozen=True)
class DeviceInfo:
    serial: str           # e.g. "R58M123ABC", "127.0.0.1:6520", "tcp:127.0.0.1:6520"
    state: str            # "device", "unauthorized", "offline", ...
    transport: str        # "adb-shell" | "adb-server"
    model: str = ""
    product: str = ""


class Device(ABC):
    """A connected device. Use as a context manager; ``close()`` is idempotent."""

    serial: str
    transport: str

    @abstractmethod
    def shell(self, command: str, *, timeout_s: float = 60.0) -> ShellResult:
        """Run ``command`` with the device's ``sh``. Callers quote with :func:`quote`."""

    def push(self, local: Path, remote: str, *, timeout_s: float = 600.0) -> None:
        """Copy a file to ``remote`` (the full destination path, not a folder), atomically.

        The same on every transport: the bytes go to ``<remote>.partial-XXXX`` (the
        transport's :meth:`_send_file`), then ``mv -f`` renames it into place, so a reader on
        the device never sees a half-written file under the final name. On failure the
        partial file is removed (:meth:`_remove_partial`) and the error is raised."""
        import secrets

        from liteship.errors import DeviceProblem, DeviceStorageProblem

        local = Path(local)
        if not local.is_file():
            raise DeviceStorageProblem(f"cannot push {local}: not a file on this computer", hint="check the local path")
        partial = f"{remote}.partial-{secrets.token_hex(4)}"
        try:
            self._send_file(local, partial, timeout_s=timeout_s)
            r = self.shell(f"mv -f {quote(partial)} {quote(remote)}", timeout_s=min(timeout_s, 60.0))
            if r.exit_code != 0:
                raise DeviceStorageProblem(
                    f"push to {remote}: the file arrived but renaming it into place failed "
                    f"(exit {r.exit_code}): {(r.stdout + r.stderr).strip()}",
                    hint="check that the destination folder is writable by the shell user")
        except DeviceProblem:
            self._remove_partial(partial)
            raise

    @abstractmethod
    def _send_file(self, local: Path, remote: str, *, timeout_s: float) -> None:
        """Write ``local`` to exactly ``remote`` (sync SEND; never retried: a second attempt
        could race a half-written first one). Raises only ``Device*`` errors."""

    def _remove_partial(self, partial: str) -> None:
        """Best effort ``rm -f`` of a partial upload (the partial name never shadows the real one)."""
        from liteship.errors import DeviceProblem

        try:
            self.shell(f"rm -f {quote(partial)}", timeout_s=10.0)
        except DeviceProblem:
            pass

    @abstractmethod
    def pull(self, remote: str, local: Path, *, timeout_s: float = 600.0) -> None:
        """Copy ``remote`` to ``local`` (written atomically)."""

    @abstractmethod
    def exists(self, remote: str) -> bool:
        """Whether ``remote`` exists (sync STAT; no shell)."""

    def install(self, apk: Path, *, timeout_s: float = 600.0) -> None:
        """Install or upgrade (``-r``) an APK: push it to /data/local/tmp, ``pm install -r``.

        The same on every transport (adb-shell has no install; adbutils' install would start
        its own adb server), so it lives here on top of push and shell."""
        import secrets

        from liteship.errors import DeviceAppProblem, DeviceProblem, DeviceStorageProblem

        remote = f"/data/local/tmp/liteship-{secrets.token_hex(4)}.apk"
        try:
            self.push(apk, remote, timeout_s=timeout_s)
        except DeviceStorageProblem as e:
            raise DeviceAppProblem(f"install {Path(apk).name}: {e.message}", hint=e.hint) from None
        try:
            r = self.shell(f"pm install -r {quote(remote)}", timeout_s=timeout_s)
        finally:
            try:
                self.shell(f"rm -f {quote(remote)}", timeout_s=10.0)
            except DeviceProblem:
                pass
        text = (r.stdout + r.stderr).strip()
        if r.exit_code != 0 or "Success" not in text:
            raise DeviceAppProblem(
                f"installing {Path(apk).name} failed: expected \"Success\" from pm, got: {text or f'exit {r.exit_code}'}",
                hint="INSTALL_FAILED_UPDATE_INCOMPATIBLE: uninstall the old app first "
                     "(adb uninstall dev.liteship.demo); INSTALL_FAILED_INSUFFICIENT_STORAGE: free space")

    @abstractmethod
    def close(self) -> None: ...

    def getprop(self, name: str) -> str:
        return self.shell(f"getprop {quote(name)}").stdout.strip()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quote(arg: str) -> str:
    """Quote one argument for the device's /system/bin/sh (mksh: POSIX quoting works)."""
    return shlex.quote(arg)
