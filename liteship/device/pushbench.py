"""Push throughput: liteship's ``Device.push`` against adb-shell's own ``AdbDeviceTcp.push``.

Both push the same random file over the same loopback connection type to the same
emulated device (or any ``tcp:HOST:PORT`` adbd); scripts/bench.py reports the ratio as
``push_throughput_ratio`` (goal >= 0.9).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from adb_shell.adb_device import AdbDeviceTcp

from liteship.device import keys
from liteship.device.adbshell import AdbShellDevice
from liteship.device.connect import parse_tcp


def _target(handle_or_spec: Any) -> tuple[str, int]:
    if isinstance(handle_or_spec, str):
        return parse_tcp(handle_or_spec if handle_or_spec.startswith("tcp:") else "tcp:" + handle_or_spec)
    return handle_or_spec.host, handle_or_spec.port


def measure_push(handle_or_spec: Any, size_bytes: int = 50 * 2**20, *, key_path: Path | None = None,
                 repeats: int = 1) -> dict[str, float]:
    """Seconds and MB/s (10^6 bytes/s) of both pushes (best of ``repeats``), and their ratio."""
    host, port = _target(handle_or_spec)
    with tempfile.TemporaryDirectory(prefix="liteship-pushbench-") as tmp:
        src = Path(tmp) / "payload.bin"
        with open(src, "wb") as f:
            left = size_bytes
            while left:
                n = min(left, 1 << 22)
                f.write(os.urandom(n))
                left -= n
        key = key_path or Path(tmp) / "adbkey"
        signers = keys.load_signers(key)

        def liteship_push() -> float:
            with AdbShellDevice.connect_tcp(host, port, key_path=key, timeout_s=30) as dev:
                t0 = time.perf_counter()
                dev.push(src, "/data/local/tmp/pushbench-liteship.bin")
                dt = time.perf_counter() - t0
                dev.shell("rm -f /data/local/tmp/pushbench-liteship.bin")
            return dt

        def adbshell_push() -> float:
            # adb-shell as shipped; without a transport timeout its socket stays blocking,
            # the one mode in which its single-send bulk_write does not lose bytes
            adb = AdbDeviceTcp(host, port)
            adb.connect(rsa_keys=signers, auth_timeout_s=30)
            try:
                t0 = time.perf_counter()
                adb.push(str(src), "/data/local/tmp/pushbench-adbshell.bin")
                dt = time.perf_counter() - t0
                adb.shell("rm -f /data/local/tmp/pushbench-adbshell.bin")
            finally:
                adb.close()
            return dt

        lite = min(liteship_push() for _ in range(repeats))
        ref = min(adbshell_push() for _ in range(repeats))
    mb = size_bytes / 1e6
    return {
        "size_bytes": float(size_bytes),
        "liteship_s": lite,
        "liteship_mb_s": mb / lite,
        "adb_shell_s": ref,
        "adb_shell_mb_s": mb / ref,
        "push_throughput_ratio": ref / lite,
    }
