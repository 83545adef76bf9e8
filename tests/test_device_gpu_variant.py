"""`liteship deploy` of the gpu variant (raw ``location`` + ``score`` heads, DETECTOR_METADATA)
against the emulated device, and the pieces it is made of.

The model is tests/fixtures/gpu_form.py's: the gpu variant's form in miniature, built without
TensorFlow's converter (its metadata is the real writer's), once per session. The runtimes are
real: MediaPipe's ObjectDetector, ai-edge-litert's CompiledModel and Interpreter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteship.device import apprunner, compare, desktop, protocol
from liteship.device.emulator import Faults
from tests.fixtures.adb import key_path, make_emulator  # noqa: F401
from tests.test_device_apprunner import photo, serve
from tests.test_device_deploy import APP, deploy_cli, report_of, runs_dir

ENGINES = ("--engines", "mediapipe:cpu+gpu,compiled:cpu+gpu", "--allow-skip", "device.*.gpu.accelerator")


@pytest.fixture(scope="session")
def gpu_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.fixtures.gpu_form import gpu_form_model

    root = tmp_path_factory.mktemp("gpu-form")
    model = root / "models" / "gpu.tflite"
    model.parent.mkdir()
    model.write_bytes(gpu_form_model())
    images = root / "images"
    images.mkdir()
    for k, (w, h) in enumerate(((57, 41), (30, 20), (64, 48))):
        Image.fromarray(photo(w, h, 5 + k)).save(images / f"p{k}.png")
    Image.fromarray(photo(40, 40, 17)).save(images / "p3.jpg", quality=95)
    return {"model": model, "images": images}


def test_the_fixture_has_the_gpu_variants_form(gpu_model: dict[str, Path]) -> None:
    from liteship.converter import gpu_variant
    from liteship.tflite_inspect import inspect_model

    data = gpu_model["model"].read_bytes()
    info = inspect_model(data)
    assert gpu_variant.is_gpu_form(data) and not info.postprocess
    assert gpu_variant.output_names(info) == ("location", "score")
    assert desktop.raw_form(data).num_boxes == 16


def _desktop_heads(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def test_emulated_app_reads_the_heads_by_name_and_decodes_them_with_the_detector_metadata(
        gpu_model: dict[str, Path], tmp_path: Path) -> None:
    """The app's decoder (its own positions by metadata name, request threshold and max results)
    gives what liteship's decoder gives on the same heads; the interpreter engine here."""
    from liteship.validation.runtimes.raw_ssd import detections

    data = gpu_model["model"].read_bytes()
    app = apprunner.ModelRunner(data)
    assert app.roles == {"location": 0, "score": 1} and app.roles_problem is None
    assert app.output_roles == ["location", "score"]
    image = min(gpu_model["images"].iterdir())
    x = app.image_tensor(image)
    assert x.dtype == np.float32 and list(x.shape) == [1, 16, 16, 3]
    app.invoke(x)
    found = app.detections(score_threshold=0.3, max_results=5)
    heads = _desktop_heads(data, x)
    boxes, classes, scores = detections(heads["location"], heads["score"], desktop.raw_form(data))
    keep = scores >= 0.3
    want = list(zip(boxes[keep][:5].tolist(), classes[keep][:5].tolist(), scores[keep][:5].tolist()))
    assert 0 < len(found) == len(want) <= 5
    for d, (box, c, s) in zip(found, want):
        assert d["class_index"] == c and d["label"] == ("circle", "square", "triangle")[c]
        assert d["score"] == pytest.approx(s, abs=1e-6) and np.allclose(d["box"], box, atol=1e-6)
    # a request for the engines form through the emulated app: every engine answers, schema-valid
    folder = tmp_path / "run-1"
    folder.mkdir()
    shutil.copyfile(gpu_model["model"], folder / "model.tflite")
    shutil.copyfile(image, folder / "in.png")
    (folder / "in.bin").write_bytes(x.astype("<f4").tobytes())
    request = {"schema": protocol.REQUEST_SCHEMA, "version": 1, "run_id": "run-1", "model": "model.tflite",
               "inputs": [{"id": "img", "kind": "image", "file": "in.png"},
                          {"id": "t", "kind": "tensor", "file": "in.bin", "dtype": "float32", "shape": [1, 16, 16, 3]}],
               "engines": [{"engine": "compiled", "accelerators": ["cpu"]}, {"engine": "mediapipe", "accelerators": ["cpu"]}],
               "threads": 1, "warmup": 0, "iterations": 1, "score_threshold": 0.3, "max_results": 5}
    (folder / "request.json").write_text(json.dumps(request))
    result = serve(folder / "request.json")
    assert result["status"] == "ok" and result["producer"]["kind"] == "emulated"
    assert result["model"]["output_roles"] == ["location", "score"]
    compiled_run, mediapipe_run = result["delegates"]
    assert compiled_run["status"] == mediapipe_run["status"] == "ok", result
    by_id = {o["input_id"]: o for o in compiled_run["outputs"]}
    names = [t["name"] for t in by_id["t"]["tensors"]]
    assert names == ["location", "score"]
    assert np.array_equal(protocol.decode_tensor(by_id["t"]["tensors"][1]), heads["score"])
    assert [d["class_index"] for d in by_id["t"]["detections"]] == [c for _, c, _ in want]
    mp = {o["input_id"]: o for o in mediapipe_run["outputs"]}
    assert "not_applicable" in mp["t"] and 0 < len(mp["img"]["detections"]) <= 5


def test_emulated_deploy_of_the_gpu_variant_compares_raw_heads_and_decoded_detections(
        gpu_model: dict[str, Path], make_emulator, key_path, tmp_path: Path) -> None:  # noqa: F811
    emu = make_emulator(installed=APP)
    out = tmp_path / "out"
    code = deploy_cli(gpu_model["model"], [emu.spec], out, key_path, *ENGINES, images=gpu_model["images"])
    report = report_of(out)
    assert code == 0, json.dumps(report["devices"], indent=1)[:3000]
    (device,) = report["devices"]
    assert device["producer_kind"] == "emulated" and device["evidence"] == compare.EMULATED_LABEL
    assert device["variant"] == "gpu"
    runs = {(d["engine"], d["delegate"]): d for d in device["delegates"]}
    assert set(runs) == {("mediapipe", "cpu"), ("mediapipe", "gpu"), ("compiled", "cpu"), ("compiled", "gpu")}
    for (engine, accel), run in runs.items():
        assert run["status"] == "ok", run
        det = run["parity"]["detections"]
        assert det["images"] == 4 and det["desktop_detections"] >= 8, det  # something to compare
        assert det["recall"] == det["precision"] == 1.0 and det["mean_iou"] > 0.999, det
        if accel == "gpu":  # the emulated device has no GPU: the fallback is reported, the check skipped
            assert run["accelerator_used"] == "cpu" and run["fallback_reason"]
            assert {c["id"]: c["verdict"] for c in run["checks"]}[f"device.{engine}.gpu.accelerator"] == "skip"
        assert all(c["verdict"] in ("pass", "n/a") or c["id"].endswith(".accelerator") for c in run["checks"]), run
        assert all(compare.EMULATED_LABEL in c["message"] for c in run["checks"])
    tensors = runs["compiled", "cpu"]["parity"]["tensors"]
    assert tensors["inputs"] == 4 and set(tensors["outputs"]) == {"location", "score"}
    assert tensors["outputs"]["location"]["shape"] == [1, 16, 4] and tensors["outputs"]["score"]["shape"] == [1, 16, 3]
    assert tensors["outputs"]["location"]["max_abs"] <= 1e-6 and tensors["outputs"]["score"]["max_abs"] <= 1e-6
    ids = {c["id"] for c in runs["compiled", "cpu"]["checks"]}
    assert {"device.compiled.cpu.tensors.location.max_abs", "device.compiled.cpu.tensors.score.max_abs",
            "device.compiled.cpu.detections.recall"} <= ids
    assert runs["mediapipe", "cpu"]["parity"]["tensors"]["not_applicable"] == 4
    assert list(runs_dir(emu).iterdir()) == []


def test_a_perturbed_device_result_of_the_gpu_variant_fails_with_33(
        gpu_model: dict[str, Path], make_emulator, key_path, tmp_path: Path) -> None:  # noqa: F811
    emu = make_emulator(faults=Faults(perturb_result=True), installed=APP)
    out = tmp_path / "out"
    model = tmp_path / "detector.tflite"  # not called gpu.tflite: the gpu tolerances come from its form
    shutil.copyfile(gpu_model["model"], model)
    code = deploy_cli(model, [emu.spec], out, key_path, "--engines", "compiled,mediapipe", images=gpu_model["images"])
    assert code == 33
    report = report_of(out)
    (device,) = report["devices"]
    assert device["status"] == "fail" and device["variant"] == "gpu"
    failed = {c["id"] for d in device["delegates"] for c in d["checks"] if c["verdict"] == "fail"}
    # the app's boxes moved by 0.2: detections fail in both engines; its score tensor moved by 0.01
    assert {"device.compiled.cpu.detections.recall", "device.mediapipe.cpu.detections.recall"} <= failed
    compiled_run = next(d for d in device["delegates"] if d["engine"] == "compiled")
    assert compiled_run["parity"]["tensors"]["outputs"]["score"]["max_abs"] == pytest.approx(0.01, abs=1e-6)
    assert "device.compiled.cpu.tensors.score.mean_abs" in failed
    assert compiled_run["parity"]["tensors"]["outputs"]["location"]["max_abs"] == 0.0


@pytest.mark.parametrize("engines", [[], ["--engines", "interpreter"], ["--engines", "compiled,interpreter:cpu"]])
def test_deploy_of_the_gpu_variant_with_an_engine_that_cannot_run_it_is_refused_naming_the_ones_that_can(
        gpu_model: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], engines: list[str]) -> None:
    """Before any device is contacted (port 9: nothing listens)."""
    from liteship.cli import main

    code = main(["deploy", str(gpu_model["model"]), "--device", "tcp:127.0.0.1:9", "--out", str(tmp_path / "d"),
                 *engines])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is the gpu variant" in err and "the engine interpreter" in err
    assert "the engines that can are compiled, mediapipe" in err and "--engines mediapipe:gpu,compiled:cpu+gpu" in err


def test_run_device_stage_of_the_gpu_variant_refuses_the_interpreter_engine(tmp_path: Path) -> None:
    from liteship import pipeline
    from liteship.device.deploy import DeployOptions
    from liteship.errors import UsageProblem
    from liteship.report import Report

    report = Report(command=[], out_dir=tmp_path)
    report.variants = [{"name": "fp32", "path": "models/fp32.tflite"}, {"name": "gpu", "path": "models/gpu.tflite"}]
    req = pipeline.Request(out=tmp_path, devices=("tcp:127.0.0.1:9",), device_variant="gpu",
                           device_options=DeployOptions(engines=(("interpreter", ("cpu",)),)))
    error = pipeline._device_stage(req, report, None)  # type: ignore[arg-type]
    assert isinstance(error, UsageProblem) and "mediapipe:gpu,compiled:cpu+gpu" in error.message
    assert report.devices in (None, [])


def test_run_device_stage_deploys_the_gpu_variant_with_its_engines_by_default(
        gpu_model: dict[str, Path], make_emulator, key_path, tmp_path: Path) -> None:  # noqa: F811
    """`run --device SPEC --device-variant gpu` without --engines: mediapipe:gpu and compiled:cpu+gpu
    (the variant's DEPLOY_ENGINES), not the interpreter."""
    from liteship import pipeline
    from liteship.progress import Progress
    from liteship.report import Report
    from liteship.validation.gates import Gates

    emu = make_emulator(installed=APP)
    (tmp_path / "models").mkdir()
    shutil.copyfile(gpu_model["model"], tmp_path / "models" / "gpu.tflite")
    report = Report(command=[], out_dir=tmp_path)
    report.variants = [{"name": "fp32", "path": "models/fp32.tflite"}, {"name": "gpu", "path": "models/gpu.tflite"}]
    req = pipeline.Request(out=tmp_path, devices=(emu.spec,), device_variant="gpu", images=gpu_model["images"],
                           device_key=key_path, device_images=2,
                           gates=Gates(allow_skip=("device.*.gpu.accelerator",)))
    error = pipeline._device_stage(req, report, Progress(quiet=True))
    assert error is None, error
    (device,) = report.devices
    assert device["variant"] == "gpu" and device["status"] == "ok" and device["producer_kind"] == "emulated"
    assert [(d["engine"], d["delegate"]) for d in device["delegates"]] == [
        ("mediapipe", "gpu"), ("compiled", "cpu"), ("compiled", "gpu")]
