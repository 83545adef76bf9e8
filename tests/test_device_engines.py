"""Engines in the validation protocol: interpreter, compiled (LiteRT CompiledModel), mediapipe.

The emulated app runs each engine with the desktop runtime (CompiledModel and MediaPipe in
child processes); ``liteship deploy --engines`` compares each with the desktop run of the
same model through the same engine (liteship/device/desktop.py). Models: the TF-free tiny
SSDs of test_device_apprunner.py, one of them with its outputs stored as shape [] (what the
TFLite converter writes for TFLite_Detection_PostProcess today).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.cli import main
from liteship.device import deploy, protocol
from liteship.device.emulator import Faults
from liteship.errors import UsageProblem
from tests.fixtures.adb import key_path, make_emulator  # noqa: F401
from tests.test_device_apprunner import LABELS, make_run, serve, tiny_models  # noqa: F401

APP = (protocol.APP_PACKAGE,)
ALL_ENGINES = [{"engine": "interpreter", "accelerators": ["cpu", "nnapi"]},
               {"engine": "compiled", "accelerators": ["cpu", "gpu"]},
               {"engine": "mediapipe", "accelerators": ["cpu"]}]
RUNTIME_WORDS = "Custom allocation is too small for tensor idx"


def engines_request(folder: Path, model: Path, images: list[Path], engines: list[dict[str, Any]]) -> Path:
    request = make_run(folder, model, images)
    doc = json.loads(request.read_text())
    doc.pop("delegates")
    doc["engines"] = engines
    request.write_text(json.dumps(doc))
    return request


def runs_by(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["engine"], d["delegate"]): d for d in result["delegates"]}


def valid_rows(out: dict[str, Any]) -> dict[int, np.ndarray]:
    """Output tensors by index, per-detection outputs cut to the count (slots past it are unset)."""
    tensors = {t["index"]: protocol.decode_tensor(t) for t in out["tensors"]}
    count = int(next(v for v in tensors.values() if v.shape == (1,))[0])
    return {i: (v[:, :count] if v.ndim >= 2 else v) for i, v in tensors.items()}


def test_emulated_app_runs_every_engine_and_reports_the_accelerator_used(tiny_models, tmp_path: Path) -> None:
    images = sorted(tiny_models["images"].iterdir())
    result = serve(engines_request(tmp_path / "run", tiny_models["int8"], images, ALL_ENGINES))
    assert result["status"] == "ok"
    runs = runs_by(result)
    assert list(runs) == [("interpreter", "cpu"), ("interpreter", "nnapi"), ("compiled", "cpu"), ("compiled", "gpu"),
                          ("mediapipe", "cpu")]
    interpreter, compiled = runs["interpreter", "cpu"], runs["compiled", "cpu"]
    assert interpreter["accelerator_used"] == compiled["accelerator_used"] == "cpu"
    assert "CompiledModel" in compiled["runtime"] and "Interpreter" in interpreter["runtime"]
    assert len(compiled["warmup_ms"]) == 2 and len(compiled["latency_ms"]) == 4
    # the same runtime on the same bytes: CompiledModel answers exactly like the Interpreter
    for a, b in zip(interpreter["outputs"], compiled["outputs"]):
        assert a["input_id"] == b["input_id"] and "error" not in b, b
        ours, theirs = valid_rows(a), valid_rows(b)
        assert ours.keys() == theirs.keys()
        for index in ours:
            np.testing.assert_array_equal(ours[index], theirs[index])
        assert a["detections"] == b["detections"]
    # a GPU the machine lacks is a reported fallback, never a silent one
    gpu = runs["compiled", "gpu"]
    assert gpu["status"] == "ok"
    if gpu["accelerator_used"] != "gpu":
        assert gpu["accelerator_used"] == "cpu" and gpu["fallback_reason"]
    nnapi = runs["interpreter", "nnapi"]
    assert nnapi["status"] == "unavailable" and "deprecated since Android 15" in nnapi["warnings"][0]
    mediapipe = runs["mediapipe", "cpu"]
    assert mediapipe["status"] == "ok" and "ObjectDetector" in mediapipe["runtime"]
    for out in mediapipe["outputs"]:
        if out["input_id"].startswith("tensor"):
            assert "takes images" in out["not_applicable"] and "detections" not in out
        else:
            assert out["detections"] and "tensors" not in out
            for det in out["detections"]:
                assert det["label"] == LABELS.split()[det["class_index"]]
                ymin, xmin, ymax, xmax = det["box"]  # normalized by the image size (MediaPipe does not clip)
                assert 0 <= ymin < ymax < 1.5 and 0 <= xmin < xmax < 1.5


def test_a_v1_request_gets_a_v1_result(tiny_models, tmp_path: Path) -> None:
    """Without engines, the result has none of the new fields (hosts older than engines read it)."""
    result = serve(make_run(tmp_path / "run", tiny_models["fp32"], sorted(tiny_models["images"].iterdir())[:1]))
    for run in result["delegates"]:
        assert not {"engine", "accelerator_used", "runtime", "warnings"} & set(run)


def test_compiled_engine_fails_with_the_runtimes_words_without_static_shapes(tiny_models, tmp_path: Path) -> None:
    images = sorted(tiny_models["images"].iterdir())[:1]
    result = serve(engines_request(tmp_path / "run", tiny_models["no_static_shapes"], images,
                                   [{"engine": "interpreter", "accelerators": ["cpu"]},
                                    {"engine": "compiled", "accelerators": ["cpu"]}]))
    runs = runs_by(result)
    assert runs["interpreter", "cpu"]["status"] == "ok"  # the Interpreter sizes outputs at run time
    compiled = runs["compiled", "cpu"]
    assert compiled["status"] == "error" and compiled["error"]["stage"] == "run"
    assert RUNTIME_WORDS in compiled["error"]["message"], compiled["error"]


def test_request_engines_are_checked(tiny_models, tmp_path: Path) -> None:
    inputs = deploy.prepare_inputs(tiny_models["fp32"].read_bytes(), [], tmp_path)
    options = deploy.DeployOptions(engines=(("compiled", ("cpu", "gpu")), ("mediapipe", ("cpu",))))
    request = deploy.build_request("r1", "0" * 64, inputs, options)
    assert "delegates" not in request and [e["engine"] for e in request["engines"]] == ["compiled", "mediapipe"]
    assert "engines" not in deploy.build_request("r1", "0" * 64, inputs, deploy.DeployOptions())
    both = {**request, "delegates": ["cpu"]}
    assert protocol.request_errors(both), "delegates and engines together are ambiguous"
    twice = {**request, "engines": [{"engine": "compiled", "accelerators": ["cpu"]}] * 2}
    assert "more than once" in protocol.request_errors(twice)[0]
    no_nnapi = {**request, "engines": [{"engine": "mediapipe", "accelerators": ["nnapi"]}]}
    assert protocol.request_errors(no_nnapi)
    with pytest.raises(UsageProblem, match="runs on cpu, gpu"):
        deploy.DeployOptions(engines=(("compiled", ("nnapi",)),))
    assert deploy.DeployOptions(delegates=("cpu", "nnapi")).warnings  # still selectable, with the warning
    assert protocol.ENGINE_ACCELERATORS["compiled"] == tuple(
        protocol.schema()["$defs"]["engine_run"]["allOf"][0]["then"]["properties"]["accelerators"]["items"]["enum"])


@pytest.mark.parametrize("argv, says", [(["--engines", "tpu"], "unknown engine"),
                                        (["--engines", "compiled:nnapi"], "runs on cpu/gpu"),
                                        (["--engines", "compiled,compiled"], "listed twice")])
def test_bad_engines_are_a_usage_error(tiny_models, tmp_path, capsys, argv, says) -> None:
    with pytest.raises(SystemExit) as exit_:  # argparse's own usage error
        main(["deploy", str(tiny_models["fp32"]), "--device", "tcp:127.0.0.1:1", "--out", str(tmp_path), *argv])
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def deploy_engines(model: Path, emu: Any, out: Path, key: Path, engines: str, images: Path) -> int:
    return main(["deploy", str(model), "--device", emu.spec, "--out", str(out), "--adb-key", str(key),
                 "--engines", engines, "--images", str(images), "--iterations", "3", "--warmup", "1",
                 "--threads", "1", "--quiet"])


def test_deploy_engines_gives_one_row_per_engine(tiny_models, make_emulator, key_path, tmp_path) -> None:
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    code = deploy_engines(tiny_models["fp32"], emu, out, key_path, "interpreter,compiled,mediapipe",
                          tiny_models["images"])
    report = json.loads((out / "report.json").read_text())
    assert code == 0, json.dumps(report["devices"], indent=1)[:3000]
    (device,) = report["devices"]
    assert device["evidence"] == "emulated — not on-device evidence"
    rows = device["delegates"]
    assert [(r["engine"], r["delegate"], r["accelerator_used"]) for r in rows] == [
        ("interpreter", "cpu", "cpu"), ("compiled", "cpu", "cpu"), ("mediapipe", "cpu", "cpu")]
    assert set(device["desktop"]) == {"interpreter", "compiled", "mediapipe"}
    assert all(d["error"] is None for d in device["desktop"].values())
    ids = {c["id"]: c for r in rows for c in r["checks"]}
    assert ids["device.cpu.tensors.score.max_abs"]["found"] == 0.0
    assert ids["device.compiled.cpu.tensors.score.max_abs"]["found"] == 0.0
    assert ids["device.compiled.cpu.detections.recall"]["verdict"] == "pass"
    assert ids["device.mediapipe.cpu.tensors"]["verdict"] == "n/a"
    assert ids["device.mediapipe.cpu.detections.recall"]["found"] == 1.0
    table = deploy.summary_table(report["devices"]).splitlines()
    assert [line.split()[3] for line in table[1:4]] == ["interpreter", "compiled", "mediapipe"]
    import xml.etree.ElementTree as ET

    suites = {s.get("name") for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")}
    base = f"liteship.device.{device['serial']}.emulated"
    assert {f"{base}.cpu", f"{base}.compiled.cpu", f"{base}.mediapipe.cpu"} <= suites
    page = (out / "report.html").read_text()
    assert "compiled cpu" in page and "mediapipe cpu" in page


def test_deploy_catches_a_perturbed_app_on_every_engine(tiny_models, make_emulator, key_path, tmp_path) -> None:
    emu = make_emulator(installed=APP, faults=Faults(perturb_result=True))
    out = tmp_path / "out"
    assert deploy_engines(tiny_models["fp32"], emu, out, key_path, "compiled,mediapipe", tiny_models["images"]) == 33
    ids = {c["id"]: c for r in json.loads((out / "report.json").read_text())["devices"][0]["delegates"]
           for c in r["checks"]}
    assert ids["device.compiled.cpu.tensors.score.max_abs"]["verdict"] == "fail"
    assert ids["device.compiled.cpu.tensors.location.max_abs"]["verdict"] == "pass"
    assert ids["device.mediapipe.cpu.detections.mean_iou"]["verdict"] == "fail"


def test_deploy_fails_the_compiled_engine_without_static_shapes(tiny_models, make_emulator, key_path, tmp_path) -> None:
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    code = deploy_engines(tiny_models["no_static_shapes"], emu, out, key_path, "interpreter,compiled",
                          tiny_models["images"])
    assert code == 33
    (device,) = json.loads((out / "report.json").read_text())["devices"]
    interpreter, compiled = device["delegates"]
    assert interpreter["status"] == "ok" and all(c["verdict"] in ("pass", "n/a") for c in interpreter["checks"])
    status = next(c for c in compiled["checks"] if c["id"] == "device.compiled.cpu.status")
    assert status["verdict"] == "fail" and RUNTIME_WORDS in status["message"]
    assert RUNTIME_WORDS in device["desktop"]["compiled"]["error"]  # the desktop CompiledModel fails alike


@pytest.mark.tf
@pytest.mark.slow
def test_deploy_every_engine_on_the_converted_int8_model(run_a: Path, make_emulator, key_path, tmp_path,
                                                         calib_images: Path) -> None:
    """liteship's own conversion (static output shapes stored) runs under CompiledModel like the
    Interpreter, and under MediaPipe's ObjectDetector."""
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    code = deploy_engines(run_a / "models" / "int8.tflite", emu, out, key_path, "interpreter,compiled,mediapipe",
                          calib_images)
    device = json.loads((out / "report.json").read_text())["devices"][0]
    assert code == 0, [c for r in device["delegates"] for c in r["checks"] if c["verdict"] not in ("pass", "n/a")]
    assert [r["engine"] for r in device["delegates"]] == ["interpreter", "compiled", "mediapipe"]
    compiled = next(r for r in device["delegates"] if r["engine"] == "compiled")
    assert compiled["status"] == "ok" and compiled["parity"]["tensors"]["inputs"] > 0
    for role, stats in compiled["parity"]["tensors"]["outputs"].items():
        assert stats["max_abs"] == 0.0, role  # the same runtime on the same bytes


def test_runtime_words_are_the_runtimes_lines_without_log_noise() -> None:
    from liteship.device.appengines import PHASE, one_line, runtime_words

    stderr = "\n".join([
        f"{PHASE} create-gpu",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
        "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: No adapters found",
        "E0000 00:00:1796141445.662088    8046 delegate_webgpu.cc:736] Failed to get or create delegate WebGPU environment",
        f"{PHASE} run image-0",
        "ERROR: Custom allocation is too small for tensor idx: 3",
    ])
    assert runtime_words(stderr, "create-gpu") == [
        "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: No adapters found",
        "delegate_webgpu.cc:736] Failed to get or create delegate WebGPU environment"]
    assert runtime_words(stderr, "run image-0") == ["ERROR: Custom allocation is too small for tensor idx: 3"]
    assert one_line("ERROR: [a.cc:1]\n└ ERROR: too small\n") == "ERROR: [a.cc:1] / ERROR: too small"
