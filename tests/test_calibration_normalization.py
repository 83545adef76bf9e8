"""Calibration data with the wrong normalization (pains.md row 7) is caught at run level.

Inputs (b) and (c) carry no preprocessing, so liteship reads the normalization the model
was trained with off its feature extractor (named in the graph). Calibrating with other
``--norm-mean/--norm-std`` fails the ``calibration.input_range`` check (exit 21) with a
message naming both normalizations and the flags to use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import read_report, run_cli

pytestmark = pytest.mark.tf


def test_saved_model_input_takes_the_feature_extractors_normalization(run_b: Path) -> None:
    export = read_report(run_b)["export"]
    assert export["feature_extractor"] == "SSDMobileNetV2KerasFeatureExtractor"
    assert export["normalization_source"] == "feature_extractor"
    assert export["normalization"] == {"mean": [127.5] * 3, "std": [127.5] * 3}


def test_calibrating_a_saved_model_with_the_wrong_normalization_fails_the_named_check(
    run_a: Path, calib_images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run_cli([
        "convert", "--saved-model", str(run_a / "export" / "saved_model"), "--variants", "int8",
        "--images", str(calib_images), "--calibration-images", "4", "--norm-mean", "0", "--norm-std", "255",
        "--out", str(out), "--quiet",
    ])
    assert code == 21
    report = read_report(out)
    assert report["status"] == "fail"
    (check,) = [c for v in report["variants"] for c in v["checks"] if c["id"] == "calibration.input_range"]
    assert check["verdict"] == "fail"
    assert check["expected"] == [-1.0, 1.0] and 0 <= check["found"][0] < check["found"][1] <= 1.0
    assert "SSDMobileNetV2KerasFeatureExtractor expects mean 127.5 std 127.5" in check["message"]
    assert "--norm-mean 127.5 --norm-std 127.5" in check["fix"]
    err = capsys.readouterr().err
    assert "calibration.input_range" in err and "Traceback" not in err


def test_contradicting_the_models_own_preprocess_is_refused_for_checkpoint_input(
    tiny_checkpoint: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ckpt, label_map = tiny_checkpoint
    out = tmp_path / "out"
    code = run_cli([
        "export", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt), "--label-map", str(label_map),
        "--norm-mean", "0", "--norm-std", "255", "--out", str(out), "--quiet",
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert "contradict the model's own preprocess" in err and "drop the flags" in err
    assert not list(out.glob("models/*.tflite"))
