"""`liteship deploy` end to end against the emulated device, and the comparison with the desktop.

Real clients on loopback: adb-shell (``tcp:127.0.0.1:PORT``) and Debian's adb server
(``--transport adb-server``, a private server from tests/fixtures/adb.py). The models are
the tiny TF-free ones of test_device_apprunner.py; the ``tf``/``slow`` test deploys the
session's converted int8 model (``run_a``).
"""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.cli import main
from liteship.device import apprunner, compare, deploy, protocol
from liteship.device.base import Device, ShellResult
from liteship.device.emulator import Faults
from liteship.errors import DeviceAppProblem, DeviceTimeout, UsageProblem
from tests.fixtures.adb import adb_server_env, debian_adb, key_path, make_emulator  # noqa: F401
from tests.test_device_apprunner import tiny_models  # noqa: F401

APP = (protocol.APP_PACKAGE,)


def deploy_cli(model: Path, specs: list[str], out: Path, key: Path, *extra: str, images: Path | None = None) -> int:
    argv = ["deploy", str(model), "--out", str(out), "--adb-key", str(key), "--iterations", "3", "--warmup", "1",
            "--threads", "1", "--quiet"]
    for spec in specs:
        argv += ["--device", spec]
    if images is not None:
        argv += ["--images", str(images)]
    return main([*argv, *extra])


def report_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def runs_dir(emu: Any) -> Path:
    return emu.root / protocol.RUNS_DIR.lstrip("/")


def assert_no_partial_model(emu: Any, model: Path) -> None:
    """Whatever happened, a file under the model's name on the device is the whole model."""
    data = model.read_bytes()
    for path in emu.root.rglob("*"):
        if path.is_file() and path.name == deploy.MODEL_NAME:
            assert path.read_bytes() == data, f"half-written model left on the device: {path}"


# -- end to end -----------------------------------------------------------------------------


def test_deploy_two_emulated_devices_in_parallel_over_adb_shell(tiny_models, make_emulator, key_path, tmp_path) -> None:
    a, b = make_emulator(installed=APP, name="phone-a"), make_emulator(installed=APP, name="phone-b")
    out = tmp_path / "out"
    # the emulated device has no GPU: that check cannot run there, so it is allowed to skip
    code = deploy_cli(tiny_models["int8"], [a.spec, b.spec], out, key_path, "--delegates", "cpu,gpu",
                      "--allow-skip", "device.gpu.status", images=tiny_models["images"])
    assert code == 0
    report = report_of(out)
    assert report["status"] == "ok" and report["errors"] == []
    assert [d["serial"] for d in report["devices"]] == [a.serial, b.serial]
    for d in report["devices"]:
        assert d["transport"] == "adb-shell" and d["producer_kind"] == "emulated"
        assert d["evidence"] == compare.EMULATED_LABEL == "emulated — not on-device evidence"
        assert d["device"]["model"] == "liteship-emulator" and d["variant"] == "int8"
        cpu, gpu = d["delegates"]
        assert cpu["delegate"] == "cpu" and cpu["status"] == "ok"
        assert cpu["latency"]["count"] == 3 and cpu["latency"]["median_ms"] is not None
        assert cpu["parity"]["tensors"]["inputs"] == 2 and cpu["parity"]["detections"]["images"] == 2
        assert all(c["verdict"] == "pass" for c in cpu["checks"]), cpu["checks"]
        assert all("emulated — not on-device evidence" in c["message"] for c in cpu["checks"])
        assert gpu["status"] == "unavailable" and gpu["checks"][0]["verdict"] == "skip"
        assert gpu["checks"][0]["allowed"] is True
        ids = {c["id"] for c in cpu["checks"]}
        assert {"device.cpu.tensors.location.max_abs", "device.cpu.detections.recall", "device.cpu.latency.samples"} <= ids
    for emu in (a, b):  # the run folders were removed
        assert list(runs_dir(emu).iterdir()) == []
    junit = ET.parse(out / "junit.xml").getroot()
    suites = {s.get("name") for s in junit.iter("testsuite")}
    assert f"liteship.device.{a.serial}.emulated.cpu" in suites and f"liteship.device.{b.serial}.emulated.gpu" in suites
    assert junit.get("failures") == "0"
    page = (out / "report.html").read_text()
    assert 'id="device-table"' in page and "emulated — not on-device evidence" in page


def test_deploy_through_debian_adb_server(tiny_models, make_emulator, key_path, adb_server_env, tmp_path) -> None:
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    code = deploy_cli(tiny_models["fp32"], [emu.spec], out, key_path, "--transport", "adb-server",
                      images=tiny_models["images"])
    assert code == 0, (out / "report.json").read_text() if (out / "report.json").exists() else "no report"
    (device,) = report_of(out)["devices"]
    assert device["transport"] == "adb-server" and device["producer_kind"] == "emulated"
    assert device["status"] == "ok" and device["variant"] == "fp32"
    assert list(runs_dir(emu).iterdir()) == []


def test_keep_leaves_the_run_folder_and_default_images_and_json_output(tiny_models, make_emulator, key_path, tmp_path, capsys) -> None:
    emu = make_emulator(installed=APP)
    code = deploy_cli(tiny_models["fp32"], [emu.spec], tmp_path / "out", key_path, "--keep", "--json")
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["devices"][0]["evidence"] == compare.EMULATED_LABEL
    # no --images: 3 of the embedded demo's images, each as an image and as a tensor
    assert [i["kind"] for i in printed["devices"][0]["inputs"]] == ["image", "tensor"] * 3
    assert all("/demo/data/calibration/" in i["source"] for i in printed["devices"][0]["inputs"])
    (run,) = runs_dir(emu).iterdir()
    assert {"model.tflite", "request.json", "result.json"} <= {p.name for p in run.iterdir()}
    assert (run / "model.tflite").read_bytes() == tiny_models["fp32"].read_bytes()


# -- faults: every one ends in its exit code, with no half-written model on the device -------


FAULTS = [
    pytest.param(Faults(refuse_auth=True), 41, "", id="refuse_auth"),
    pytest.param(Faults(drop_after_bytes=300), 40, "", id="drop_after_bytes"),
    pytest.param(Faults(storage_limit_bytes=1500), 42, "", id="storage_limit_bytes"),
    pytest.param(Faults(app_installed=False), 43, "--apk android_app/app/build/outputs/apk/debug/app-debug.apk",
                 id="app_not_installed"),
    pytest.param(Faults(app_hang=True), 44, "adb logcat", id="app_hang"),
    pytest.param(Faults(corrupt_result=True), 45, "result.json", id="corrupt_result"),
]


@pytest.mark.parametrize("faults, code, says", FAULTS)
def test_fault_exit_codes(tiny_models, make_emulator, key_path, tmp_path, capsys, faults, code, says) -> None:
    installed = APP if faults.app_installed else ()
    emu = make_emulator(faults=faults, installed=installed)
    out = tmp_path / "out"
    got = deploy_cli(tiny_models["fp32"], [emu.spec], out, key_path, "--timeout", "1.5", images=tiny_models["images"])
    err = capsys.readouterr().err
    assert got == code, err
    assert says in err
    report = report_of(out)
    assert report["status"] == "error" and report["errors"][0]["exit_code"] == code
    assert report["devices"][0]["status"] == "error" and report["devices"][0]["error"]["exit_code"] == code
    assert_no_partial_model(emu, tiny_models["fp32"])
    junit = ET.parse(out / "junit.xml").getroot()
    assert int(junit.get("failures")) >= 1


def test_app_crash_is_an_app_problem(tiny_models, make_emulator, key_path, tmp_path, capsys) -> None:
    """The emulated app dies without a result: ``pidof`` finds no process, so the host says
    "crashed" (43) instead of waiting for the timeout (44)."""
    emu = make_emulator(faults=Faults(app_crash=True), installed=APP)
    got = deploy_cli(tiny_models["fp32"], [emu.spec], tmp_path / "out", key_path, "--timeout", "20",
                     images=tiny_models["images"])
    err = capsys.readouterr().err
    assert got == 43 and "crashed" in err, err
    assert_no_partial_model(emu, tiny_models["fp32"])


def test_install_with_apk_when_the_app_cannot_be_installed(tiny_models, make_emulator, key_path, tmp_path, capsys) -> None:
    emu = make_emulator(faults=Faults(app_installed=False))
    apk = tmp_path / "app-debug.apk"
    apk.write_bytes(b"PK\x03\x04 not really an apk")
    assert deploy_cli(tiny_models["fp32"], [emu.spec], tmp_path / "out", key_path, "--apk", str(apk),
                      images=tiny_models["images"]) == 43
    assert list(runs_dir(emu).glob("*")) == [] if runs_dir(emu).exists() else True


def test_one_failing_device_does_not_hide_the_other(tiny_models, make_emulator, key_path, tmp_path) -> None:
    good = make_emulator(installed=APP, name="good")
    bad = make_emulator(faults=Faults(corrupt_result=True), installed=APP, name="bad")
    assert deploy_cli(tiny_models["fp32"], [good.spec, bad.spec], tmp_path / "out", key_path,
                      images=tiny_models["images"]) == 45
    first, second = report_of(tmp_path / "out")["devices"]
    assert first["status"] == "ok" and first["delegates"][0]["checks"]
    assert second["status"] == "error" and second["error"]["exit_code"] == 45


def test_corrupt_model_file_is_refused_before_any_device(tiny_models, tmp_path, key_path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    assert deploy_cli(bad, ["tcp:127.0.0.1:1"], tmp_path / "out", key_path) == 15


def test_unknown_delegate_is_a_usage_error(tiny_models, tmp_path, key_path) -> None:
    with pytest.raises(SystemExit) as exc:
        deploy_cli(tiny_models["fp32"], ["tcp:127.0.0.1:1"], tmp_path / "out", key_path, "--delegates", "tpu")
    assert exc.value.code == 2
    with pytest.raises(UsageProblem):
        deploy.DeployOptions(delegates=("tpu",))


# -- the comparison -------------------------------------------------------------------------


def _perturbing_serve(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    real = apprunner.serve

    def serve(request_file: Path, *, producer_kind: str = "emulated") -> None:
        # serve a copy of the run folder, then publish the changed result atomically: the host
        # polls for result.json and must never see the unchanged one
        import shutil
        import tempfile

        folder = Path(request_file).parent
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "run"
            shutil.copytree(folder, copy)
            real(copy / Path(request_file).name, producer_kind=producer_kind)
            doc = json.loads((copy / protocol.RESULT_NAME).read_text())
        change(doc)
        (folder / protocol.RESULT_TMP_NAME).write_text(json.dumps(doc))
        (folder / protocol.RESULT_TMP_NAME).replace(folder / protocol.RESULT_NAME)

    monkeypatch.setattr(apprunner, "serve", serve)


def _nudge_scores(doc: dict[str, Any]) -> None:
    for out in doc["delegates"][0]["outputs"]:
        for t in out.get("tensors", []):
            value = apprunner.decode_tensor(t)
            # the scores by name (port 2 of the op): by value range, unset slots past the
            # count (arbitrary memory) could hide them
            if t["name"] == "TFLite_Detection_PostProcess:2":
                t["data_b64"] = base64.b64encode((value + np.float32(0.01)).astype("<f4").tobytes()).decode()
        for det in out.get("detections", []):
            det["box"] = [v + 0.2 for v in det["box"]]


def test_compare_fails_with_33_on_a_perturbed_device_result(tiny_models, make_emulator, key_path, tmp_path, monkeypatch, capsys) -> None:
    _perturbing_serve(monkeypatch, _nudge_scores)
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    assert deploy_cli(tiny_models["fp32"], [emu.spec], out, key_path, images=tiny_models["images"]) == 33
    assert "emulated — not on-device evidence" in capsys.readouterr().err
    report = report_of(out)
    assert report["status"] == "fail"
    checks = {c["id"]: c for c in report["devices"][0]["delegates"][0]["checks"]}
    assert checks["device.cpu.tensors.score.max_abs"]["verdict"] == "fail"
    assert checks["device.cpu.tensors.score.max_abs"]["found"] == pytest.approx(0.01, abs=1e-6)
    assert checks["device.cpu.tensors.location.max_abs"]["verdict"] == "pass"
    assert checks["device.cpu.detections.mean_iou"]["verdict"] == "fail"
    junit = ET.parse(out / "junit.xml").getroot()
    failed = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert "device.cpu.tensors.score.max_abs" in failed
    assert "device.cpu.tensors.score.max_abs" in (out / "report.html").read_text()


def test_compare_passes_on_an_exact_result_and_judges_each_number(tiny_models, tmp_path) -> None:
    """compare_run on a result served locally: every tensor difference is exactly 0."""
    import shutil

    from tests.test_device_apprunner import serve

    images = sorted(tiny_models["images"].iterdir())
    inputs = deploy.prepare_inputs(tiny_models["int8"].read_bytes(), images, tmp_path / "inputs")
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(tiny_models["int8"], folder / deploy.MODEL_NAME)
    for item in inputs:
        shutil.copyfile(item.local, folder / item.name)
    request = deploy.build_request("run", "0" * 64, inputs, deploy.DeployOptions(iterations=4))
    request.pop("model_sha256")
    (folder / "request.json").write_text(json.dumps(request))
    result = serve(folder / "request.json")
    run = deploy.DeviceRun("fake-serial", "adb-shell", "run", result, inputs)
    entry = compare.compare_run(run, tiny_models["int8"], options=deploy.DeployOptions(iterations=4))
    cpu = entry["delegates"][0]
    assert entry["status"] == "ok" and entry["variant"] == "int8" and entry["evidence"] == compare.EMULATED_LABEL
    for role, stats in cpu["parity"]["tensors"]["outputs"].items():
        assert stats["max_abs"] == 0.0 and stats["mean_abs"] == 0.0, role
    assert cpu["parity"]["detections"]["recall"] == 1.0
    assert cpu["parity"]["tolerance"]["variant"] == "int8"
    assert all(c["verdict"] == "pass" for c in cpu["checks"])
    # detection slots past the count are unset by the op: whatever they hold is not compared
    junk = json.loads(json.dumps(result))
    for out in junk["delegates"][0]["outputs"]:
        tensors = out.get("tensors", [])
        count = next(int(apprunner.decode_tensor(t)[0]) for t in tensors if t["shape"] == [1])
        assert count < 8
        for t in tensors:
            value = apprunner.decode_tensor(t).copy()
            if value.ndim >= 2 and count < value.shape[1]:
                value[:, count:] = 1e-40
                t["data_b64"] = base64.b64encode(value.astype("<f4").tobytes()).decode()
    entry = compare.compare_run(deploy.DeviceRun("s", "adb-shell", "run", junk, inputs), tiny_models["int8"],
                                options=deploy.DeployOptions(iterations=4))
    assert entry["status"] == "ok"
    # a NaN on the device side is never hidden: it is an infinite difference
    nan_result = json.loads(json.dumps(result))
    for out in nan_result["delegates"][0]["outputs"]:
        for t in out.get("tensors", []):
            value = apprunner.decode_tensor(t).copy()
            if value.ndim == 3:
                value[0, 0, 0] = np.nan
                t["data_b64"] = base64.b64encode(value.astype("<f4").tobytes()).decode()
    entry = compare.compare_run(deploy.DeviceRun("s", "adb-shell", "run", nan_result, inputs), tiny_models["int8"],
                                options=deploy.DeployOptions(iterations=4))
    location = next(c for c in entry["delegates"][0]["checks"] if c["id"] == "device.cpu.tensors.location.max_abs")
    assert location["verdict"] == "fail" and location["found"] == "inf"
    json.dumps(entry, allow_nan=False)


def test_latency_summary() -> None:
    lat = compare.latency({"latency_ms": [5.0, 1.0, 3.0, 2.0, 4.0], "warmup_ms": [9.0]})
    assert lat == {"count": 5, "median_ms": 3.0, "p90_ms": pytest.approx(4.6), "min_ms": 1.0, "max_ms": 5.0,
                   "mean_ms": 3.0, "warmup_mean_ms": 9.0}


# -- deploy logic with a scripted device (no network) -----------------------------------------


class ScriptedDevice(Device):
    """Records commands; the app never answers; ``pidof`` says what ``running`` says."""

    serial = "scripted"
    transport = "test"

    def __init__(self, *, installed: bool = True, running: bool | None = False) -> None:
        self.installed, self.running, self.commands, self.pushed = installed, running, [], []

    def shell(self, command: str, *, timeout_s: float = 60.0) -> ShellResult:
        self.commands.append(command)
        if command.startswith("pm path"):
            return ShellResult(0, f"package:/data/app/{protocol.APP_PACKAGE}/base.apk\n") if self.installed else ShellResult(1, "")
        if command.startswith("pidof"):
            if self.running is None:
                return ShellResult(127, "", "/system/bin/sh: pidof: not found")
            return ShellResult(0, "1234\n") if self.running else ShellResult(1, "")
        if command.startswith("am start"):
            return ShellResult(0, "Starting: Intent { cmp=dev.liteship.demo/.ValidationActivity (has extras) }\n")
        return ShellResult(0, "")

    def push(self, local: Path, remote: str, *, timeout_s: float = 600.0) -> None:
        self.pushed.append(remote)

    def pull(self, remote: str, local: Path, *, timeout_s: float = 600.0) -> None:
        raise AssertionError("no result to pull")

    def exists(self, remote: str) -> bool:
        return False

    def install(self, apk: Path, *, timeout_s: float = 600.0) -> None:
        self.installed = True

    def close(self) -> None:
        pass


def test_a_crashed_app_is_detected_with_pidof_and_the_folder_cleaned(tiny_models, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(deploy, "CRASH_GRACE_S", 0.1)
    dev = ScriptedDevice(running=False)
    started = time.monotonic()
    with pytest.raises(DeviceAppProblem, match="crashed") as exc:
        deploy.deploy(tiny_models["fp32"], dev, images=sorted(tiny_models["images"].iterdir()),
                      options=deploy.DeployOptions(timeout_s=30), work_dir=tmp_path)
    assert time.monotonic() - started < 10
    assert "logcat" in (exc.value.hint or "")
    # request.json is pushed last, all paths quoted, the run folder removed at the end
    assert dev.pushed[0].endswith("/model.tflite") and dev.pushed[-1].endswith("/request.json")
    start = next(c for c in dev.commands if c.startswith("am start"))
    assert f"-n {protocol.VALIDATION_ACTIVITY} --es request {dev.pushed[-1]}" in start
    assert dev.commands[-1].startswith("rm -rf ") and protocol.RUNS_DIR in dev.commands[-1]


def test_a_running_app_without_result_times_out_naming_the_seconds(tiny_models, tmp_path) -> None:
    dev = ScriptedDevice(running=None)
    with pytest.raises(DeviceTimeout, match="after 0.5 s") as exc:
        deploy.deploy(tiny_models["fp32"], dev, images=sorted(tiny_models["images"].iterdir())[:1],
                      options=deploy.DeployOptions(timeout_s=0.5, keep=True), work_dir=tmp_path)
    assert "adb logcat" in (exc.value.hint or "")
    assert not any(c.startswith("rm -rf") for c in dev.commands)  # --keep


def test_missing_app_names_the_apk_and_apk_installs_it(tiny_models, tmp_path) -> None:
    dev = ScriptedDevice(installed=False)
    with pytest.raises(DeviceAppProblem) as exc:
        deploy.ensure_app(dev, None)
    assert "--apk android_app/app/build/outputs/apk/debug/app-debug.apk" in (exc.value.hint or "")
    apk = tmp_path / "app-debug.apk"
    apk.write_bytes(b"apk")
    assert deploy.ensure_app(dev, apk) is True and dev.installed


def test_inputs_are_the_models_own_preprocessing(tiny_models, tmp_path) -> None:
    from liteship.converter.calibration import load_rgb
    from liteship.validation.detect import TFLiteDetector

    images = sorted(tiny_models["images"].iterdir())
    inputs = deploy.prepare_inputs(tiny_models["fp32"].read_bytes(), images, tmp_path)
    assert [i.kind for i in inputs] == ["image", "tensor", "image", "tensor"]
    detector = TFLiteDetector(tiny_models["fp32"], num_threads=1, mean=127.5, std=127.5)
    tensor = inputs[1]
    raw = np.frombuffer(tensor.local.read_bytes(), "<f4").reshape(tensor.shape)
    np.testing.assert_array_equal(raw, detector.preprocess(load_rgb(images[0])))
    request = deploy.build_request("r1", "0" * 64, inputs, deploy.DeployOptions())
    assert request["inputs"][1] == {"id": "tensor-000", "kind": "tensor", "file": "in-000.bin",
                                    "dtype": "float32", "shape": [1, 4, 4, 3]}


@pytest.mark.tf
@pytest.mark.slow
def test_deploy_the_converted_int8_model(run_a: Path, make_emulator, key_path, tmp_path, calib_images) -> None:
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    assert deploy_cli(run_a / "models" / "int8.tflite", [emu.spec], out, key_path, "--max-images", "2",
                      images=calib_images) == 0
    (device,) = report_of(out)["devices"]
    assert device["variant"] == "int8" and device["producer_kind"] == "emulated"
    assert all(c["verdict"] != "fail" for d in device["delegates"] for c in d["checks"])


# -- the other commands ----------------------------------------------------------------------


def test_emulator_command_serves_until_stopped(tiny_models, key_path, tmp_path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "liteship", "emulator", "--port", "0", "--root", str(tmp_path / "phone")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        serial = proc.stdout.readline().strip()  # type: ignore[union-attr]
        host, port = serial.rsplit(":", 1)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.2)
        out = tmp_path / "out"
        assert deploy_cli(tiny_models["fp32"], [f"tcp:{serial}"], out, key_path, images=tiny_models["images"]) == 0
        assert report_of(out)["devices"][0]["producer_kind"] == "emulated"
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()  # type: ignore[union-attr]


def test_devices_lists_a_probed_tcp_device_as_json(make_emulator, key_path, adb_server_env, capsys) -> None:
    emu = make_emulator(installed=APP)
    assert main(["devices", "--json", "--device", emu.spec, "--adb-key", str(key_path)]) == 0
    listed = json.loads(capsys.readouterr().out)["devices"]
    assert {"serial": emu.spec, "state": "device", "transport": "adb-shell"}.items() <= next(
        d for d in listed if d["serial"] == emu.spec).items()


def test_unknown_emulator_fault_is_a_usage_error(tmp_path, capsys) -> None:
    assert main(["emulator", "--port", "0", "--root", str(tmp_path), "--fault", "melt"]) == 2
    assert "unknown --fault" in capsys.readouterr().err


@pytest.mark.tf
@pytest.mark.slow
def test_run_device_stage_adds_the_devices_section(run_a: Path, make_emulator, key_path, tmp_path) -> None:
    """pipeline._device_stage (what `liteship run --device` adds) on the session's converted variants."""
    import shutil

    from liteship import pipeline
    from liteship.progress import Progress
    from liteship.report import Report

    out = tmp_path / "run"
    shutil.copytree(run_a, out)
    emu = make_emulator(installed=APP)
    report = Report(command=["liteship", "run"], out_dir=out)
    report.variants = report_of(out)["variants"]
    req = pipeline.Request(out=out, devices=(emu.spec,), device_key=key_path, device_images=2,
                           device_options=deploy.DeployOptions(iterations=2, warmup=0, threads=1))
    assert pipeline._device_stage(req, report, Progress(quiet=True)) is None
    (device,) = report.devices
    assert device["variant"] == "int8" and device["model"]["path"].endswith("models/int8.tflite")
    assert device["evidence"] == compare.EMULATED_LABEL


def test_run_device_flags_reach_the_pipeline_request() -> None:
    from liteship.cli import request_from_args, build_parser

    args = build_parser().parse_args(["run", "--device", "tcp:127.0.0.1:5555", "--device", "R58M", "--iterations", "3",
                                      "--delegates", "cpu,gpu", "--device-variant", "fp16", "--transport", "adb-shell"])
    req = request_from_args(args)
    assert req.devices == ("tcp:127.0.0.1:5555", "R58M") and req.device_variant == "fp16"
    assert req.device_options.iterations == 3 and req.device_options.delegates == ("cpu", "gpu")
    assert req.device_transport == "adb-shell"
    assert request_from_args(build_parser().parse_args(["run"])).devices == ()


@pytest.mark.device
def test_deploy_on_a_real_device(tiny_models, tmp_path) -> None:
    """Opt-in (``pytest -m device``): the validation app installed on a real phone (or
    LITESHIP_TEST_APK pointing at app-debug.apk) answers with producer kind ``device``."""
    import os

    from tests.test_device_real import _real_serials

    serial = _real_serials()[0]
    apk = os.environ.get("LITESHIP_TEST_APK")
    with deploy_open(serial) as dev:
        if apk is None and dev.shell(f"pm path {protocol.APP_PACKAGE}").exit_code != 0:
            pytest.skip(f"{protocol.APP_PACKAGE} is not installed on {serial} and LITESHIP_TEST_APK is not set")
    out = tmp_path / "out"
    extra = ("--apk", apk) if apk else ()
    code = main(["deploy", str(tiny_models["fp32"]), "--device", serial, "--images", str(tiny_models["images"]),
                 "--out", str(out), "--quiet", "--delegates", "cpu,gpu,nnapi", *extra])
    (device,) = report_of(out)["devices"]
    assert device["producer_kind"] == "device" and device["evidence"] == "on-device"
    assert code in (0, 33), device


def deploy_open(serial: str) -> Device:
    from liteship.device.connect import open_device

    return open_device(serial, timeout_s=20)
