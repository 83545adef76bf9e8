"""Parity: matching and judging (fast), and fp32 reproducing the reference (tf)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from liteship.types import Variant
from liteship.validation import parity


def _dets(boxes: list[list[float]], classes: list[int], scores: list[float]) -> dict[str, np.ndarray]:
    return {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "classes": np.array(classes), "scores": np.array(scores, np.float32)}


def test_identical_detections_match_one_to_one_with_iou_1() -> None:
    d = _dets([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [0, 1], [0.9, 0.8])
    pairs = parity.match(d, d)
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 0), (1, 1)]
    assert all(iou == pytest.approx(1.0) for _, _, iou in pairs)


def test_box_shifted_by_half_its_width_does_not_match() -> None:
    ref = _dets([[0, 0, 0.4, 0.4]], [0], [0.9])
    var = _dets([[0, 0.2, 0.4, 0.6]], [0], [0.9])  # IoU 1/3
    assert parity.match(ref, var) == []


def test_a_variant_box_is_matched_at_most_once() -> None:
    ref = _dets([[0, 0, 0.4, 0.4], [0, 0, 0.41, 0.41]], [0, 0], [0.9, 0.8])
    var = _dets([[0, 0, 0.4, 0.4]], [0], [0.9])
    assert len(parity.match(ref, var)) == 1


def _result(**kw: object) -> parity.ParityResult:
    base = dict(
        variant="fp32", images=3, score_threshold=0.3,
        heads={"box_encodings": {"max_abs": 0.0, "mean_abs": 0.0}, "class_predictions": {"max_abs": 0.0, "mean_abs": 0.0}},
        reference_detections=10, variant_detections=10, matched=10, class_agreement=1.0, recall=1.0, precision=1.0,
        iou={"mean": 1.0}, score_delta={"mean": 0.0},
    )
    base.update(kw)
    return parity.ParityResult(**base)  # type: ignore[arg-type]


def test_perfect_parity_passes_every_check() -> None:
    checks = parity.judge(_result(), parity.TOLERANCES[Variant.FP32])
    assert {c.verdict for c in checks} == {"pass"}


def test_missed_detections_fail_the_recall_check_with_numbers() -> None:
    checks = {c.id: c for c in parity.judge(_result(recall=0.5, matched=5), parity.TOLERANCES[Variant.FP32])}
    c = checks["parity.detections.recall"]
    assert c.verdict == "fail" and c.found == 0.5 and c.expected == ">= 0.98" and c.fix


def test_heads_beyond_tolerance_fail() -> None:
    heads = {"box_encodings": {"max_abs": 0.2, "mean_abs": 0.01}, "class_predictions": {"max_abs": 0.0, "mean_abs": 0.0}}
    checks = {c.id: c for c in parity.judge(_result(heads=heads), parity.TOLERANCES[Variant.FP32])}
    assert checks["parity.heads.box_encodings.max_abs"].verdict == "fail"
    # the same numbers are fine for int8, whose tolerance is looser
    checks8 = {c.id: c for c in parity.judge(_result(heads=heads), parity.TOLERANCES[Variant.INT8])}
    assert checks8["parity.heads.box_encodings.max_abs"].verdict == "pass"


def test_no_detections_are_not_applicable_instead_of_passing() -> None:
    checks = {c.id: c for c in parity.judge(_result(recall=None, precision=None, class_agreement=None, iou={"mean": None},
                                                     score_delta={"mean": None}, matched=0, reference_detections=0),
                                             parity.TOLERANCES[Variant.FP32])}
    # nothing to compare is n/a, never a pass (detections.any fails such a model on its own)
    assert checks["parity.detections.recall"].verdict == "n/a"


def test_tolerances_get_looser_from_fp32_to_int8() -> None:
    order = [parity.TOLERANCES[v] for v in (Variant.FP32, Variant.FP16, Variant.DYNAMIC, Variant.INT8)]
    for a, b in itertools.pairwise(order):
        assert a.box_encodings_max_abs <= b.box_encodings_max_abs
        assert a.min_recall >= b.min_recall


@pytest.mark.tf
def test_fp32_reproduces_the_reference_heads_on_the_tiny_model(run_a: Path, calib_images: Path) -> None:
    from liteship.converter.calibration import find_images, load_rgb

    paths = find_images(calib_images)[0][:4]
    models = {"fp32": (run_a / "models" / "fp32.tflite").read_bytes()}
    result = parity.measure(run_a / "export" / "reference", models, (load_rgb(p) for p in paths))["fp32"]
    assert result.images == 4
    assert result.heads["box_encodings"]["max_abs"] < 1e-3
    assert result.heads["class_predictions"]["max_abs"] < 1e-3
