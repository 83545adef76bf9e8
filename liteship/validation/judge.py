"""The judge: the one place where measurements become verdicts, and verdicts an exit code.

Stages measure and return numbers (parity, mAP, app runs, lint facts, calibration
statistics). This module turns them into :class:`~liteship.types.Check` s with the limits of
:class:`~liteship.validation.gates.Gates` (data: built-in defaults, a TOML file, flags), and
:func:`decide` turns every check of a run into its outcome:

* a failed check fails its gate; the gate is named by the check id
  (:func:`gate_of`) and has its exit code: conversion 21, finite 31, detects 32, lint 30,
  parity 31, accuracy 32, device 33. With several failing gates the first in
  :data:`PRECEDENCE` gives the code (the sanity gates right after conversion: NaN outputs or
  no detections at all are the finding, whatever else fails); every failed check is listed.
* a skipped check (it applies, but could not run: a runtime missing, no images) fails
  the run with exit 3, naming what is missing, unless the user allowed that skip
  (``--allow-skip CHECK_ID``, or ``[skips] allow`` in the gates file; patterns as in
  :mod:`fnmatch`). Checks that do not apply are ``n/a`` and never fail.

Only gating checks reach :func:`decide`: contracts that are linted for information
(not named in ``Gates.contracts``) stay in the report's per-variant ``lint`` summary.
"""

from __future__ import annotations

import enum
import fnmatch
import math
from collections.abc import Mapping, Sequence
from typing import Any

from liteship.errors import (
    AccuracyGateFailed,
    ConversionProblem,
    DeviceParityFailed,
    EnvironmentProblem,
    LintFailed,
    LiteshipError,
    ParityFailed,
)
from liteship.types import Check, InputStats, Normalization, Verdict


class Gate(enum.StrEnum):
    CONVERSION = "conversion"
    #: the sanity gates come before the app contracts: a model that outputs NaN or detects
    #: nothing fails every app, and that is the finding to report (with parity's and accuracy's codes)
    FINITE = "finite"
    DETECTS = "detects"
    LINT = "lint"
    PARITY = "parity"
    ACCURACY = "accuracy"
    DEVICE = "device"


ERROR_OF_GATE: dict[Gate, type[LiteshipError]] = {
    Gate.CONVERSION: ConversionProblem,
    Gate.FINITE: ParityFailed,
    Gate.DETECTS: AccuracyGateFailed,
    Gate.LINT: LintFailed,
    Gate.PARITY: ParityFailed,
    Gate.ACCURACY: AccuracyGateFailed,
    Gate.DEVICE: DeviceParityFailed,
}

#: when several gates fail, the first here gives the exit code
PRECEDENCE: tuple[Gate, ...] = (Gate.CONVERSION, Gate.FINITE, Gate.DETECTS, Gate.LINT, Gate.PARITY, Gate.ACCURACY,
                                 Gate.DEVICE)

_WHAT_FAILED: dict[Gate, str] = {
    Gate.CONVERSION: "converted models failed their checks",
    Gate.FINITE: "outputs are not finite (NaN/Inf)",
    Gate.DETECTS: "the model detects nothing",
    Gate.LINT: "variants break the app contracts they must satisfy",
    Gate.PARITY: "parity with the desktop reference failed",
    Gate.ACCURACY: "accuracy gates failed",
    Gate.DEVICE: "the device's outputs differ from the desktop run",
}


def gate_of(check_id: str) -> Gate:
    """The gate a check belongs to, by its id (ids are documented in docs/report.md)."""
    if check_id == "finite":
        return Gate.FINITE
    if check_id == "detections.any":
        return Gate.DETECTS
    if check_id.startswith("lint."):
        return Gate.LINT
    if check_id.startswith(("parity", "finite")):
        return Gate.PARITY
    if check_id.startswith(("accuracy.", "detections.")):
        return Gate.ACCURACY
    if check_id.startswith("device."):
        return Gate.DEVICE
    return Gate.CONVERSION  # the converter's own contract: postprocess_op, litert_runs, calibration.input_range...


# ---------------------------------------------------------------------------- building checks


def threshold_check(cid: str, value: float | None, limit: float, *, at_most: bool, fix: str,
                    label: str = "", missing: str = "nothing to compare") -> Check:
    """``value <= limit`` (``at_most``) or ``value >= limit`` as a check.

    ``None`` (nothing was measured) is a skip saying ``missing``; NaN or infinity fails
    (a comparison with NaN is false both ways: it must never pass).
    """
    expected = f"{'<=' if at_most else '>='} {limit}"
    if value is None:
        return Check(cid, Verdict.SKIP, expected, None, f"{missing}{f' ({label})' if label else ''}")
    if not math.isfinite(value):
        return Check(cid, Verdict.FAIL, expected, str(value), f"not a finite number{f' ({label})' if label else ''}", fix)
    ok = value <= limit if at_most else value >= limit
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, expected, float(f"{value:.6g}"),
                 f"({label})" if label else "", "" if ok else fix)


def calibration_check(stats: InputStats, normalization: Normalization, normalization_source: str,
                      model_normalization: Normalization | None, feature_extractor: str | None) -> Check:
    """Calibration sanity: the representative inputs must span the model's input range."""
    from liteship.converter.calibration import check_stats_against_range

    problems = check_stats_against_range(stats)
    found = [round(stats.min, 4), round(stats.max, 4)]
    expected = [round(x, 4) for x in stats.expected_range]
    if not problems:
        return Check("calibration.input_range", Verdict.PASS, expected, found)
    if model_normalization is not None and model_normalization != normalization:
        problems.append(
            f"the calibration images were normalized with {normalization_source} {normalization_text(normalization)} "
            f"but the model's feature extractor {feature_extractor} expects {normalization_text(model_normalization)}")
        fix = (f"drop --norm-mean/--norm-std (the feature extractor's normalization is then used) or pass "
               f"--norm-mean {_csv(model_normalization.mean)} --norm-std {_csv(model_normalization.std)}")
    else:
        fix = (f"preprocess calibration images like the model ({normalization_source} "
               f"normalization mean {list(normalization.mean)}, std {list(normalization.std)})")
    return Check("calibration.input_range", Verdict.FAIL, expected, found, "; ".join(problems), fix)


def normalization_text(n: Normalization) -> str:
    return f"mean {_csv(n.mean)} std {_csv(n.std)}"


def _csv(values: Sequence[float]) -> str:
    vals = [f"{v:g}" for v in values]
    return vals[0] if len(set(vals)) == 1 else ",".join(vals)


def sanity_checks(run: Any, *, model: str) -> list[Check]:
    """``finite`` and ``detections.any`` of one model's run on the validation images
    (:class:`liteship.validation.app_run.ModelRun`); ``model`` names it in messages."""
    if run.images == 0:
        why = "no validation images (pass --ground-truth or --images)"
        return [Check("finite", Verdict.SKIP, "every output finite", None, why),
                Check("detections.any", Verdict.SKIP, f">= 1 detection with score >= {run.min_score}", None, why)]
    bad = {t: n for t, n in run.non_finite.items() if n}
    if bad:
        where = "; ".join(f"{t}: {n} NaN/Inf value(s), first on {run.first_non_finite[t]}" for t, n in bad.items())
        finite = Check("finite", Verdict.FAIL, "every output finite", {t: n for t, n in bad.items()},
                       f"{model} outputs NaN/Inf on the validation images ({where})",
                       "the weights or the conversion hold NaN/Inf: check the checkpoint (a diverged training run "
                       "saves NaN weights) and, if only one variant is affected, its quantization")
    else:
        finite = Check("finite", Verdict.PASS, "every output finite", f"{run.images} image(s), all finite")
    wanted = f">= 1 detection with score >= {run.min_score}"
    if run.detections_above == 0:
        detects = Check(
            "detections.any", Verdict.FAIL, wanted, 0,
            f"{model} detects nothing: no detection with score >= {run.min_score} on {run.images} validation image(s)",
            "likely causes: an untrained checkpoint (ckpt-0, before training), the wrong checkpoint or a training "
            "run that diverged; or score thresholds too high for this model (--score-threshold, [sanity] min_score)")
    else:
        detects = Check("detections.any", Verdict.PASS, wanted, run.detections_above,
                        f"on {run.images} validation image(s)")
    return [finite, detects]


def accuracy_checks(map50: Mapping[str, float | None], reference_map50: float | None, gates: Any,
                    baseline: str = "fp32") -> tuple[dict[str, list[Check]], list[Check]]:
    """Per-variant accuracy gates (drop below ``baseline``, minimum) and the reference's own
    (a reference mAP@0.5 of 0: the model detects nothing right)."""
    per: dict[str, list[Check]] = {name: [] for name in map50}
    base = map50.get(baseline)
    for name, value in map50.items():
        if name != baseline and base is not None:
            drop = None if value is None else base - value
            per[name].append(threshold_check(
                "accuracy.map50_drop_vs_fp32", drop, gates.max_map50_drop, at_most=True,
                fix="quantization costs accuracy: more/better calibration images", missing="no mAP measured"))
        if gates.min_map50 is not None:
            per[name].append(threshold_check("accuracy.min_map50", value, gates.min_map50, at_most=False,
                                             fix="the model is not accurate enough", missing="no mAP measured"))
    ref: list[Check] = []
    if reference_map50 is not None:
        ok = reference_map50 > 0
        ref.append(Check(
            "accuracy.reference_map50", Verdict.PASS if ok else Verdict.FAIL, "> 0", round(reference_map50, 6),
            "" if ok else "the desktop reference (the OD API model itself) finds none of the ground-truth objects",
            "" if ok else "likely causes: an untrained or wrong checkpoint, labels that do not match the ground "
                          "truth's class names, or ground truth of other images"))
    return per, ref


def lint_checks(contracts: Mapping[str, Any], gating: Sequence[str]) -> list[Check]:
    """The checks of the gating contracts, ids ``lint.<contract>.<check>``."""
    out: list[Check] = []
    for name in gating:
        for check in contracts[name].checks:
            out.append(Check(f"lint.{name}.{check.id}", check.verdict, check.expected, check.found,
                             check.message, check.fix))
    return out


_QUANT_FIX = "quantization moved the heads: see the per-layer attribution, try more or better calibration images"


def _measured(cid: str, value: float | None, limit: float, *, at_most: bool, fix: str, label: str = "") -> Check:
    """:func:`threshold_check` where ``None`` means the check does not apply (nothing above
    the threshold to compare): n/a, not a skip."""
    if value is None:
        return Check(cid, Verdict.NA, f"{'<=' if at_most else '>='} {limit}", None,
                     "nothing to compare (no detections above the threshold)")
    return threshold_check(cid, value, limit, at_most=at_most, fix=fix, label=label)


def _head_checks(prefix: str, h: Any, max_rel: float | None, min_psnr: float, max_abs: float | None) -> list[Check]:
    """Scale-aware head checks; the absolute numbers go into every message. ``max_rel`` None:
    the worst element is reported (an ``n/a`` check with the numbers), not judged."""
    if h.elements == 0 and not (h.nonfinite_reference or h.nonfinite_variant):
        return [Check(f"{prefix}.max_rel", Verdict.NA, f"<= {max_rel}", None, "no elements to compare")]
    if h.nonfinite_reference or h.nonfinite_variant:
        label = (f"NaN/Inf: {h.nonfinite_variant} value(s) in the variant, {h.nonfinite_reference} in the reference; "
                 "a NaN means overflow or a broken conversion or checkpoint")
    else:
        label = (f"reference range [{h.reference_min:.4g}, {h.reference_max:.4g}], RMS {h.reference_rms:.4g}; "
                 f"max |diff| {h.max_abs:.4g}, RMSE {h.rmse:.4g}")
    if max_rel is None and not (h.nonfinite_reference or h.nonfinite_variant):
        checks = [Check(f"{prefix}.max_rel", Verdict.NA, "reported, not judged", float(f"{h.max_rel:.6g}"),
                        f"worst element {h.max_rel:.3g} of the range ({label}); no per-element limit for this "
                        "variant by default (a gates file can set one): PSNR judges the tensor")]
    else:  # a NaN/Inf fails here whatever the limit
        checks = [threshold_check(f"{prefix}.max_rel", h.max_rel, max_rel if max_rel is not None else float("inf"),
                                  at_most=True, fix=_QUANT_FIX, label=label)]
    if h.psnr_db is None:  # bit-identical: no error to take a ratio of
        checks.append(Check(f"{prefix}.psnr_db", Verdict.PASS, f">= {min_psnr}", "exact", f"({label})"))
    else:
        checks.append(threshold_check(f"{prefix}.psnr_db", h.psnr_db, min_psnr, at_most=False, fix=_QUANT_FIX,
                                      label=label))
    if max_abs is not None:
        checks.append(threshold_check(f"{prefix}.max_abs", h.max_abs, max_abs, at_most=True, fix=_QUANT_FIX,
                                      label=label))
    return checks


def _anchor_ties(d: Any) -> str:
    """The mean IoU check's note: pairs from neighbouring anchors of a near-tie (docs/parity.md)."""
    as_matched = (d.iou_as_matched or {}).get("mean")
    if not d.anchor_ties or as_matched is None:
        return ""
    return (f"{d.anchor_ties} anchor tie(s) taken at the reference's anchor; "
            f"as matched {as_matched:.4f}")


def _detection_checks(prefix: str, d: Any, t: Any, fix_suffix: str = "") -> list[Check]:
    def fix(text: str) -> str:
        return f"{text}{fix_suffix}"

    ties = f"{d.ties_reference + d.ties_variant} near-tie(s) within {t.score_tie} not counted"
    return [
        _measured(f"{prefix}.recall", d.recall, t.min_recall, at_most=False,
                  fix=fix("the variant misses detections the reference makes"), label=ties),
        _measured(f"{prefix}.precision", d.precision, t.min_precision, at_most=False,
                  fix=fix("the variant makes detections the reference does not"), label=ties),
        _measured(f"{prefix}.class_agreement", d.class_agreement, t.min_class_agreement, at_most=False,
                  fix=fix("matched boxes disagree on the class")),
        _measured(f"{prefix}.mean_iou", d.iou["mean"], t.min_mean_iou, at_most=False,
                  fix=fix("boxes moved: check box decoding / scales"), label=_anchor_ties(d)),
        _measured(f"{prefix}.mean_score_delta", d.score_delta["mean"], t.max_mean_score_delta, at_most=True,
                  fix=fix("scores drifted")),
    ]


def parity_checks(result: Any, tolerance: Any) -> list[Check]:
    """The checks of one variant's :class:`~liteship.validation.parity.ParityResult` against
    its :class:`~liteship.validation.gates.Tolerance`."""
    t = tolerance
    checks = [
        *_head_checks("parity.heads.box_encodings", result.heads["box_encodings"], t.box_encodings_max_rel,
                      t.box_encodings_min_psnr_db, t.box_encodings_max_abs),
        *_head_checks("parity.heads.class_predictions", result.heads["class_predictions"], t.class_scores_max_rel,
                      t.class_scores_min_psnr_db, t.class_scores_max_abs),
        *_detection_checks("parity.detections", result, t),
    ]
    if result.app_path is not None:
        checks += _detection_checks("parity.letterbox", result.app_path, t,
                                    " -- on the app's letterbox path: check the resize, padding and box rescaling")
    return checks


# ---------------------------------------------------------------------------- the decision


def allowed(check_id: str, allow_skip: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(check_id, pattern) for pattern in allow_skip)


def mark_allowed_skips(groups: Mapping[str, Sequence[dict[str, Any]]], allow_skip: Sequence[str]) -> None:
    """Skipped checks the user allowed get ``"allowed": true`` (shown in every report)."""
    for checks in groups.values():
        for c in checks:
            if c["verdict"] == Verdict.SKIP and allowed(c["id"], allow_skip):
                c["allowed"] = True


def decide(groups: Mapping[str, Sequence[Mapping[str, Any]]], allow_skip: Sequence[str] = ()) -> LiteshipError | None:
    """The run's outcome from every gating check, grouped by what was checked (a variant
    name, ``reference``, a device): None, or the error whose exit code the run ends with."""
    failed: dict[Gate, list[str]] = {}
    skipped: list[tuple[str, Mapping[str, Any]]] = []
    for group, checks in groups.items():
        for c in checks:
            if c["verdict"] == Verdict.FAIL:
                failed.setdefault(gate_of(c["id"]), []).append(f"{group}:{c['id']}")
            elif c["verdict"] == Verdict.SKIP and not allowed(c["id"], allow_skip):
                skipped.append((group, c))
    for gate in PRECEDENCE:
        if gate in failed:
            names = failed[gate]
            others = [f"{g.value} ({len(failed[g])})" for g in PRECEDENCE if g in failed and g is not gate]
            also = f"; also failed: {', '.join(others)}" if others else ""
            err = ERROR_OF_GATE[gate](f"{_WHAT_FAILED[gate]}: {', '.join(names)} (see report.json){also}")
            err.failed_checks = tuple(n for g in PRECEDENCE for n in failed.get(g, []))
            return err
    if skipped:
        ids = sorted({c["id"] for _, c in skipped})
        reasons = "; ".join(f"{group}:{c['id']}: {c.get('message') or 'could not run'}" for group, c in skipped[:6])
        more = f" (+{len(skipped) - 6} more)" if len(skipped) > 6 else ""
        err = EnvironmentProblem(
            f"gating checks could not run here: {reasons}{more}",
            hint="install or repair what is missing, or accept running without it: "
                 + " ".join(f"--allow-skip {i}" for i in ids))
        err.failed_checks = tuple(f"{group}:{c['id']}" for group, c in skipped)
        return err
    return None
