"""The output-folder contract and each input kind, on small models built in the session."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from liteship.types import DEFAULT_VARIANTS, POSTPROCESS_PORT_ORDER, Variant
from tests.conftest import parity_verdicts_pass, read_report, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

VARIANTS = [v.value for v in DEFAULT_VARIANTS]
PORT_ROLES = [r.value for r in POSTPROCESS_PORT_ORDER]


def _interp(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def _run(path: Path, seed: int = 0) -> list[np.ndarray]:
    it = _interp(path)
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(seed)
    if inp["dtype"] == np.uint8:
        x = rng.integers(0, 256, inp["shape"], dtype=np.uint8)
    else:
        x = (rng.integers(0, 256, inp["shape"]).astype(np.float32) - 127.5) / 127.5
    it.set_tensor(inp["index"], x)
    it.invoke()
    return [it.get_tensor(o["index"]) for o in it.get_output_details()]


def test_output_folder_has_the_four_variants_labelmap_and_report(run_a: Path) -> None:
    for v in VARIANTS:
        assert (run_a / "models" / f"{v}.tflite").is_file()
    assert (run_a / "labelmap.txt").read_text() == "circle\nsquare\ntriangle\n"
    report = read_report(run_a)
    assert report["schema"] == "liteship.report" and report["schema_version"] == 1
    assert report["status"] == "ok"
    assert [v["name"] for v in report["variants"]] == VARIANTS
    assert not list(run_a.rglob("*.partial")), "a temporary file was left behind"
    import xml.etree.ElementTree as ET

    junit = ET.parse(run_a / "junit.xml").getroot()
    n_checks = sum(len(v["checks"]) for v in report["variants"])
    assert int(junit.get("tests")) == n_checks + 1 and junit.get("failures") == "0"


def test_report_records_versions_inputs_and_per_variant_facts(run_a: Path) -> None:
    report = read_report(run_a)
    for key in ("tensorflow", "tflite_converter", "od_api", "tflite_support", "ai_edge_litert"):
        assert report["versions"][key], key
    assert report["inputs"]["kind"] == "checkpoint"
    for v in report["variants"]:
        data = (run_a / v["path"]).read_bytes()
        assert v["sha256"] == hashlib.sha256(data).hexdigest()
        assert v["size_bytes"] == len(data)
        assert v["conversion_seconds"] > 0
        assert v["ops"]["CUSTOM:TFLite_Detection_PostProcess"] == 1
        assert not [op for op in v["ops"] if op.startswith("FLEX:")]
        assert [o["role"] for o in v["outputs"]] == PORT_ROLES
        assert all(c["verdict"] == "pass" for c in v["checks"]), v["checks"]


def test_int8_has_uint8_input_and_float_outputs(run_a: Path) -> None:
    it = _interp(run_a / "models" / "int8.tflite")
    assert it.get_input_details()[0]["dtype"] == np.uint8
    assert {o["dtype"] for o in it.get_output_details()} == {np.float32}


def test_float_variants_have_float_input(run_a: Path) -> None:
    for v in ("fp32", "fp16", "dynamic"):
        it = _interp(run_a / "models" / f"{v}.tflite")
        assert it.get_input_details()[0]["dtype"] == np.float32, v


def test_max_detections_option_sets_n(run_a: Path) -> None:
    boxes, classes, scores, count = _run(run_a / "models" / "fp32.tflite")
    assert boxes.shape == (1, 7, 4) and classes.shape == (1, 7) and scores.shape == (1, 7)
    assert count.shape == (1,)


def test_metadata_has_labels_names_and_normalization(run_a: Path) -> None:
    from liteship.converter.metadata import read_metadata

    for v in VARIANTS:
        md = read_metadata((run_a / "models" / f"{v}.tflite").read_bytes())
        assert md.output_names == tuple(PORT_ROLES), v
        assert "labelmap.txt" in md.associated_files
        assert md.label_count == 3
        assert md.norm_mean == (127.5,) and md.norm_std == (127.5,)


def test_calibration_statistics_are_recorded(run_a: Path) -> None:
    cal = read_report(run_a)["calibration"]
    assert cal["count"] == 8
    assert -1.0 <= cal["min"] < cal["max"] <= 1.0
    assert tuple(cal["expected_range"]) == (-1.0, 1.0)


def test_export_keeps_a_numerically_real_reference(run_a: Path) -> None:
    import tensorflow as tf

    ref = tf.saved_model.load(str(run_a / "export" / "reference"))
    x = tf.random.stateless_uniform([1, 96, 96, 3], seed=(1, 2), minval=-1, maxval=1)
    heads = ref.signatures["heads"](preprocessed=x)
    det = ref.signatures["detect"](preprocessed=x)
    anchors = np.load(run_a / "export" / "reference" / "anchors.npy")
    assert heads["box_encodings"].shape[1] == anchors.shape[0]
    assert heads["class_predictions"].shape[-1] == 4  # 3 classes + background
    assert det["boxes"].shape == (1, 7, 4)
    # a real model answers differently to different inputs (the SavedModel's are constants)
    heads2 = ref.signatures["heads"](preprocessed=-x)
    assert not np.allclose(heads["class_predictions"], heads2["class_predictions"])
    assert not np.allclose(heads["box_encodings"], heads2["box_encodings"])
    assert 0 < int(det["num_detections"][0]) <= 7


CONVERTER_ROLES = ["score", "location", "number of detections", "category"]


def test_saved_model_input_converts_and_keeps_converter_order(run_b: Path) -> None:
    report = read_report(run_b)
    assert report["inputs"]["kind"] == "saved_model"
    assert report["export"]["max_detections"] == 7 and report["export"]["num_classes"] == 3
    assert [v["name"] for v in report["variants"]] == VARIANTS
    for v in report["variants"]:
        assert [o["role"] for o in v["outputs"]] == CONVERTER_ROLES
        assert v["metadata"] is None  # `convert` stops before metadata
        assert all(c["verdict"] == "pass" for c in v["checks"]), v["checks"]


def test_metadata_binds_names_to_roles_in_converter_order(run_b: Path) -> None:
    from liteship.converter.metadata import read_metadata, verify, write_metadata
    from liteship.types import Normalization

    norm = Normalization(mean=(127.5,), std=(127.5,))
    model = write_metadata((run_b / "models" / "fp32.tflite").read_bytes(), norm, "a\nb\nc\n")
    verify(model, norm, 3)  # raises when a name is bound to the wrong tensor
    assert list(read_metadata(model).output_names) == CONVERTER_ROLES


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_gives_the_same_tensors_in_both_orders(run_b: Path, variant: str, tmp_path: Path) -> None:
    """Converter order -> port order: the same tensors come out under the new positions."""
    from liteship.converter.reorder import reorder_outputs
    from liteship.tflite_inspect import inspect_model
    from liteship.types import OutputOrder

    src = run_b / "models" / f"{variant}.tflite"
    data = src.read_bytes()
    before_roles = [r.value for r in inspect_model(data).output_roles]
    dst = tmp_path / "port.tflite"
    dst.write_bytes(reorder_outputs(data, OutputOrder.PORT))
    after = _run(dst, seed=3)
    before = _run(src, seed=3)
    for new_pos, role in enumerate(PORT_ROLES):
        np.testing.assert_array_equal(after[new_pos], before[before_roles.index(role)])


def test_frozen_graph_input_converts_all_variants_with_parity_against_the_graph(tmp_path: Path, calib_images: Path) -> None:
    """Input (c): the size comes from the graph's placeholder (no --input-size), and every
    variant is compared with the reference built from the graph's own raw heads."""
    from tests.fixtures.tf1_graph import build_tflite_graph_pb

    pb = build_tflite_graph_pb(tmp_path / "tflite_graph.pb", height=96, width=96, num_classes=3, max_detections=10,
                               feature_extractor="ssd_mobilenet_v1")
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'a' }\nitem { id: 2 name: 'b' }\nitem { id: 3 name: 'c' }\n")
    out = tmp_path / "out"
    code = run_cli([
        "run", "--frozen-graph", str(pb), "--label-map", str(label_map),
        "--images", str(calib_images), "--calibration-images", "8", "--out", str(out), "--quiet",
    ])
    assert code == 0
    report = read_report(out)
    assert report["inputs"]["kind"] == "frozen_graph"
    assert report["export"]["input_shape"] == [1, 96, 96, 3]
    assert (out / "export" / "reference" / "anchors.npy").is_file()
    assert [v["name"] for v in report["variants"]] == VARIANTS
    for v in report["variants"]:
        assert [o["role"] for o in v["outputs"]] == PORT_ROLES
        assert v["ops"]["CUSTOM:TFLite_Detection_PostProcess"] == 1
        verdicts = {c["id"]: c["verdict"] for c in v["checks"]}
        parity_verdicts_pass(v)
        assert v["parity"]["reference_detections"] > 0
        # every gating check ran (a skip would have failed the run with exit 3)
        assert set(verdicts.values()) <= {"pass", "n/a"}, (v["name"], v["checks"])
        assert verdicts["lint.task-library.gpu.compatibility"] == "pass"
        assert verdicts["lint.task-library.task_library.load"] == "pass"  # the real Task Library ran it
    fp32 = report["variants"][0]["parity"]["heads"]
    assert fp32["box_encodings"]["max_abs"] < 1e-4 and fp32["class_predictions"]["max_abs"] < 1e-4


def test_int8_without_usable_images_is_refused_and_other_variants_are_written(run_a: Path, tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "notes.txt").write_text("not an image")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    code = run_cli([
        "convert", "--saved-model", str(run_a / "export" / "saved_model"), "--variants", "fp32,int8",
        "--images", str(images), "--out", str(out), "--quiet",
    ])
    assert code == 14
    err = capsys.readouterr().err
    assert "int8" in err and "Traceback" not in err
    assert (out / "models" / "fp32.tflite").is_file()
    assert not (out / "models" / "int8.tflite").exists()
    report = read_report(out)
    assert report["status"] == "partial"
    assert "refused" in report["calibration"]
    assert [e["exit_code"] for e in report["errors"]] == [14]


def test_parity_uses_the_first_parity_images_of_the_ground_truth(tmp_path: Path) -> None:
    """--parity-images limits the ground-truth images too (it once took all of them)."""
    import dataclasses

    import numpy as np

    from liteship import pipeline
    from liteship.demo import synth
    from liteship.validation.groundtruth import load_ground_truth

    req = dataclasses.replace(pipeline.demo_request(tmp_path / "out"), parity_images=3)
    gt = load_ground_truth(pipeline.DEMO_DIR / "data" / "val", list(synth.CLASSES))
    loaders = pipeline._parity_images(req, gt)
    assert loaders is not None and len(loaders) == 3
    assert all(np.array_equal(load(), g.load_rgb()) for load, g in zip(loaders, gt))
    from_folder = pipeline._parity_images(req, None)
    assert from_folder is not None and len(from_folder) == 3 and from_folder[0]().dtype == np.uint8


def test_metadata_without_cache_skips_the_reference_and_its_models_match_a_cached_run(
    tmp_path: Path, tiny_checkpoint: tuple[Path, Path, Path], calib_images: Path, run_a: Path
) -> None:
    # nothing in `metadata --no-cache` compares with the desktop reference, so it is not
    # written (the bench's pipeline-vs-manual path); the models are those of a run that wrote it
    config, ckpt, label_map = tiny_checkpoint
    out = tmp_path / "out"
    code = run_cli([
        "metadata", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt), "--label-map", str(label_map),
        "--images", str(calib_images), "--calibration-images", "8", "--max-detections", "7", "--variants", "fp32",
        "--no-cache", "--out", str(out), "--quiet",
    ])
    report = read_report(out)
    assert code == 0, report.get("errors")
    assert not (out / "export" / "reference").exists() and report["export"]["reference_dir"] is None
    assert (run_a / "export" / "reference").is_dir()  # the cached default writes it
    fp32 = _run(out / "models" / "fp32.tflite")
    for got, want in zip(fp32, _run(run_a / "models" / "fp32.tflite")):
        np.testing.assert_array_equal(got, want)
