"""Opt-in: push, shell and pull on a real phone that `adb devices` lists on the default server.

Run with ``pytest -m device``. Skips (with the reason) when no adb, no server or no
authorized device is available. Writes only under /data/local/tmp and removes what it wrote.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

from liteship.device.base import quote
from liteship.device.connect import list_devices, open_device

pytestmark = pytest.mark.device


def _real_serials() -> list[str]:
    if shutil.which("adb") is None and not os.environ.get("ANDROID_ADB_SERVER_PORT"):
        pytest.skip("no `adb` on PATH and no ANDROID_ADB_SERVER_PORT: no way to reach a real device")
    devices = list_devices()
    ready = [d.serial for d in devices if d.state == "device"
             and not d.serial.startswith("emulator-") and d.model != "liteship_emulated_device"]
    if not ready:
        listed = ", ".join(f"{d.serial} ({d.state})" for d in devices) or "none"
        reason = "; ".join(devices.notes) if devices.notes else f"adb devices lists: {listed}"
        pytest.skip(f"no authorized real device on the default adb server ({reason})")
    return ready


def test_push_shell_pull_round_trip_on_a_real_device(tmp_path: Path) -> None:
    serial = _real_serials()[0]
    data = os.urandom(3 * 2**20)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    remote = f"/data/local/tmp/liteship-real-{secrets.token_hex(4)} test.bin"
    with open_device(serial, timeout_s=20) as dev:
        try:
            dev.push(src, remote)
            assert dev.exists(remote)
            r = dev.shell(f"stat -c %s {quote(remote)}")
            assert r.exit_code == 0 and r.stdout.strip() == str(len(data))
            assert dev.shell("exit 3").exit_code == 3
            dev.pull(remote, tmp_path / "back.bin")
            assert (tmp_path / "back.bin").read_bytes() == data
        finally:
            dev.shell(f"rm -f {quote(remote)}")
        assert not dev.exists(remote)


def test_gpu_variant_deploy_on_a_real_device(tmp_path: Path) -> None:
    """The gpu variant's form (tests/fixtures/gpu_form.py) through the installed validation app on a
    phone: MediaPipe on GPU, CompiledModel on CPU and GPU against the desktop; the first on-device
    evidence for the app's RawSsdDecoder and DetectorMetadata. The GPU may be missing (a reported
    fallback, allowed to skip here); a parity failure is not."""
    import json

    from liteship.cli import main
    from liteship.device import protocol
    from tests.fixtures.gpu_form import gpu_form_model

    serial = _real_serials()[0]
    with open_device(serial, timeout_s=20) as dev:
        if "package:" not in dev.shell(f"pm path {protocol.APP_PACKAGE}").stdout:
            pytest.skip(f"{serial}: the validation app is not installed (./gradlew assembleDebug, then --apk)")
    model = tmp_path / "gpu.tflite"
    model.write_bytes(gpu_form_model())
    out = tmp_path / "out"
    code = main(["deploy", str(model), "--device", serial, "--out", str(out), "--quiet", "--iterations", "3",
                 "--engines", "mediapipe:gpu,compiled:cpu+gpu", "--allow-skip", "device.*.gpu.accelerator"])
    report = json.loads((out / "report.json").read_text())
    assert code == 0, json.dumps(report["devices"], indent=1)[:3000]
    (device,) = report["devices"]
    assert device["producer_kind"] == "device" and device["variant"] == "gpu"
    assert {(d["engine"], d["delegate"]) for d in device["delegates"]} == {
        ("mediapipe", "gpu"), ("compiled", "cpu"), ("compiled", "gpu")}
