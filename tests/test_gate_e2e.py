"""Every gate exit code of `liteship run`, triggered for real by a model that breaks it.

Each test runs the whole flow through the CLI on a small OD API checkpoint (or the
session's export) and asserts the exit code, the named check in report.json and
junit.xml, and the HTML's failing-checks section (tests/fixtures/reports.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.fixtures.reports import assert_reports_agree

pytestmark = [pytest.mark.tf, pytest.mark.slow]

DEMO_VAL = Path(__file__).resolve().parents[1] / "liteship" / "demo" / "data" / "val"


@pytest.fixture(scope="module")
def small_gt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 of the demo's validation images with their VOC annotations (3 classes, like the tiny SSD)."""
    root = tmp_path_factory.mktemp("gt")
    for xml in sorted(DEMO_VAL.glob("*.xml"))[:8]:
        shutil.copy(xml, root / xml.name)
        shutil.copy(xml.with_suffix(".jpg"), root / xml.with_suffix(".jpg").name)
    return root


def _checkpoint(root: Path, edit: Any) -> tuple[Path, Path, Path]:
    from tests.fixtures.odapi_models import write_ssd_checkpoint

    return write_ssd_checkpoint(root, size=96, num_classes=3, seed=0, edit=edit)


def _zero_class_head(model: Any) -> None:
    """What an untrained or collapsed detector looks like: every class logit -20."""
    for v in model.variables:
        if "ClassPredictor/" in v.name:
            value = np.full(v.shape, -20.0) if v.name.endswith("bias:0") else np.zeros(v.shape)
            v.assign(value.astype(v.dtype.as_numpy_dtype))


def _nan_box_kernel(model: Any) -> None:
    """A diverged training run: NaN in one box-predictor kernel."""
    v = next(v for v in model.variables if "ConvolutionalBoxHead_0/BoxEncodingPredictor/kernel" in v.name)
    v.assign(np.full(v.shape, np.nan, dtype=v.dtype.as_numpy_dtype))


def _run(config: Path, ckpt: Path, labels: Path, out: Path, *extra: str) -> int:
    return run_cli(["run", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt), "--label-map", str(labels),
                    "--out", str(out), "--quiet", *extra])


def test_a_never_detecting_checkpoint_exits_32(tmp_path: Path, small_gt: Path) -> None:
    config, ckpt, labels = _checkpoint(tmp_path / "model", _zero_class_head)
    out = tmp_path / "out"
    code = _run(config, ckpt, labels, out, "--ground-truth", str(small_gt), "--variants", "fp32")
    assert code == 32
    report = assert_reports_agree(out, 32, "fp32:detections.any")
    for name in ("fp32", "reference"):
        assert f"{name}:detections.any" in report["errors"][0]["failed_checks"]
    assert "reference:accuracy.reference_map50" in report["errors"][0]["failed_checks"]
    fp32 = next(c for c in report["variants"][0]["checks"] if c["id"] == "detections.any")
    assert "detects nothing" in fp32["message"] and "untrained checkpoint" in fp32["fix"]
    assert report["variants"][0]["map50"] == 0.0


def test_a_nan_checkpoint_exits_31_finite(tmp_path: Path, calib_images: Path) -> None:
    """NaN in one box-predictor kernel: the reference's heads and detections hold NaN (``finite``),
    and so do the heads entering the variant's postprocess op (parity NaN-safe). The TFLite op
    drops the NaN boxes, so the variant's four outputs may well be finite."""
    config, ckpt, labels = _checkpoint(tmp_path / "model", _nan_box_kernel)
    out = tmp_path / "out"
    code = _run(config, ckpt, labels, out, "--images", str(calib_images), "--variants", "fp32", "--parity-images", "4")
    assert code == 31
    report = assert_reports_agree(out, 31, "reference:finite")
    ref = next(c for c in report["validation"]["reference"]["checks"] if c["id"] == "finite")
    assert "heads/box_encodings" in ref["message"], "the message names the tensor"
    heads = report["variants"][0]["parity"]["heads"]["box_encodings"]
    # parity statistics are NaN-safe: a NaN is never a small difference
    assert heads["max_abs"] == "nan"
    assert "fp32:parity.heads.box_encodings.max_rel" in report["errors"][0]["failed_checks"]
    fp32_finite = next(c for c in report["variants"][0]["checks"] if c["id"] == "finite")
    if fp32_finite["verdict"] == "fail":  # when NaN reaches the outputs, the tensor is named
        assert "location" in fp32_finite["message"]


def test_a_contract_violation_exits_30(tmp_path: Path, tiny_checkpoint: tuple[Path, Path, Path],
                                       calib_images: Path) -> None:
    """int8 input: the Task Library (a default gating contract) rejects it."""
    config, ckpt, labels = tiny_checkpoint
    out = tmp_path / "out"
    code = _run(config, ckpt, labels, out, "--images", str(calib_images), "--variants", "int8", "--int8-input", "int8",
                "--calibration-images", "8", "--parity-images", "4")
    assert code == 30
    assert_reports_agree(out, 30, "int8:lint.task-library.input.dtype")


def test_a_broken_conversion_exits_21(tmp_path: Path, run_a: Path, tiny_checkpoint: tuple[Path, Path, Path],
                                      calib_images: Path) -> None:
    """int8 calibrated with another normalization than the model's: the converted model fails its
    calibration check (21), validated and reported before the run ends."""
    _, _, labels = tiny_checkpoint
    out = tmp_path / "out"
    code = run_cli(["run", "--saved-model", str(run_a / "export" / "saved_model"), "--label-map", str(labels),
                    "--images", str(calib_images), "--variants", "int8", "--calibration-images", "8",
                    "--norm-mean", "0", "--norm-std", "1", "--out", str(out), "--quiet"])
    assert code == 21
    assert_reports_agree(out, 21, "int8:calibration.input_range")


def test_a_required_runtime_that_cannot_start_exits_3(tmp_path: Path, tiny_checkpoint: tuple[Path, Path, Path],
                                                      calib_images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Task Library (gating: task-library contract) is broken in this environment: a shadowing
    `tensorflow_lite_support` that fails to import, as a half-removed install does. The run cannot
    vouch for the contract: exit 3 naming the check; --allow-skip accepts it (exit 0)."""
    broken = tmp_path / "broken_site"
    (broken / "tensorflow_lite_support").mkdir(parents=True)
    (broken / "tensorflow_lite_support" / "__init__.py").write_text(
        "raise ImportError('tensorflow_lite_support is broken in this environment')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken))  # the runtime checks' child processes see it
    config, ckpt, labels = tiny_checkpoint
    out = tmp_path / "out"
    args = ["--images", str(calib_images), "--variants", "fp32", "--parity-images", "4",
            "--gates", str(_lenient_gates(tmp_path))]
    assert _run(config, ckpt, labels, out, *args) == 3
    report = assert_reports_agree(out, 3, "fp32:lint.task-library.task_library.load")
    assert report["status"] == "error"
    assert "--allow-skip lint.task-library.task_library.load" in report["errors"][0]["hint"]
    allowed_out = tmp_path / "allowed"
    assert _run(config, ckpt, labels, allowed_out, *args, "--allow-skip", "lint.*.task_library.*") == 0
    allowed = json.loads((allowed_out / "report.json").read_text())
    check = next(c for c in allowed["variants"][0]["checks"] if c["id"] == "lint.task-library.task_library.load")
    assert check["verdict"] == "skip" and check["allowed"] is True


def _lenient_gates(tmp_path: Path) -> Path:
    """A random tiny SSD's fp32 is what is under test here, not its parity with the reference."""
    path = tmp_path / "gates.toml"
    path.write_text("[parity.fp32]\nmin_recall = 0\nmin_precision = 0\nmin_class_agreement = 0\nmin_mean_iou = 0\n"
                    "max_mean_score_delta = 1\n")
    return path


def test_min_map50_without_ground_truth_is_refused(tmp_path: Path, tiny_checkpoint: tuple[Path, Path, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config, ckpt, labels = tiny_checkpoint
    assert _run(config, ckpt, labels, tmp_path / "out", "--min-map50", "0.5") == 2
    assert "needs ground truth" in capsys.readouterr().err


def test_sanity_gates_come_before_the_app_contracts() -> None:
    """A NaN model also breaks the runtimes' comparisons (lint): the exit code says NaN (31)."""
    from liteship.validation import judge

    lint_fail = {"id": "lint.task-library.task_library.detections", "verdict": "fail"}
    nan = {"id": "finite", "verdict": "fail"}
    nothing = {"id": "detections.any", "verdict": "fail"}
    assert judge.decide({"fp32": [lint_fail, nan]}).exit_code == 31
    assert judge.decide({"fp32": [lint_fail, nothing]}).exit_code == 32
    assert judge.decide({"fp32": [lint_fail, {"id": "parity.detections.recall", "verdict": "fail"}]}).exit_code == 30
    assert judge.decide({"fp32": [nan, {"id": "postprocess_op", "verdict": "fail"}]}).exit_code == 21
