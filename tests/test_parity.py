"""Parity: matching and judging (fast), and fp32 reproducing the reference (tf)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from liteship.types import Variant
from liteship.validation import judge, parity
from liteship.validation.gates import TOLERANCES


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


def _greedy_spec(ref: dict[str, np.ndarray], var: dict[str, np.ndarray], thr: float = 0.5) -> list[tuple[int, int]]:
    """The matching rule, written plainly: reference detections by score (stable), each takes
    the unused variant detection of highest IoU >= thr, the lowest index among equal IoUs."""
    if not len(ref["scores"]) or not len(var["scores"]):
        return []
    iou = parity._iou(ref["boxes"], var["boxes"])
    used: set[int] = set()
    pairs = []
    for i in sorted(range(len(ref["scores"])), key=lambda k: -float(ref["scores"][k])):
        free = [j for j in range(len(var["scores"])) if j not in used and iou[i, j] >= thr]
        if free:
            j = max(free, key=lambda j: (iou[i, j], -j))
            pairs.append((i, j))
            used.add(j)
    return pairs


def test_vectorised_matching_is_the_greedy_rule_on_random_crowded_images() -> None:
    rng = np.random.default_rng(7)
    conflicts = 0
    for _ in range(3000):
        def dets(k: int) -> dict[str, np.ndarray]:
            corner = rng.random((k, 2)) * 0.6
            boxes = np.concatenate([corner, corner + rng.random((k, 2)) * 0.4 + 0.05], 1).astype(np.float32)
            if k > 1 and rng.random() < 0.3:
                boxes[1] = boxes[0]  # equal IoUs: the lowest index must win
            return {"boxes": boxes, "classes": np.zeros(k, int), "scores": np.round(rng.random(k), 1).astype(np.float32)}

        ref, var = dets(int(rng.integers(0, 12))), dets(int(rng.integers(0, 12)))
        k = min(len(ref["scores"]), len(var["scores"]))
        var["boxes"][:k] = ref["boxes"][:k] + rng.normal(0, 0.03, (k, 4)).astype(np.float32)
        got = parity.match(ref, var)
        assert [(i, j) for i, j, _ in got] == _greedy_spec(ref, var)
        iou = parity._iou(ref["boxes"], var["boxes"]) if k else None
        assert all(v == pytest.approx(float(iou[i, j])) for i, j, v in got)  # type: ignore[index]
        if k and ((iou >= 0.5).sum(axis=0) > 1).any():  # type: ignore[operator]
            conflicts += 1
    assert conflicts > 100  # the greedy (competing) path was exercised, not only the fast one


def test_head_statistics_are_the_same_on_the_fast_and_the_non_finite_paths() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 3, (2, 500, 91)).astype(np.float32)
    var = (ref + rng.normal(0, 0.01, ref.shape)).astype(np.float32)
    fast = parity._HeadAccumulator()
    fast.add(var, ref)
    fast.add(var[:1], ref[:1])
    # the same values through the non-finite path: one extra NaN element, left out of the sums
    slow = parity._HeadAccumulator()
    for v, r in ((var, ref), (var[:1], ref[:1])):
        slow.add(np.append(v.ravel(), np.float32(np.nan)), np.append(r.ravel(), np.float32(0)))
    a, b = fast.result(), slow.result()
    assert b.nonfinite_variant == 2 and np.isnan(b.max_abs)  # judged as broken...
    for name in ("n", "max_abs", "sum_abs", "sum_sq", "ref_min", "ref_max", "ref_sum_sq"):
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), rel=1e-12), name  # ...with equal sums
    d = var.astype(np.float64) - ref.astype(np.float64)
    assert a.max_abs == pytest.approx(np.abs(d).max(), rel=1e-12)
    assert a.rmse == pytest.approx(np.sqrt(np.mean(np.concatenate([d.ravel(), d[:1].ravel()]) ** 2)), rel=1e-9)


def test_reference_sums_are_per_array_not_per_shape() -> None:
    # the per-image cache of the reference's sums must never serve another image's values
    acc = parity._HeadAccumulator()
    first, second = np.zeros((4, 3), np.float32), np.full((4, 3), 5.0, np.float32)
    acc.add(first, first)
    acc.add(second, second)
    r = acc.result()
    assert (r.reference_min, r.reference_max) == (0.0, 5.0)


def _head(max_abs: float = 0.0, rmse: float = 0.0, lo: float = -5.0, hi: float = 5.0, bad_ref: int = 0, bad_var: int = 0) -> parity.HeadStats:
    acc = parity._HeadAccumulator()
    ref = np.linspace(lo, hi, 101)
    var = ref.copy()
    var[0] += max_abs  # one outlier, the rest offset so that the RMSE is as asked
    if rmse:
        var[1:] += np.sqrt(max(rmse**2 * 101 - max_abs**2, 0.0) / 100)
    if bad_ref:
        ref[1 : 1 + bad_ref] = np.nan
    if bad_var:
        var[-bad_var:] = np.inf
    acc.add(var, ref)
    return acc.result()


def _result(**kw: object) -> parity.ParityResult:
    base = dict(
        variant="fp32", images=3, score_threshold=0.3, score_tie=1e-3,
        heads={"box_encodings": _head(), "class_predictions": _head(lo=0.0, hi=1.0)},
        reference_detections=10, variant_detections=10, matched=10, misses=0, extras=0, ties_reference=0, ties_variant=0,
        class_agreement=1.0, recall=1.0, precision=1.0, iou={"mean": 1.0}, score_delta={"mean": 0.0},
        nonfinite_detections={"reference": 0, "variant": 0},
    )
    base.update(kw)
    return parity.ParityResult(**base)  # type: ignore[arg-type]


def _checks(result: parity.ParityResult, variant: Variant = Variant.FP32) -> dict[str, object]:
    return {c.id: c for c in judge.parity_checks(result, TOLERANCES[variant])}


def test_perfect_parity_passes_every_check() -> None:
    checks = judge.parity_checks(_result(), TOLERANCES[Variant.FP32])
    assert {c.verdict for c in checks} == {"pass"}


def test_missed_detections_fail_the_recall_check_with_numbers() -> None:
    c = _checks(_result(recall=0.5, matched=5, misses=5))["parity.detections.recall"]
    assert c.verdict == "fail" and c.found == 0.5 and c.expected == ">= 0.98" and c.fix


def test_head_errors_are_judged_relative_to_the_reference_range() -> None:
    # the same absolute error (0.2) passes on a head spanning [-50, 50] and fails on one spanning [-1, 1]
    wide = _checks(_result(heads={"box_encodings": _head(0.2, 0.01, -50, 50), "class_predictions": _head(lo=0, hi=1)}), Variant.FP16)
    narrow = _checks(_result(heads={"box_encodings": _head(0.2, 0.01, -1, 1), "class_predictions": _head(lo=0, hi=1)}), Variant.FP16)
    assert wide["parity.heads.box_encodings.max_rel"].verdict == "pass"
    assert narrow["parity.heads.box_encodings.max_rel"].verdict == "fail"
    assert "max |diff| 0.2" in narrow["parity.heads.box_encodings.max_rel"].message  # the absolute number is reported


def test_psnr_is_twenty_log10_of_range_over_rmse() -> None:
    h = _head(0.0, 0.1, -5.0, 5.0)
    assert h.rmse == pytest.approx(0.1, rel=1e-6)
    assert h.psnr_db == pytest.approx(20 * np.log10(10.0 / 0.1), rel=1e-6)
    assert _head().psnr_db is None  # bit-identical: no finite PSNR, judged as exact
    low = _checks(_result(heads={"box_encodings": h, "class_predictions": _head(lo=0, hi=1)}), Variant.FP32)
    assert low["parity.heads.box_encodings.psnr_db"].verdict == "fail"  # 40 dB < fp32's limit


def test_a_nan_or_inf_on_either_side_fails_even_when_the_rest_is_exact() -> None:
    for head, side in ((_head(bad_ref=1), "1 in the reference"), (_head(bad_var=2), "2 value(s) in the variant")):
        checks = _checks(_result(heads={"box_encodings": head, "class_predictions": _head(lo=0, hi=1)}))
        rel = checks["parity.heads.box_encodings.max_rel"]
        assert rel.verdict == "fail" and side in rel.message
        assert checks["parity.heads.box_encodings.psnr_db"].verdict == "fail"


def test_a_nan_head_is_counted_not_swallowed_by_max() -> None:
    acc = parity._HeadAccumulator()
    acc.add(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    acc.add(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    r = acc.result()
    # max(0.0, nan) is 0.0 in Python: every statistic is NaN instead, never a small difference
    assert r.nonfinite_variant == 1 and np.isnan(r.max_abs) and np.isnan(r.max_rel) and r.elements == 3


def test_no_detections_are_not_applicable_instead_of_passing() -> None:
    checks = _checks(_result(recall=None, precision=None, class_agreement=None, iou={"mean": None},
                             score_delta={"mean": None}, matched=0, reference_detections=0))
    # nothing to compare is n/a, never a pass (detections.any fails such a model on its own)
    assert checks["parity.detections.recall"].verdict == "n/a"


def test_judge_is_pure() -> None:
    r, t = _result(recall=0.9, matched=9, misses=1), TOLERANCES[Variant.INT8]
    assert judge.parity_checks(r, t) == judge.parity_checks(r, t)
    assert r == _result(recall=0.9, matched=9, misses=1)


def test_tolerances_get_looser_from_fp32_to_int8() -> None:
    order = [TOLERANCES[v] for v in (Variant.FP32, Variant.FP16, Variant.DYNAMIC, Variant.INT8)]
    inf = float("inf")
    for a, b in itertools.pairwise(order):
        assert (a.box_encodings_max_rel or inf) <= (b.box_encodings_max_rel or inf)
        assert (a.class_scores_max_rel or inf) <= (b.class_scores_max_rel or inf)
        assert a.box_encodings_min_psnr_db >= b.box_encodings_min_psnr_db
        assert a.class_scores_min_psnr_db >= b.class_scores_min_psnr_db
        assert a.score_tie <= b.score_tie
        assert a.min_recall >= b.min_recall


# --- tie-aware matching ----------------------------------------------------------------------


def test_a_detection_just_above_the_threshold_missing_on_the_other_side_is_a_tie() -> None:
    ref = _dets([[0, 0, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0, 1], [0.9, 0.305])
    var = _dets([[0, 0, 0.4, 0.4]], [0], [0.9])  # scored the second one 0.29: below 0.3
    m = parity.match_tie_aware(ref, var, threshold=0.3, tie=0.01)
    assert m.misses == [] and m.ties_reference == [1]
    strict = parity.match_tie_aware(ref, var, threshold=0.3, tie=0.001)
    assert strict.misses == [1]  # 0.305 is not within 0.001 of the threshold: a real miss


def test_nms_keeping_the_other_box_of_a_near_equal_pair_is_a_tie_not_a_miss_and_an_extra() -> None:
    # two overlapping candidates scored 0.80 / 0.799: the reference kept one, the variant the other
    ref = _dets([[0.1, 0.1, 0.5, 0.5]], [0], [0.80])
    var = _dets([[0.1, 0.3, 0.5, 0.7]], [0], [0.799])  # IoU 1/3 with it: no match
    m = parity.match_tie_aware(ref, var, threshold=0.3, tie=0.01)
    assert (m.misses, m.extras, m.ties_reference, m.ties_variant) == ([], [], [0], [0])
    far = parity.match_tie_aware(ref, _dets([[0.6, 0.6, 0.9, 0.9]], [0], [0.799]), threshold=0.3, tie=0.01)
    assert far.misses == [0] and far.extras == [0]  # no overlap: a real miss and a real extra


def test_the_top_n_cut_is_a_threshold_too() -> None:
    # the variant returned its full N=2 list, lowest 0.50; the reference's 0.505 may be its 3rd
    ref = _dets([[0, 0, 0.2, 0.2], [0.3, 0.3, 0.5, 0.5], [0.6, 0.6, 0.8, 0.8]], [0, 0, 0], [0.9, 0.7, 0.505])
    var = _dets([[0, 0, 0.2, 0.2], [0.3, 0.3, 0.5, 0.5]], [0, 0], [0.9, 0.50])
    m = parity.match_tie_aware(ref, var, threshold=0.3, tie=0.01, var_cut=0.50)
    assert m.misses == [] and m.ties_reference == [2]
    assert parity.match_tie_aware(ref, var, threshold=0.3, tie=0.01).misses == [2]  # without the cut


def test_the_cut_of_the_ops_list_survives_boxes_dropped_after_it() -> None:
    """The letterbox path drops boxes outside the photo after the op cut its list at N: the
    list is shorter, but a box just below the other side's cut was still cut by N."""
    n = 3
    ref_op = _dets([[0, 0, 0.2, 0.2], [0.3, 0.3, 0.5, 0.5], [2, 2, 3, 3]], [0, 0, 0], [0.9, 0.7, 0.6])
    var_op = _dets([[0, 0, 0.2, 0.2], [0.3, 0.3, 0.5, 0.5], [0.6, 0.6, 0.8, 0.8]], [0, 0, 0], [0.9, 0.7, 0.595])
    cuts = (parity._cut(ref_op, n), parity._cut(var_op, n))
    assert cuts == (pytest.approx(0.6), pytest.approx(0.595))
    ref_kept = {k: v[:2] for k, v in ref_op.items()}  # [2, 2, 3, 3] lies outside the photo: dropped
    with_cut = parity._DetectionAccumulator()
    with_cut.add(ref_kept, var_op, 0.3, 0.01, n, cuts)
    assert (with_cut.result().extras, with_cut.result().ties_variant) == (0, 1)
    from_lists = parity._DetectionAccumulator()  # the shortened list alone has no cut
    from_lists.add(ref_kept, var_op, 0.3, 0.01, n)
    assert from_lists.result().extras == 1


def test_recall_counts_ties_neither_as_matched_nor_as_missed() -> None:
    acc = parity._DetectionAccumulator()
    ref = _dets([[0, 0, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.5, 0, 0.9, 0.3]], [0, 1, 1], [0.9, 0.302, 0.8])
    var = _dets([[0, 0, 0.4, 0.4]], [0], [0.9])
    acc.add(ref, var, 0.3, 0.01, None)
    r = acc.result()
    assert (r.matched, r.misses, r.ties_reference) == (1, 1, 1)
    assert r.recall == pytest.approx(0.5)


def test_detections_with_nan_are_counted_and_left_out() -> None:
    acc = parity._DetectionAccumulator()
    d = _dets([[0, 0, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0, 1], [0.9, 0.8])
    bad = {**d, "scores": np.array([0.9, np.nan], np.float32)}
    acc.add(d, bad, 0.3, 0.01, None)
    r = acc.result()
    assert r.nonfinite_variant == 1 and r.matched == 1


# two neighbouring anchors: their decoded boxes overlap with IoU 0.6 (a match, but a poor one)
_ANCHOR_BOXES = np.array([[0.0, 0.0, 0.4, 0.4], [0.0, 0.1, 0.4, 0.5]], np.float32)


def _anchor_pair(var_score: float) -> parity.DetectionStats:
    """The reference kept anchor 0 (0.60), the variant anchor 1; the variant's own box at anchor 0
    is the reference's box shifted by 0.01 (IoU 0.95)."""
    ref_decoded = _ANCHOR_BOXES
    var_decoded = _ANCHOR_BOXES + np.array([[0.01, 0.0, 0.01, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    acc = parity._DetectionAccumulator()
    acc.add(_dets([ref_decoded[0]], [0], [0.60]), _dets([var_decoded[1]], [0], [var_score]), 0.3, 0.05, None,
            decode=lambda: (ref_decoded, var_decoded))
    return acc.result()


def test_nms_keeping_a_neighbouring_anchor_of_a_near_tie_is_judged_at_the_same_anchor() -> None:
    r = _anchor_pair(var_score=0.62)  # within the tie (0.05) of 0.60
    assert (r.matched, r.anchor_ties) == (1, 1)
    assert r.iou_as_matched["mean"] == pytest.approx(0.6, abs=1e-6)  # the two anchors' boxes
    assert r.iou["mean"] == pytest.approx(0.156 / 0.164, abs=1e-6)  # the variant's box at anchor 0


def test_a_neighbouring_anchor_at_a_clearly_different_score_keeps_its_iou() -> None:
    r = _anchor_pair(var_score=0.80)  # 0.2 apart: the variant's scores changed, not a tie
    assert r.anchor_ties == 0 and r.iou["mean"] == pytest.approx(0.6, abs=1e-6)


def test_a_box_no_anchor_decodes_to_keeps_its_iou() -> None:
    acc = parity._DetectionAccumulator()
    ref, var = _dets([[0.0, 0.0, 0.4, 0.4]], [0], [0.6]), _dets([[0.0, 0.1, 0.4, 0.5]], [0], [0.61])
    acc.add(ref, var, 0.3, 0.05, None, decode=lambda: (_ANCHOR_BOXES + 0.2, _ANCHOR_BOXES + 0.2))  # clipped, other coder...
    r = acc.result()
    assert r.anchor_ties == 0 and r.iou["mean"] == pytest.approx(0.6, abs=1e-6)


@pytest.mark.tf
def test_the_ops_own_anchors_and_scales_decode_to_every_detection_it_returns(run_a: Path, calib_images: Path) -> None:
    """BoxDecoder (the op's anchors input + its scales) reproduces the op's boxes, both sides'
    anchors are found, and fp32 has no anchor ties (the same anchors win)."""
    from liteship.converter.calibration import find_images, load_rgb
    from liteship.validation.reference import Reference

    ref = Reference(run_a / "export" / "reference")
    found = 0
    for name in ("fp32", "fp16", "dynamic", "int8"):  # fp16: its anchors are a DEQUANTIZE op's output
        var = parity.VariantModel((run_a / "models" / f"{name}.tflite").read_bytes())
        for path in find_images(calib_images)[0][:4]:
            r = ref.run_full(load_rgb(path))
            heads, dets = var.run(r.preprocessed)
            assert var.decoder is not None, name
            for side_heads, side_dets in ((r.heads, r.detections), (heads, dets)):
                decoded = var.decoder.boxes(side_heads["box_encodings"])
                assert all(parity.anchor_of(box, decoded) is not None for box in side_dets["boxes"]), name
                found += len(side_dets["boxes"])
    assert found > 0
    models = {"fp32": (run_a / "models" / "fp32.tflite").read_bytes()}
    fp32 = parity.measure(run_a / "export" / "reference", models, (load_rgb(p) for p in find_images(calib_images)[0][:4]))
    assert fp32["fp32"].matched > 0 and fp32["fp32"].anchor_ties == 0


@pytest.mark.tf
def test_fp32_reproduces_the_reference_heads_on_the_tiny_model(run_a: Path, calib_images: Path) -> None:
    from liteship.converter.calibration import find_images, load_rgb

    paths = find_images(calib_images)[0][:4]
    models = {"fp32": (run_a / "models" / "fp32.tflite").read_bytes()}
    result = parity.measure(run_a / "export" / "reference", models, (load_rgb(p) for p in paths))["fp32"]
    assert result.images == 4
    assert result.heads["box_encodings"].max_abs < 1e-3
    assert result.heads["class_predictions"].max_abs < 1e-3
    assert result.heads["box_encodings"].nonfinite_variant == 0


def _full_size_int8() -> parity.ParityResult:
    """The int8 parity of the full-size SSD MobileNet v2 320 (random weights, 90 classes, 50
    photos) as `liteship run` measured it (docs/families.md): PSNR 32 / 40 dB, recall 0.986,
    the worst of 8.7 million class scores 0.35 apart (0.48 of their range)."""
    import json

    data = json.loads((Path(__file__).resolve().parent / "fixtures" / "parity_ssd320_int8.json").read_text())
    return parity.ParityResult.from_dict(data)


def test_a_correct_full_size_int8_model_passes_its_default_limits() -> None:
    """The worst single element grows with the number compared: 0.48 failed the former
    per-element limit (0.35, exit 31) on a correct model; for 8-bit variants it is reported,
    and a gates file can still set one."""
    import dataclasses

    r = _full_size_int8()
    assert r.heads["class_predictions"].elements == 8_722_350 and r.heads["class_predictions"].max_rel > 0.35
    checks = {c.id: c for c in judge.parity_checks(r, TOLERANCES[Variant.INT8])}
    assert [c.id for c in checks.values() if c.verdict == "fail"] == []
    rel = checks["parity.heads.class_predictions.max_rel"]
    assert rel.verdict == "n/a" and rel.found == pytest.approx(0.479, abs=1e-3) and "max |diff| 0.3512" in rel.message
    strict = dataclasses.replace(TOLERANCES[Variant.INT8], class_scores_max_rel=0.35)
    assert judge.parity_checks(r, strict) != judge.parity_checks(r, TOLERANCES[Variant.INT8])
    assert {c.id for c in judge.parity_checks(r, strict) if c.verdict == "fail"} == {"parity.heads.class_predictions.max_rel"}
    # the tensor-level limits still judge it: 5 dB less of class PSNR than measured fails
    low = dataclasses.replace(TOLERANCES[Variant.INT8], class_scores_min_psnr_db=r.heads["class_predictions"].psnr_db + 5)
    assert {c.id for c in judge.parity_checks(r, low) if c.verdict == "fail"} == {"parity.heads.class_predictions.psnr_db"}


def test_a_nan_head_fails_max_rel_without_a_per_element_limit() -> None:
    r = _result(variant="int8", heads={"box_encodings": _head(bad_var=1), "class_predictions": _head(lo=0, hi=1)})
    checks = {c.id: c for c in judge.parity_checks(r, TOLERANCES[Variant.INT8])}
    assert checks["parity.heads.box_encodings.max_rel"].verdict == "fail"
    assert checks["parity.heads.class_predictions.max_rel"].verdict == "n/a"


def test_the_mean_iou_check_says_how_many_anchor_ties_it_took_at_the_reference_anchor() -> None:
    import dataclasses

    result = dataclasses.replace(_full_size_int8(), anchor_ties=21, iou_as_matched={"count": 141, "mean": 0.7789})
    check = next(c for c in judge.parity_checks(result, TOLERANCES[Variant.INT8]) if c.id.endswith(".mean_iou"))
    assert "21 anchor tie(s) taken at the reference's anchor; as matched 0.7789" in check.message
    plain = next(c for c in judge.parity_checks(_full_size_int8(), TOLERANCES[Variant.INT8]) if c.id.endswith(".mean_iou"))
    assert "anchor" not in plain.message  # no anchor ties (a result cached before them): nothing said
