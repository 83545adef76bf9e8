"""The emulated validation app (liteship/device/apprunner.py) on a local run folder.

Fast tier: tiny TF-free SSD-shaped models (tests/fixtures/tiny_ssd.py's image_model: image
-> RESHAPE/SPLIT -> TFLite_Detection_PostProcess) with real object-detector metadata written
by liteship's own metadata writer. The ``tf``/``slow`` test repeats the detections check
on the session's converted models (``run_a``: fp32 and int8 of a tiny OD API SSD).
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from liteship.device import apprunner, protocol
from liteship.validation.detect import TFLiteDetector

LABELS = "circle\nsquare\ntriangle\n"
MEAN, STD = 127.5, 127.5


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """4x4 blocks of black/white channels, stretched: still high-contrast at the model's 4x4."""
    from tests.fixtures.tiny_ssd import IMAGE_MODEL_SIZE as n

    blocks = np.random.default_rng(seed).choice(np.array([0, 255], np.uint8), size=(n, n, 3))
    return np.ascontiguousarray(blocks[np.arange(height) * n // height][:, np.arange(width) * n // width])


def build_tiny_models(folder: Path) -> dict[str, Path]:
    """``fp32.tflite`` (float input) and ``int8.tflite`` (uint8 input), with metadata, and
    ``images/`` with a png and a jpg."""
    from liteship.converter.metadata import write_metadata
    from liteship.types import Normalization
    from tests.fixtures.tiny_ssd import CONVERTER_PORTS, image_model

    folder.mkdir(parents=True, exist_ok=True)
    norm = Normalization(mean=(MEAN,) * 3, std=(STD,) * 3)
    out = {}
    for name, dtype in (("fp32", "float32"), ("int8", "uint8")):
        out[name] = folder / f"{name}.tflite"
        model = image_model(dtype, ports=CONVERTER_PORTS, max_detections=8)  # 6 anchors: slots past the count stay unset
        out[name].write_bytes(write_metadata(model, norm, LABELS))
    images = folder / "images"
    images.mkdir(exist_ok=True)
    Image.fromarray(photo(57, 41, 5)).save(images / "a.png")
    Image.fromarray(photo(30, 20, 11)).save(images / "b.jpg", quality=95)
    out["images"] = images
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("device-models"))


def make_run(folder: Path, model: Path, images: list[Path], *, tensors: bool = True, **overrides: Any) -> Path:
    """A run folder as the host pushes it; returns request.json."""
    folder.mkdir(parents=True)
    shutil.copyfile(model, folder / "model.tflite")
    runner = apprunner.ModelRunner(model.read_bytes())
    inputs: list[dict[str, Any]] = []
    for k, image in enumerate(images):
        shutil.copyfile(image, folder / f"in-{k}{image.suffix}")
        inputs.append({"id": f"image-{k}", "kind": "image", "file": f"in-{k}{image.suffix}"})
        if tensors:
            x = runner.image_tensor(image)
            (folder / f"in-{k}.bin").write_bytes(x.astype(x.dtype.newbyteorder("<")).tobytes())
            inputs.append({"id": f"tensor-{k}", "kind": "tensor", "file": f"in-{k}.bin",
                           "dtype": apprunner.dtype_name(x.dtype), "shape": list(x.shape)})
    request = {"schema": protocol.REQUEST_SCHEMA, "version": 1, "run_id": folder.name, "model": "model.tflite",
               "inputs": inputs, "delegates": ["cpu", "gpu", "nnapi"], "threads": 2, "warmup": 2, "iterations": 4}
    request.update(overrides)
    (folder / "request.json").write_text(json.dumps(request))
    return folder / "request.json"


def serve(request: Path) -> dict[str, Any]:
    apprunner.serve(request)
    folder = request.parent
    assert not (folder / protocol.RESULT_TMP_NAME).exists()
    result = json.loads((folder / protocol.RESULT_NAME).read_text())
    protocol.validate_result(result)
    return result


def pixel_boxes(dets: list[dict[str, Any]], width: int, height: int) -> np.ndarray:
    b = np.asarray([d["box"] for d in dets], np.float32).reshape(-1, 4)
    return np.stack([np.clip(b[:, 1] * width, 0, width), np.clip(b[:, 0] * height, 0, height),
                     np.clip(b[:, 3] * width, 0, width), np.clip(b[:, 2] * height, 0, height)], axis=-1)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_tensor_and_image_inputs_give_a_schema_valid_emulated_result(tiny_models, tmp_path: Path, variant: str) -> None:
    images = sorted(tiny_models["images"].iterdir())
    result = serve(make_run(tmp_path / "run-1", tiny_models[variant], images))
    assert result["status"] == "ok" and result["run_id"] == "run-1"
    assert result["producer"]["kind"] == "emulated"
    assert result["producer"]["runtime"].startswith("ai-edge-litert ")
    assert result["device"] == apprunner.EMULATED_DEVICE
    assert result["model"]["input"]["dtype"] == ("float32" if variant == "fp32" else "uint8")
    assert sorted(result["model"]["output_roles"]) == sorted(["location", "category", "score", "number of detections"])
    by_delegate = {d["delegate"]: d for d in result["delegates"]}
    for name in ("gpu", "nnapi"):
        assert by_delegate[name]["status"] == "unavailable"
        assert by_delegate[name]["error"]["stage"] == "delegate"
        assert "not available on the emulated device" in by_delegate[name]["error"]["message"]
    cpu = by_delegate["cpu"]
    assert cpu["status"] == "ok" and len(cpu["warmup_ms"]) == 2 and len(cpu["latency_ms"]) == 4
    assert [o["input_id"] for o in cpu["outputs"]] == ["image-0", "tensor-0", "image-1", "tensor-1"]
    for out in cpu["outputs"]:
        assert "error" not in out and out["latency_ms"] >= 0 and out["detections"]
        assert len(out["tensors"]) == 4
        for t in out["tensors"]:
            raw = base64.b64decode(t["data_b64"])
            assert len(raw) == int(np.prod(t["shape"])) * np.dtype(apprunner.DTYPES[t["dtype"]]).itemsize
        for det in out["detections"]:
            ymin, xmin, ymax, xmax = det["box"]
            assert 0 <= det["class_index"] < 3 and det["label"] == LABELS.split()[det["class_index"]]
            assert ymin <= ymax and xmin <= xmax
    # the tensor made from an image with the model's preprocessing answers like the image itself
    outs = {o["input_id"]: o for o in cpu["outputs"]}
    for k in range(2):
        assert outs[f"image-{k}"]["detections"] == outs[f"tensor-{k}"]["detections"]
        assert [t["data_b64"] for t in outs[f"image-{k}"]["tensors"]] == [t["data_b64"] for t in outs[f"tensor-{k}"]["tensors"]]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_image_detections_equal_detect_py(tiny_models, tmp_path: Path, variant: str) -> None:
    from liteship.converter.calibration import load_rgb

    images = sorted(tiny_models["images"].iterdir())
    result = serve(make_run(tmp_path / "run-2", tiny_models[variant], images, tensors=False))
    cpu = next(d for d in result["delegates"] if d["delegate"] == "cpu")
    detector = TFLiteDetector(tiny_models[variant], num_threads=1, mean=MEAN, std=STD)
    for image, out in zip(images, cpu["outputs"]):
        rgb = load_rgb(image)
        height, width = rgb.shape[:2]
        expected = detector.detect(rgb)
        assert len(expected) == len(out["detections"]) > 0
        np.testing.assert_allclose(pixel_boxes(out["detections"], width, height), expected.boxes, rtol=1e-5, atol=1e-4)
        assert [d["class_index"] for d in out["detections"]] == expected.classes.tolist()
        np.testing.assert_allclose([d["score"] for d in out["detections"]], expected.scores, rtol=1e-6)


def test_score_threshold_max_results_and_no_tensors(tiny_models, tmp_path: Path) -> None:
    images = sorted(tiny_models["images"].iterdir())[:1]
    full = serve(make_run(tmp_path / "all", tiny_models["fp32"], images, tensors=False))
    dets = full["delegates"][0]["outputs"][0]["detections"]
    assert len(dets) >= 3
    threshold = (dets[1]["score"] + dets[2]["score"]) / 2
    cut = serve(make_run(tmp_path / "cut", tiny_models["fp32"], images, tensors=False, score_threshold=threshold,
                         return_tensors=False, delegates=["cpu"]))
    out = cut["delegates"][0]["outputs"][0]
    assert "tensors" not in out and out["detections"] == dets[:2]
    one = serve(make_run(tmp_path / "one", tiny_models["fp32"], images, tensors=False, max_results=1, delegates=["cpu"]))
    assert one["delegates"][0]["outputs"][0]["detections"] == dets[:1]


def _error_result(request: Path) -> dict[str, Any]:
    result = serve(request)
    assert result["status"] == "error" and result["delegates"] == []
    assert result["producer"]["kind"] == "emulated"
    return result


def test_missing_model_is_an_error_result(tiny_models, tmp_path: Path) -> None:
    request = make_run(tmp_path / "r", tiny_models["fp32"], sorted(tiny_models["images"].iterdir())[:1])
    (request.parent / "model.tflite").unlink()
    err = _error_result(request)["error"]
    assert err["stage"] == "load" and "model.tflite" in err["message"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "sha256"])
def test_corrupt_model_is_an_error_result(tiny_models, tmp_path: Path, damage: str) -> None:
    data = tiny_models["fp32"].read_bytes()
    request = make_run(tmp_path / "r", tiny_models["fp32"], sorted(tiny_models["images"].iterdir())[:1],
                       model_sha256="0" * 64 if damage == "sha256" else __import__("hashlib").sha256(data).hexdigest())
    if damage == "truncated":
        (request.parent / "model.tflite").write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        (request.parent / "model.tflite").write_bytes(b"PK\x03\x04 not a model at all" * 10)
    err = _error_result(request)["error"]
    assert err["stage"] == "load"
    if damage == "sha256":
        assert "incomplete push" in err["message"]


def test_unloadable_model_without_checksum_is_an_error_result(tiny_models, tmp_path: Path) -> None:
    request = make_run(tmp_path / "r", tiny_models["fp32"], sorted(tiny_models["images"].iterdir())[:1])
    data = tiny_models["fp32"].read_bytes()
    (request.parent / "model.tflite").write_bytes(data[:200])
    err = _error_result(request)["error"]
    assert err["stage"] == "load" and err["type"]


@pytest.mark.parametrize("text", ["{not json", json.dumps({"schema": "liteship.device.request", "version": 1}),
                                  json.dumps({"schema": "liteship.device.request", "version": 1, "run_id": "x",
                                              "model": "../../etc/passwd", "inputs": [], "delegates": ["cpu"],
                                              "threads": 1, "warmup": 0, "iterations": 1})])
def test_bad_request_is_an_error_result(tiny_models, tmp_path: Path, text: str) -> None:
    request = make_run(tmp_path / "r", tiny_models["fp32"], [])
    request.write_text(text)
    err = _error_result(request)["error"]
    assert err["stage"] == "request"


def test_missing_request_file_still_writes_a_result(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    err = _error_result(tmp_path / "r" / "request.json")["error"]
    assert err["stage"] == "request"


def test_bad_inputs_fail_only_their_own_output(tiny_models, tmp_path: Path) -> None:
    images = sorted(tiny_models["images"].iterdir())
    request = make_run(tmp_path / "r", tiny_models["fp32"], images)
    doc = json.loads(request.read_text())
    (request.parent / "in-1.bin").write_bytes(b"\0" * 7)  # wrong size for float32 [1,4,4,3]
    (request.parent / "in-0.png").write_bytes(b"not an image")
    doc["inputs"].append({"id": "wrong-dtype", "kind": "tensor", "file": "in-0.bin", "dtype": "int32", "shape": [1, 4, 4, 3]})
    doc["inputs"].append({"id": "missing", "kind": "image", "file": "nope.jpg"})
    request.write_text(json.dumps(doc))
    result = serve(request)
    cpu = next(d for d in result["delegates"] if d["delegate"] == "cpu")
    outs = {o["input_id"]: o for o in cpu["outputs"]}
    assert result["status"] == "ok" and cpu["status"] == "ok"
    for bad in ("image-0", "tensor-1", "wrong-dtype", "missing"):
        assert outs[bad]["error"]["stage"] == "preprocess", bad
    assert "expected" in outs["tensor-1"]["error"]["message"]
    assert outs["tensor-0"]["detections"] and outs["image-1"]["detections"]
    assert cpu["latency_ms"] == []  # the first input failed: nothing timed, and the result says so


def test_model_facts_read_without_tensorflow_match_the_metadata_reader(tiny_models) -> None:
    from liteship.converter.metadata import read_metadata

    data = tiny_models["int8"].read_bytes()
    facts = apprunner.model_facts(data)
    md = read_metadata(data)
    assert facts.output_names == md.output_names
    assert facts.mean == md.norm_mean and facts.std == md.norm_std
    assert facts.labels == tuple(LABELS.split())


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_converted_models_detections_equal_detect_py(run_a: Path, tmp_path: Path, calib_images: Path, variant: str) -> None:
    """The session's real conversions (tiny OD API SSD, metadata by the pipeline)."""
    from liteship.converter.calibration import find_images, load_rgb
    from liteship.validation.app_run import metadata_normalization

    model = run_a / "models" / f"{variant}.tflite"
    images = find_images(calib_images)[0][:3]
    result = serve(make_run(tmp_path / "r", model, images))
    cpu = next(d for d in result["delegates"] if d["delegate"] == "cpu")
    norm = metadata_normalization(model.read_bytes())
    mean, std = norm.mean, norm.std
    detector = TFLiteDetector(model, num_threads=1, mean=mean, std=std)
    outs = {o["input_id"]: o for o in cpu["outputs"]}
    for k, image in enumerate(images):
        rgb = load_rgb(image)
        expected = detector.detect(rgb)
        got = outs[f"image-{k}"]["detections"]
        assert len(got) == len(expected)
        np.testing.assert_allclose(pixel_boxes(got, rgb.shape[1], rgb.shape[0]), expected.boxes, rtol=1e-5, atol=1e-3)
        assert [d["class_index"] for d in got] == expected.classes.tolist()
        assert outs[f"tensor-{k}"]["detections"] == got
