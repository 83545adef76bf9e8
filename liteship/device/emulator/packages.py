"""Package manager and activity manager of the emulated device, and its one "app".

Installed packages are folders ``<root>/data/app/<pkg>/`` holding ``base.apk`` (as
``pm path`` reports them). There is no real APK here: the package name is read from a
binary AndroidManifest.xml when the file is a zip that has one (``liteship.apk.manifest``),
else the file is taken to be the liteship demo app.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from liteship.apk.manifest import manifest_package
from liteship.device.emulator.faults import Faults
from liteship.device.emulator.fs import DeviceFS, FsError
from liteship.device.protocol import APP_PACKAGE, RESULT_NAME, RESULT_TMP_NAME

log = logging.getLogger(__name__)

#: activities each known package exports (component short names)
ACTIVITIES = {APP_PACKAGE: (".ValidationActivity", ".MainActivity")}


class PackageManager:
    def __init__(self, fs: DeviceFS, faults: Faults, installed: tuple[str, ...] = ()) -> None:
        self.fs = fs
        self.faults = faults
        self.app_dir = fs.root / "data" / "app"
        for pkg in installed:
            if pkg == APP_PACKAGE and not faults.app_installed:
                continue
            d = self.app_dir / pkg
            d.mkdir(parents=True, exist_ok=True)
            (d / "base.apk").write_bytes(b"PK\x05\x06" + b"\0" * 18)
        if not faults.app_installed:
            shutil.rmtree(self.app_dir / APP_PACKAGE, ignore_errors=True)

    def packages(self) -> list[str]:
        return sorted(p.name for p in self.app_dir.iterdir() if (p / "base.apk").is_file())

    def is_installed(self, pkg: str) -> bool:
        return (self.app_dir / pkg / "base.apk").is_file()

    def install_file(self, apk: Path, *, replace: bool) -> str:
        """Install from a host file; returns pm's one-line answer ("Success" / "Failure [...]")."""
        if apk.stat().st_size == 0:
            return "Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse /data/app/vmdl.tmp/base.apk: Failed to load asset path]"
        pkg = manifest_package(apk) or APP_PACKAGE
        if pkg == APP_PACKAGE and not self.faults.app_installed:
            return ("Failure [INSTALL_FAILED_INVALID_APK: Failed to extract native libraries, res=-2]")
        if self.is_installed(pkg) and not replace:
            return (f"Failure [INSTALL_FAILED_ALREADY_EXISTS: Attempt to re-install {pkg} "
                    "without first uninstalling.]")
        d = self.app_dir / pkg
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ".base.apk.installing"
        shutil.copyfile(apk, tmp)
        os.replace(tmp, d / "base.apk")
        return "Success"

    def install_bytes(self, data: bytes, *, replace: bool) -> str:
        tmpdir = self.fs.root / "data" / "local" / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        staged = tmpdir / f".vmdl{threading.get_ident()}.tmp"
        staged.write_bytes(data)
        try:
            return self.install_file(staged, replace=replace)
        finally:
            staged.unlink(missing_ok=True)

    def uninstall(self, pkg: str) -> str:
        if not self.is_installed(pkg):
            return "Failure [DELETE_FAILED_INTERNAL_ERROR]"
        shutil.rmtree(self.app_dir / pkg, ignore_errors=True)
        return "Success"


class ActivityManager:
    """``am start`` of the validation activity runs the emulated app in a thread."""

    def __init__(self, fs: DeviceFS, pm: PackageManager, faults: Faults) -> None:
        self.fs = fs
        self.pm = pm
        self.faults = faults
        self.threads: list[threading.Thread] = []
        #: package -> pid of its (emulated) process; a process stays cached after its activity
        #: finishes, as on Android, and is gone after a crash or `am force-stop`
        self.processes: dict[str, int] = {}
        self._next_pid = 12000
        self._lock = threading.Lock()

    def pid_of(self, pkg: str) -> int | None:
        with self._lock:
            return self.processes.get(pkg)

    def force_stop(self, pkg: str) -> None:
        with self._lock:
            self.processes.pop(pkg, None)

    def _spawn(self, pkg: str) -> None:
        with self._lock:
            if pkg not in self.processes:
                self._next_pid += 7
                self.processes[pkg] = self._next_pid

    def start(self, component: str, extras: dict[str, str]) -> tuple[str, str, int]:
        """Returns (stdout, stderr, exit code) like ``am start -n``."""
        pkg, _, cls = component.partition("/")
        full_cls = pkg + cls if cls.startswith(".") else cls
        shown = f"Starting: Intent {{ cmp={component}{' (has extras)' if extras else ''} }}\n"
        if not pkg or not cls:
            return "", f"Error: Bad component name: {component}\n", 1
        known = ACTIVITIES.get(pkg, ())
        short = "." + full_cls[len(pkg) + 1:] if full_cls.startswith(pkg + ".") else full_cls
        if not self.pm.is_installed(pkg) or short not in known:
            return shown, (f"Error type 3\nError: Activity class {{{pkg}/{full_cls}}} does not exist.\n"), 1
        self._spawn(pkg)
        if pkg == APP_PACKAGE and short == ".ValidationActivity":
            request = extras.get("request")
            if request:
                try:
                    host_request = self.fs.host(request)
                except FsError:
                    host_request = None
                t = threading.Thread(target=self._run_app, args=(host_request,), daemon=True,
                                     name=f"emulated-app:{request}")
                t.start()
                self.threads.append(t)
        return shown, "", 0

    def _run_app(self, request_file: Path | None) -> None:
        f = self.faults
        if f.app_hang:
            return  # the process stays up and never writes a result: the host's poll times out
        if request_file is None or f.app_crash:
            time.sleep(0.3)
            self.force_stop(APP_PACKAGE)  # dies without a result (FATAL EXCEPTION in logcat)
            return
        folder = request_file.parent
        if f.corrupt_result:
            tmp = folder / RESULT_TMP_NAME
            tmp.write_text('{"schema": "liteship.device.result", "version": 1, "run_id": "')
            os.replace(tmp, folder / RESULT_NAME)
            return
        try:
            from liteship.device import apprunner

            serve: Callable[..., object] = apprunner.serve
        except ImportError as e:  # the app's code is missing: like a crash at launch
            log.error("emulated app cannot start: %s", e)
            return
        serve(request_file, producer_kind="emulated", perturb=f.perturb_result)
