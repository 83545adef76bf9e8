"""The Python API (docs/api.md): liteship.lint and liteship.run return typed, JSON-serialisable
results with the CLI's exit codes, and never raise for what the CLI reports with a code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import liteship
from liteship.converter.metadata import write_metadata
from liteship.types import DEFAULT_NORMALIZATION
from tests.fixtures.tiny_ssd import image_model


def _model(tmp_path: Path, **kwargs: object) -> Path:
    path = tmp_path / "m.tflite"
    path.write_bytes(write_metadata(image_model("uint8", **kwargs), DEFAULT_NORMALIZATION, "a\nb\nc\n"))
    return path


def test_lint_passes_a_good_model_and_serialises(tmp_path: Path) -> None:
    result = liteship.lint(_model(tmp_path), ["bundled-app", "litert-sample"], gpu=False)
    assert isinstance(result, liteship.LintReport) and result.ok and result.exit_code == 0
    assert result.failed() == {}
    assert json.loads(json.dumps(result.to_dict()))["contracts"].keys() == {"bundled-app", "litert-sample"}


def test_lint_failure_is_exit_30_with_the_failed_checks(tmp_path: Path) -> None:
    result = liteship.lint(_model(tmp_path, ports=(2, 0, 3, 1)), ["litert-sample"], gpu=False)
    assert result.exit_code == 30 and not result.ok
    assert "outputs.order" in result.failed()["litert-sample"]
    assert result.error is not None and result.error["kind"] == "lint"


def test_lint_of_a_non_tflite_file_is_exit_15(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    result = liteship.lint(junk)
    assert result.exit_code == 15 and result.error is not None and result.error["kind"] == "tflite_file"


def test_run_refusal_and_usage_errors_come_back_as_results(tmp_path: Path) -> None:
    result = liteship.run(out=tmp_path / "o", frozen_graph=tmp_path / "missing.pb", label_map=tmp_path / "none.pbtxt")
    assert result.exit_code == 2 and result.error is not None
    gated = liteship.run(out=tmp_path / "o2", saved_model=tmp_path, min_map50=0.5)
    assert gated.exit_code == 2 and "needs ground truth" in gated.error["message"]


@pytest.mark.tf
def test_run_input_b_passes_and_returns_the_report(tmp_path: Path, run_a: Path, tiny_checkpoint: tuple[Path, Path, Path],
                                                   calib_images: Path) -> None:
    result = liteship.run(out=tmp_path / "out", saved_model=run_a / "export" / "saved_model",
                          label_map=tiny_checkpoint[2], images=calib_images, variants=["fp32"], parity_images=4,
                          contracts=["task-library"])  # run_a's N=7 is below the bundled app's 10 results
    assert result.ok, result.error
    assert result.report == json.loads((tmp_path / "out" / "report.json").read_text())
    fp32 = result.report["variants"][0]
    assert {c["id"]: c["verdict"] for c in fp32["checks"]}["parity"] == "n/a"  # input (b): no reference
    assert json.loads(json.dumps(result.to_dict()))["exit_code"] == 0
