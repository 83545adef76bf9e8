"""The Task Library check (liteship.validation.taskcheck) really loads models and detects.

The good models come from the session fixture ``run_a`` (the tiny checkpoint through
`liteship metadata`: int8/fp32 ... WITH metadata, built once per session, ~2-3 min).
The model without metadata is run (a)'s int8 model with its ``TFLITE_METADATA`` entry removed
(uint8 input, so the Task Library's first complaint is the missing metadata itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from liteship.validation import lint, taskcheck
from tests.fixtures.tiny_ssd import repack

DEMO_IMAGE = Path(__file__).resolve().parents[1] / "liteship" / "demo" / "data" / "val" / "val_00000.jpg"
NO_METADATA = "Object detection models require TFLite Model Metadata but none was found"


def _model(run_a: Path, name: str) -> Path:
    path = run_a / "models" / f"{name}.tflite"
    assert path.exists(), f"run (a) wrote no {path.name}: {sorted(p.name for p in (run_a / 'models').glob('*'))}"
    return path


def _strip_metadata(data: bytes) -> bytes:
    def edit(model: object) -> None:
        model.metadata = [m for m in (model.metadata or []) if m.name not in (b"TFLITE_METADATA", "TFLITE_METADATA")]  # type: ignore[attr-defined]

    return repack(data, edit)


def _assert_loaded(res: taskcheck.TaskResult, max_results: int) -> None:
    assert not res.skipped, f"Task Library check skipped: {res.message}"
    assert res.ok and res.loaded, res.message
    assert res.found == "loaded"
    assert res.error is None
    assert res.detections is not None and 0 < res.detections <= max_results, res
    assert res.load_s is not None and res.detect_s is not None and res.elapsed_s is not None
    assert 0 <= res.load_s < res.elapsed_s and 0 <= res.detect_s < res.elapsed_s


def test_missing_file_is_a_failure_with_the_task_library_message(tmp_path: Path) -> None:
    res = taskcheck.run(tmp_path / "absent.tflite")
    assert not res.skipped, res.message
    assert not res.ok and not res.loaded and res.found == "refused" and res.stage == "load"
    assert "Unable to open file" in (res.error or ""), res


@pytest.mark.tf
@pytest.mark.parametrize("name", ["int8", "fp32"])
def test_models_with_metadata_load_and_detect(run_a: Path, name: str) -> None:
    res = taskcheck.run(_model(run_a, name), max_results=5)
    _assert_loaded(res, 5)
    assert res.image == "a synthetic shapes image"
    assert f"{res.detections} detection" in res.message


@pytest.mark.tf
@pytest.mark.skipif(not DEMO_IMAGE.exists(), reason=f"demo image {DEMO_IMAGE} not in this checkout")
def test_detect_on_a_given_image(run_a: Path) -> None:
    res = taskcheck.run(_model(run_a, "int8"), max_results=2, image=DEMO_IMAGE)
    _assert_loaded(res, 2)
    assert res.image == str(DEMO_IMAGE)


@pytest.mark.tf
def test_model_without_metadata_is_rejected_by_the_task_library(run_a: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(_strip_metadata(_model(run_a, "int8").read_bytes()))
    res = taskcheck.run(bare)
    assert not res.skipped, res.message
    assert not res.ok and not res.loaded
    assert res.found == "refused" and res.stage == "load"
    assert res.error == NO_METADATA, res
    assert NO_METADATA in res.message
    assert res.detections is None


@pytest.mark.tf
def test_lint_task_check_passes_and_fails(run_a: Path, tmp_path: Path) -> None:
    good = _model(run_a, "int8")
    check = lint._task(taskcheck.run(good))
    assert check.verdict == lint.Verdict.PASS, check.to_dict()
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(_strip_metadata(good.read_bytes()))
    check = lint._task(taskcheck.run(bare))
    assert check.verdict == lint.Verdict.FAIL, check.to_dict()
