"""The embedded demo: shipped files, reproducible data, and the default `liteship run`."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from liteship.demo import synth
from liteship.pipeline import DEMO_DIR
from tests.conftest import read_report, run_cli


def _png(sample: synth.SynthSample) -> bytes:
    buf = io.BytesIO()
    sample.image.save(buf, format="PNG")
    return buf.getvalue()


def test_same_seed_gives_the_same_images_and_boxes() -> None:
    a = list(itertools.islice(synth.generate(123, 3), 3))
    b = list(itertools.islice(synth.generate(123, 3), 3))
    assert [_png(s) for s in a] == [_png(s) for s in b]
    assert [s.objects for s in a] == [s.objects for s in b]
    c = next(iter(synth.generate(124, 1)))
    assert _png(c) != _png(a[0])


def test_synthetic_boxes_lie_inside_their_images_and_use_known_classes() -> None:
    for s in itertools.islice(synth.generate(5, 40), 40):
        w, h = s.image.size
        assert 1 <= len(s.objects) <= 3
        for o in s.objects:
            assert o.label in synth.CLASSES
            assert 0 <= o.xmin < o.xmax <= w and 0 <= o.ymin < o.ymax <= h


def test_demo_ships_checkpoint_config_labels_and_data() -> None:
    model = DEMO_DIR / "model"
    assert (model / "pipeline.config").is_file()
    assert (model / "label_map.pbtxt").read_text() == synth.label_map_pbtxt()
    assert list((model / "checkpoint").glob("*.index")), "no checkpoint shipped"
    val = DEMO_DIR / "data" / "val"
    assert len(list(val.glob("*.jpg"))) == 50
    assert len(list(val.glob("*.xml"))) == 50
    assert (val / "annotations.csv").is_file()
    assert len(list((DEMO_DIR / "data" / "calibration").glob("*.jpg"))) >= 50
    total = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file())
    assert total < 8 * 1024 * 1024, f"demo assets are {total / 1e6:.1f} MB"


@pytest.mark.tf
@pytest.mark.slow
def test_default_run_converts_validates_and_fp32_reaches_map50_080(tmp_path: Path) -> None:
    from liteship.validation.evaluate import evaluate_map

    out = tmp_path / "out"
    assert run_cli(["run", "--out", str(out), "--quiet"]) == 0
    report = read_report(out)
    assert report["inputs"]["demo"] is True
    assert [v["name"] for v in report["variants"]] == ["fp32", "fp16", "dynamic", "int8"]
    names = (out / "labelmap.txt").read_text().splitlines()
    result = evaluate_map(out / "models" / "fp32.tflite", DEMO_DIR / "data" / "val", names)
    assert result.map50 >= 0.80, result.to_dict()
    by = {v["name"]: v for v in report["variants"]}
    assert by["fp32"]["map50"] == pytest.approx(result.map50)
    # fp32 reproduces the OD API reference: the reference is numerically real
    assert by["fp32"]["parity"]["heads"]["box_encodings"]["max_abs"] < 1e-3
    assert by["fp32"]["parity"]["recall"] == 1.0
    assert by["fp32"]["map50"] - by["int8"]["map50"] <= 0.02
    assert report["validation"]["reference"]["map50"] >= 0.80
    for v in report["variants"]:
        ids = {c["id"] for c in v["checks"]}
        assert {"parity.detections.recall", "parity.heads.box_encodings.max_rel",
                "parity.heads.box_encodings.psnr_db"} <= ids
        assert not [c for c in v["checks"] if c["verdict"] == "fail"], (v["name"], v["checks"])
        # every gating check ran: the Task Library load and the GPU analysis too
        assert not [c for c in v["checks"] if c["verdict"] == "skip"], v["name"]
        verdicts = {c["id"]: c["verdict"] for c in v["checks"]}
        assert verdicts["lint.task-library.task_library.load"] == verdicts["lint.task-library.gpu.compatibility"] == "pass"
        assert verdicts["finite"] == verdicts["detections.any"] == "pass"
        assert v["lint"]["task-library"]["verdict"] == "pass" and v["lint"]["bundled-app"]["verdict"] == "pass"
    assert by["int8"]["lint"]["litert-sample"]["verdict"] == "pass"  # uint8 input, port order, labelmap.txt
    assert by["fp32"]["lint"]["litert-sample"]["failed"] == ["input.dtype"]  # that app feeds uint8


def test_fpnlite_demo_ships_its_model_and_shares_the_demo_data() -> None:
    from liteship.pipeline import DEFAULT_DEMO, DEMOS

    assert DEFAULT_DEMO == "mobilenetv2" and DEMOS[DEFAULT_DEMO] == DEMO_DIR / "model"
    model = DEMOS["fpnlite"]
    assert 'type: "ssd_mobilenet_v2_fpn_keras"' in (model / "pipeline.config").read_text()
    assert (model / "label_map.pbtxt").read_text() == synth.label_map_pbtxt()
    assert list((model / "checkpoint").glob("*.index")), "no FPNLite checkpoint shipped"
    assert not (model.parent / "data").exists(), "the FPNLite demo uses the demo's data/, not a copy"


def test_demo_flag_is_refused_with_a_model_input_or_an_unknown_name(tmp_path: Path) -> None:
    assert run_cli(["run", "--demo", "fpnlite", "--saved-model", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    with pytest.raises(SystemExit) as exc:
        run_cli(["run", "--demo", "resnet", "--out", str(tmp_path / "o"), "--quiet"])
    assert exc.value.code == 2


@pytest.mark.tf
@pytest.mark.slow
def test_fpnlite_demo_run_converts_validates_and_fp32_reaches_map50_080(tmp_path: Path) -> None:
    """`liteship run --demo fpnlite`: a trained multi-scale model (3 FPN levels, weight-shared
    depthwise tower) through the whole flow, validated against the demo's 50 held-out images."""
    out = tmp_path / "out"
    assert run_cli(["run", "--demo", "fpnlite", "--out", str(out), "--quiet"]) == 0
    report = read_report(out)
    assert report["inputs"]["demo"] is True and report["inputs"]["demo_name"] == "fpnlite"
    assert report["validation"]["ground_truth"] == str(DEMO_DIR / "data" / "val")  # the demo's held-out split
    assert [v["name"] for v in report["variants"]] == ["fp32", "fp16", "dynamic", "int8"]
    by = {v["name"]: v for v in report["variants"]}
    assert by["fp32"]["map50"] >= 0.80, by["fp32"]["map50"]
    assert report["validation"]["reference"]["map50"] >= 0.80
    assert by["fp32"]["parity"]["recall"] == 1.0
    for v in report["variants"]:
        assert not [c for c in v["checks"] if c["verdict"] in ("fail", "skip")], (v["name"], v["checks"])
