"""Parity of a TFLite variant against the desktop reference, on the same inputs.

Measure only: :func:`measure` returns typed numbers; :func:`liteship.validation.judge.parity_checks`
judges them with the per-variant limits of :mod:`liteship.validation.gates` (data). Why each
limit is what it is: docs/parity.md.

* Heads: the reference's own ``preprocess`` output is fed to both sides (quantized with the
  model's input parameters for integer inputs), and the two tensors entering
  TFLite_Detection_PostProcess (box encodings, class scores after the score converter;
  dequantized when the variant's heads are integer, as in a full-uint8 QAT model) are
  compared elementwise with the reference ``heads`` signature. Measured scale-aware: the
  worst error relative to the reference tensor's range, and the PSNR (``20 log10(range /
  RMSE)``, the peak signal-to-noise ratio Qualcomm AI Hub reports for outputs), with the
  absolute numbers alongside. A NaN or infinity on either side makes every statistic of
  that head NaN (it is never a small difference) and is counted per side.
* Detections: the reference ``detect`` signature (the OD API's own postprocess with the op's
  NMS settings and the op's box convention: unclipped, nothing dropped) vs the variant's
  outputs, matched greedily by IoU >= 0.5 among detections scoring >= ``score_threshold``.
  Tie-aware: an unmatched detection is not a miss (or an extra) when its score is within the
  variant's ``score_tie`` of the threshold or of the top-N cut, or when the other side has an
  unmatched, overlapping detection within ``score_tie`` of its score (NMS kept the other one
  of a near-tie). The mean IoU is anchor-aware: a matched pair whose two detections were
  decoded from different anchors at scores within ``score_tie`` (NMS kept a neighbouring
  anchor of a near-tie) is an anchor tie, and its IoU is taken at the reference's anchor
  (the variant's own box there, decoded from its heads with the op's anchors and scales);
  the IoU of the boxes as matched is reported beside it (``iou_as_matched``).
* App path (letterboxed models only): each variant also runs on the photo letterboxed the way
  the app must do it (:mod:`liteship.converter.letterbox`), its boxes mapped back to photo
  pixels with the app's rescaling, against the reference's detections on the same photo
  through the model's own keep-aspect preprocess, mapped with the model's own resized size.
  Both sides are clipped to the photo and boxes left with no area dropped, identically.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.converter.letterbox import ResizeSpec, boxes_to_pixels, letterbox
from liteship.converter.mediapipe_metadata import DetectorOptions, anchors_from_odapi
from liteship.tflite_inspect import inspect_model
from liteship.types import DEFAULT_NORMALIZATION, Normalization
from liteship.validation.detect import decode_outputs
from liteship.validation.raw_heads import decode_boxes
from liteship.validation.reference import Reference, ReferenceRun

HEADS = ("box_encodings", "class_predictions")
IOU_MATCH = 0.5


# --- typed results ------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadStats:
    """One head tensor, variant vs reference, over every element of every image."""

    elements: int
    max_abs: float | None
    mean_abs: float | None
    rmse: float | None
    reference_min: float | None
    reference_max: float | None
    reference_rms: float | None
    #: max_abs / (reference_max - reference_min)
    max_rel: float | None
    #: 20 log10(range / rmse); None when the error is exactly 0 (``rmse == 0``)
    psnr_db: float | None
    nonfinite_reference: int
    nonfinite_variant: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DetectionStats:
    """IoU-matched detections above the threshold, tie-aware."""

    reference_detections: int
    variant_detections: int
    matched: int
    misses: int  # unmatched reference detections that are not ties
    extras: int  # unmatched variant detections that are not ties
    ties_reference: int  # unmatched reference detections excused as ties
    ties_variant: int
    class_agreement: float | None
    recall: float | None
    precision: float | None
    iou: dict[str, Any]  # summary + histogram, anchor ties taken at the reference's anchor
    score_delta: dict[str, Any]  # |score_ref - score_variant| of matched pairs
    nonfinite_reference: int  # NaN/inf in the boxes or scores each side returned
    nonfinite_variant: int
    #: matched pairs from different anchors at near-equal scores (see the module docstring)
    anchor_ties: int = 0
    #: the IoU summary of the boxes as the two sides output them (anchor ties included)
    iou_as_matched: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParityResult:
    variant: str
    images: int
    score_threshold: float
    score_tie: float
    heads: dict[str, HeadStats]
    reference_detections: int
    variant_detections: int
    matched: int
    misses: int
    extras: int
    ties_reference: int
    ties_variant: int
    class_agreement: float | None
    recall: float | None
    precision: float | None
    iou: dict[str, Any]
    score_delta: dict[str, Any]
    nonfinite_detections: dict[str, int]
    #: letterboxed models: the app's letterbox + box rescaling vs the model's own preprocess
    app_path: DetectionStats | None = None
    resize: str = "stretch"
    anchor_ties: int = 0
    iou_as_matched: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["heads"] = {k: v.to_dict() for k, v in self.heads.items()}
        d["app_path"] = self.app_path.to_dict() if self.app_path is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityResult:
        """The inverse of :meth:`to_dict` (the step cache stores results as JSON)."""
        app = d.get("app_path")
        return cls(**{**d, "heads": {k: HeadStats(**v) for k, v in d["heads"].items()},
                      "app_path": DetectionStats(**app) if app is not None else None})


# --- matching -------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of [N,4] x [M,4] boxes in (ymin, xmin, ymax, xmax).

    y and x are handled together (half the NumPy calls: this runs per image and variant).
    """
    a, b = a[:, None, :], b[None, :, :]
    overlap = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = overlap[..., 0] * overlap[..., 1]
    size_a = np.clip(a[..., 2:] - a[..., :2], 0, None)
    size_b = np.clip(b[..., 2:] - b[..., :2], 0, None)
    area_a = size_a[..., 0] * size_a[..., 1]
    area_b = size_b[..., 0] * size_b[..., 1]
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def match(ref: dict[str, np.ndarray], var: dict[str, np.ndarray], iou_threshold: float = IOU_MATCH) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU, highest reference score first.

    Each reference detection takes the unused variant detection with the highest IoU (the
    lowest index among equal ones), if that IoU reaches ``iou_threshold``.

    This runs per image and variant with up to max_detections (often 100) per side, so it
    avoids Python over the N x M matrix: when no variant detection is a candidate of two
    reference detections (the usual case: NMS leaves boxes that barely overlap), every
    reference row simply takes its best candidate, which is what the greedy order gives.
    Only the rows that compete for a column go through the greedy loop, in score order.
    """
    n, m = len(ref["scores"]), len(var["scores"])
    if n == 0 or m == 0:
        return []
    iou = _iou(ref["boxes"], var["boxes"])
    ok = iou >= iou_threshold
    rows = np.flatnonzero(ok.any(axis=1))
    if rows.size == 0:
        return []
    # greedy order: score descending, index ascending among equal scores (a stable sort)
    order = rows[np.argsort(-ref["scores"][rows], kind="stable")]
    candidates = np.where(ok[order], iou[order], -1.0)
    if (ok[order].sum(axis=0) <= 1).all():  # no column is wanted by two rows
        best = candidates.argmax(axis=1)  # argmax takes the lowest index among equal IoUs
        return [(int(i), int(j), float(iou[i, j])) for i, j in zip(order, best)]
    pairs: list[tuple[int, int, float]] = []
    for i, row in zip(order.tolist(), candidates):
        j = int(row.argmax())
        if row[j] < 0:
            continue
        pairs.append((i, j, float(iou[i, j])))
        candidates[:, j] = -1.0
    return pairs


@dataclass(frozen=True)
class ImageMatch:
    """One image's tie-aware matching (see :func:`match_tie_aware`)."""

    pairs: list[tuple[int, int, float]]
    misses: list[int]  # reference indices (into the kept reference detections)
    extras: list[int]  # variant indices
    ties_reference: list[int]
    ties_variant: list[int]


def match_tie_aware(
    ref: dict[str, np.ndarray],
    var: dict[str, np.ndarray],
    threshold: float,
    tie: float,
    ref_cut: float | None = None,
    var_cut: float | None = None,
) -> ImageMatch:
    """:func:`match`, then the unmatched detections that are ties are told apart from misses.

    ``ref``/``var``: detections scoring >= ``threshold``. ``ref_cut``/``var_cut``: the lowest
    score of that side's full top-N list when the op returned N detections (a candidate of
    the other side just below it was cut by N, not by the model), else None.

    An unmatched detection with score ``s`` is a tie when ``s < threshold + tie`` (the other
    side may have scored it just below the threshold), when ``s <= cut + tie`` for the other
    side's top-N cut, or when it overlaps an unmatched detection of the other side whose
    score is within ``tie`` of ``s`` (NMS kept the other box of a near-equal pair).
    """
    pairs = match(ref, var)
    matched_r = {i for i, _, _ in pairs}
    matched_v = {j for _, j, _ in pairs}
    un_r = [i for i in range(len(ref["scores"])) if i not in matched_r]
    un_v = [j for j in range(len(var["scores"])) if j not in matched_v]
    tie_r: set[int] = set()
    tie_v: set[int] = set()
    if un_r and un_v:  # near-equal overlapping pairs NMS resolved differently
        overlap = _iou(ref["boxes"][un_r], var["boxes"][un_v])
        for a, i in enumerate(un_r):
            for b, j in enumerate(un_v):
                if j not in tie_v and overlap[a, b] > 0 and abs(float(ref["scores"][i]) - float(var["scores"][j])) <= tie:
                    tie_r.add(i)
                    tie_v.add(j)
                    break

    def borderline(score: float, other_cut: float | None) -> bool:
        return score < threshold + tie or (other_cut is not None and score <= other_cut + tie)

    tie_r |= {i for i in un_r if borderline(float(ref["scores"][i]), var_cut)}
    tie_v |= {j for j in un_v if borderline(float(var["scores"][j]), ref_cut)}
    return ImageMatch(
        pairs=pairs,
        misses=[i for i in un_r if i not in tie_r],
        extras=[j for j in un_v if j not in tie_v],
        ties_reference=sorted(tie_r),
        ties_variant=sorted(tie_v),
    )


# --- streaming accumulators -----------------------------------------------------------------


@dataclass
class _Stats:
    values: list[float] = field(default_factory=list)

    def add(self, v: Iterable[float]) -> None:
        self.values.extend(float(x) for x in v)

    def summary(self) -> dict[str, float | None]:
        if not self.values:
            return {"count": 0, "mean": None, "max": None, "min": None}
        a = np.asarray(self.values)
        return {"count": int(a.size), "mean": float(a.mean()), "max": float(a.max()), "min": float(a.min())}


def _all_finite(a: np.ndarray) -> bool:
    """One pass: a float64 sum of float32 values cannot overflow, so it is finite exactly
    when every element is (NaN and inf propagate)."""
    return bool(np.isfinite(np.add.reduce(a, axis=None, dtype=np.float64)))


@dataclass(frozen=True)
class _ReferenceSums:
    finite: bool
    minimum: float
    maximum: float
    sum_sq: float


def _sum_sq(a: np.ndarray) -> float:
    """Sum of squares in float64 without BLAS: ``np.dot`` goes to OpenBLAS, whose threads
    fight LiteRT's and TensorFlow's for the cores. With TF loaded on 2 busy cores a dot over
    a 1917 x 91 class head took ~10 ms instead of 0.01 ms (the ssd320 harness overhead)."""
    return float(np.einsum("i,i->", a, a))


#: the reference heads summed last, with their sums: every variant is compared with the
#: same reference arrays for an image, so they are summed once, not once per variant (the
#: entries keep the arrays alive, so an identity match is never a recycled id)
_recent_references: list[tuple[np.ndarray, _ReferenceSums]] = []


def _reference_sums(ref: np.ndarray) -> _ReferenceSums:
    for array, sums in _recent_references:
        if array is ref:
            return sums
    if ref.size == 0 or not _all_finite(ref):
        sums = _ReferenceSums(ref.size == 0, math.inf, -math.inf, 0.0)
    else:
        flat = ref.ravel().astype(np.float64, copy=False)
        sums = _ReferenceSums(True, float(flat.min()), float(flat.max()), _sum_sq(flat))
    _recent_references[:] = [*_recent_references[-3:], (ref, sums)]  # one image's heads, and the last's
    return sums


class _HeadAccumulator:
    """max/sum of |diff|, sum of diff^2, reference min/max/sum of squares. NaN-safe: non-finite
    elements are counted per side and left out of the sums, and any count > 0 makes every
    statistic NaN (a NaN is never a small difference; the counts say where it was)."""

    def __init__(self) -> None:
        self.n = 0
        self.max_abs = 0.0
        self.sum_abs = 0.0
        self.sum_sq = 0.0
        self.ref_min = math.inf
        self.ref_max = -math.inf
        self.ref_sum_sq = 0.0
        self.bad_ref = 0
        self.bad_var = 0

    def add(self, var: np.ndarray, ref: np.ndarray) -> None:
        var, ref = np.asarray(var), np.asarray(ref)
        r = _reference_sums(ref)
        if r.finite and _all_finite(var):
            # the usual case, in a few passes over the (up to A x classes) heads: the
            # difference is taken in float64, exact for float32 operands
            diff = np.subtract(var, ref, dtype=np.float64).ravel()
            self.n += diff.size
            if diff.size == 0:
                return
            self.sum_sq += _sum_sq(diff)
            np.abs(diff, out=diff)
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.sum_abs += float(diff.sum())
            self.ref_min = min(self.ref_min, r.minimum)
            self.ref_max = max(self.ref_max, r.maximum)
            self.ref_sum_sq += r.sum_sq
            return
        var = var.astype(np.float64)
        ref = ref.astype(np.float64)
        ok_var, ok_ref = np.isfinite(var), np.isfinite(ref)
        self.bad_var += int(var.size - np.count_nonzero(ok_var))
        self.bad_ref += int(ref.size - np.count_nonzero(ok_ref))
        both = ok_var & ok_ref
        var, ref = var[both], ref[both]
        if ref.size == 0:
            return
        diff = np.subtract(var, ref)
        self.n += diff.size
        self.sum_sq += _sum_sq(diff)
        np.abs(diff, out=diff)
        self.max_abs = max(self.max_abs, float(diff.max()))
        self.sum_abs += float(diff.sum())
        self.ref_min = min(self.ref_min, float(ref.min()))
        self.ref_max = max(self.ref_max, float(ref.max()))
        self.ref_sum_sq += _sum_sq(ref)

    def result(self) -> HeadStats:
        if self.bad_ref or self.bad_var:
            nan = math.nan
            return HeadStats(self.n, nan, nan, nan, nan, nan, nan, nan, nan, self.bad_ref, self.bad_var)
        if self.n == 0:
            return HeadStats(0, None, None, None, None, None, None, None, None, self.bad_ref, self.bad_var)
        rmse = math.sqrt(self.sum_sq / self.n)
        span = self.ref_max - self.ref_min
        return HeadStats(
            elements=self.n,
            max_abs=self.max_abs,
            mean_abs=self.sum_abs / self.n,
            rmse=rmse,
            reference_min=self.ref_min,
            reference_max=self.ref_max,
            reference_rms=math.sqrt(self.ref_sum_sq / self.n),
            max_rel=self.max_abs / span if span > 0 else (0.0 if self.max_abs == 0 else math.inf),
            psnr_db=(20.0 * math.log10(span / rmse) if span > 0 else -math.inf) if rmse > 0 else None,
            nonfinite_reference=self.bad_ref,
            nonfinite_variant=self.bad_var,
        )


class _DetectionAccumulator:
    def __init__(self) -> None:
        self.ref = self.var = self.matched = self.same_class = 0
        self.misses = self.extras = self.ties_ref = self.ties_var = 0
        self.bad_ref = self.bad_var = 0
        self.iou = _Stats()
        self.iou_as_matched = _Stats()
        self.anchor_ties = 0
        self.dscore = _Stats()

    def add(self, ref_all: dict[str, np.ndarray], var_all: dict[str, np.ndarray], threshold: float, tie: float,
            max_detections: int | None, cuts: tuple[float | None, float | None] | None = None,
            decode: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """``cuts``: each side's top-N cut when the lists given are not the op's (some dropped
        after it ran), else computed from the lists with ``max_detections``. ``decode()``: every
        anchor's box decoded from (the reference's, the variant's) heads, in the lists'
        coordinates, called only when a pair is a near-tie; without it every pair's IoU is taken
        as matched."""
        ref_all, bad_r = _finite(ref_all)
        var_all, bad_v = _finite(var_all)
        self.bad_ref += bad_r
        self.bad_var += bad_v
        ref, var = _above(ref_all, threshold), _above(var_all, threshold)
        ref_cut, var_cut = cuts if cuts is not None else (_cut(ref_all, max_detections), _cut(var_all, max_detections))
        m = match_tie_aware(ref, var, threshold, tie, ref_cut, var_cut)
        self.ref += len(ref["scores"])
        self.var += len(var["scores"])
        self.matched += len(m.pairs)
        self.misses += len(m.misses)
        self.extras += len(m.extras)
        self.ties_ref += len(m.ties_reference)
        self.ties_var += len(m.ties_variant)
        if m.pairs:
            self.same_class += sum(int(ref["classes"][i] == var["classes"][j]) for i, j, _ in m.pairs)
            ious = [iou for _, _, iou in m.pairs]
            self.iou_as_matched.add(ious)
            if decode is not None:
                ious, ties = _anchor_aware_ious(m.pairs, ref, var, tie, decode)
                self.anchor_ties += ties
            self.iou.add(ious)
            self.dscore.add(abs(float(ref["scores"][i]) - float(var["scores"][j])) for i, j, _ in m.pairs)

    def result(self) -> DetectionStats:
        ious = np.asarray(self.iou.values)
        hist, edges = np.histogram(ious, bins=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0 + 1e-9])
        return DetectionStats(
            reference_detections=self.ref,
            variant_detections=self.var,
            matched=self.matched,
            misses=self.misses,
            extras=self.extras,
            ties_reference=self.ties_ref,
            ties_variant=self.ties_var,
            class_agreement=self.same_class / self.matched if self.matched else None,
            recall=self.matched / (self.matched + self.misses) if self.matched + self.misses else None,
            precision=self.matched / (self.matched + self.extras) if self.matched + self.extras else None,
            iou={**self.iou.summary(), "histogram": {"edges": [round(e, 3) for e in edges], "counts": hist.tolist()}},
            score_delta=self.dscore.summary(),
            nonfinite_reference=self.bad_ref,
            nonfinite_variant=self.bad_var,
            anchor_ties=self.anchor_ties,
            iou_as_matched=self.iou_as_matched.summary(),
        )


#: a detection box is the decoded box of an anchor when they agree to this (normalized
#: coordinates: 0.6 px at 640). Measured: 1.2e-7 on a full-size int8 ResNet50-FPN, both
#: sides; an fp16 model's anchors are rounded to fp16 (up to 2.3e-5 on 0..1.65), so the
#: reference's boxes decoded with them are off by up to about 5e-4. A box no anchor decodes
#: to (another box coder, clipping) has no anchor: its pair keeps its IoU.
ANCHOR_MATCH = 1e-3


def anchor_of(box: np.ndarray, decoded: np.ndarray) -> int | None:
    """The anchor whose decoded box ``box`` is, or None."""
    err = np.abs(decoded - box).max(axis=1)
    k = int(err.argmin())
    return k if err[k] <= ANCHOR_MATCH else None


def _anchor_aware_ious(pairs: list[tuple[int, int, float]], ref: dict[str, np.ndarray], var: dict[str, np.ndarray],
                       tie: float, decode: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[list[float], int]:
    """Each pair's IoU, an anchor tie's taken at the reference's anchor; and the anchor ties.

    Why: with near-equal scores on neighbouring anchors, NMS may keep another anchor on each
    side. The two boxes then differ by what two anchors' regressions differ by, not by the
    variant's error: on a random full-size ResNet50-FPN's int8, 22 of 141 pairs were such,
    mean IoU 0.58 as matched but 0.81 at the same anchor, like the other 119 (0.82)."""
    ious, ties = [], 0
    decoded: tuple[np.ndarray, np.ndarray] | None = None  # every anchor's box: decoded once, if needed
    for i, j, iou in pairs:
        if abs(float(ref["scores"][i]) - float(var["scores"][j])) <= tie:
            if decoded is None:
                decoded = decode()
            ref_decoded, var_decoded = decoded
            a_ref, a_var = anchor_of(ref["boxes"][i], ref_decoded), anchor_of(var["boxes"][j], var_decoded)
            if a_ref is not None and a_var is not None and a_ref != a_var:
                ties += 1
                iou = float(_iou(ref["boxes"][i:i + 1], var_decoded[a_ref:a_ref + 1])[0, 0])
        ious.append(iou)
    return ious, ties


def _finite(d: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Detections with a NaN/inf box or score removed, and how many there were."""
    ok = np.isfinite(d["scores"]) & np.isfinite(d["boxes"]).all(axis=1)
    if ok.all():
        return d, 0
    return {k: v[ok] for k, v in d.items()}, int(ok.size - np.count_nonzero(ok))


def _cut(d: dict[str, np.ndarray], max_detections: int | None) -> float | None:
    n = len(d["scores"])
    return float(d["scores"].min()) if max_detections and n >= max_detections and n else None


def _above(d: dict[str, np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    keep = d["scores"] >= threshold
    if keep.all():
        return d
    return {k: v[keep] for k, v in d.items()}


# --- the variant side -------------------------------------------------------------------------


def _postprocess_runs_last(info: Any) -> bool:
    """True when TFLite_Detection_PostProcess is the last operator of the only subgraph.

    Its two inputs (the raw heads) then still hold their values after ``invoke``: the
    arena reuses a tensor's memory only for tensors of later operators, and there are none.
    """
    return info.subgraph_count == 1 and info.postprocess[0].operator_index == sum(info.op_counts.values()) - 1


@dataclass(frozen=True)
class BoxDecoder:
    """The box decoding of a variant's ``TFLite_Detection_PostProcess``: its anchors (the op's
    third input: a constant, or in an fp16 model a DEQUANTIZE op's output) and box-coder scales
    (its options), for either side's heads."""

    options: DetectorOptions

    def boxes(self, encodings: np.ndarray) -> np.ndarray:
        return decode_boxes(encodings, self.options)


def _op_decoder(it: Any, op: Any, details: dict[int, dict[str, Any]]) -> BoxDecoder | None:
    """None when the op's anchors cannot be read or its scales are not all set. Read after an
    invoke, for the same reason as the heads (:func:`_postprocess_runs_last`)."""
    o = op.options
    scales = (o.y_scale, o.x_scale, o.h_scale, o.w_scale)
    if len(op.inputs) < 3 or any(v is None or not v for v in scales):
        return None
    d = details[op.inputs[2]]
    try:
        anchors = it.get_tensor(op.inputs[2])
    except ValueError:  # not a readable constant
        return None
    scale, zero = d["quantization"]
    anchors = (anchors.astype(np.float32) - zero) * np.float32(scale) if np.issubdtype(anchors.dtype, np.integer) else anchors
    anchors = np.asarray(anchors, np.float32).reshape(-1, 4)
    if int(np.prod(details[op.inputs[0]]["shape"])) != anchors.size or not np.isfinite(anchors).all():
        return None
    return BoxDecoder(DetectorOptions(anchors=anchors_from_odapi(anchors), num_classes=0, y_scale=float(o.y_scale),
                                      x_scale=float(o.x_scale), h_scale=float(o.h_scale), w_scale=float(o.w_scale)))


class VariantModel:
    """One variant in the LiteRT interpreter, as an app runs it (default XNNPack delegate)."""

    def __init__(self, model: bytes, num_threads: int = 2, unfold: Any = None) -> None:
        """``unfold``: the Normalization folded into this variant's graph (its input takes
        0-255 pixels): the reference's preprocessed image is mapped back with it."""
        from ai_edge_litert.interpreter import Interpreter

        from liteship import nativelog

        info = inspect_model(model)
        if not info.postprocess:
            raise ValueError("no TFLite_Detection_PostProcess op")
        self.head_tensors = info.postprocess[0].inputs[:2]
        self.max_detections = info.postprocess[0].options.max_detections
        self.role_index = {r: info.outputs[i].index for i, r in enumerate(info.output_roles) if r is not None}
        # experimental_preserve_all_tensors keeps every intermediate tensor (no arena reuse):
        # about 2x slower invokes, so only when the heads could be overwritten otherwise
        preserve = not _postprocess_runs_last(info)
        with warnings.catch_warnings(), nativelog.captured():
            warnings.simplefilter("ignore")  # preserve_all_tensors "is for debugging"
            self.it = Interpreter(model_content=model, num_threads=num_threads, experimental_preserve_all_tensors=preserve)
            self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.preserve_all_tensors = preserve
        self._quantized = np.issubdtype(self.inp["dtype"], np.integer)
        if self._quantized:
            scale, zero = self.inp["quantization"]
            limits = np.iinfo(self.inp["dtype"])
            self._quant = (scale, zero, limits.min, limits.max)
        self._buffer: np.ndarray | None = None
        self._unfold = None
        if unfold is not None:
            self._unfold = (np.asarray(unfold.std, np.float32), np.asarray(unfold.mean, np.float32))
        details = {d["index"]: d for d in self.it.get_tensor_details()}
        #: integer heads (a full-uint8 QAT model): (scale, zero_point) to dequantize them with
        self.head_quantization: dict[str, tuple[float, int] | None] = {}
        for key, index in zip(HEADS, self.head_tensors):
            d = details[index]
            scale, zero = d["quantization"]
            integer = np.issubdtype(d["dtype"], np.integer)
            if integer and not scale:
                raise ValueError(f"head {d['name']!r} is {np.dtype(d['dtype']).name} without quantization parameters")
            self.head_quantization[key] = (float(scale), int(zero)) if integer else None
        self._postprocess, self._details = info.postprocess[0], details
        #: set by the first :meth:`run` (see there); None: the op's decoding could not be read
        self.decoder: BoxDecoder | None = None
        self._decoder_read = False

    def input_for(self, pre: np.ndarray) -> np.ndarray:
        """The reference's preprocessed image as this variant's input: first mapped back to
        0-255 pixels (``pre * std + mean``) for a variant with the normalization folded in,
        then quantized for integer inputs (``clip(round(x / scale) + zero_point)``, computed
        in place in one buffer)."""
        if self._unfold is not None:
            std, mean = self._unfold
            pre = (pre * std + mean).astype(np.float32, copy=False)  # the 0-255 pixels
        if not self._quantized:
            return pre.astype(self.inp["dtype"], copy=False)
        return self._quantize(pre)

    def _quantize(self, pre: np.ndarray) -> np.ndarray:
        scale, zero, lo, hi = self._quant
        buf = self._buffer
        if buf is None or buf.shape != pre.shape or buf.dtype != pre.dtype:
            buf = self._buffer = np.empty_like(pre)
        np.divide(pre, scale, out=buf)
        np.rint(buf, out=buf)
        buf += zero
        np.clip(buf, lo, hi, out=buf)
        return buf.astype(self.inp["dtype"])

    def app_input(self, pixels: np.ndarray, normalization: Normalization) -> np.ndarray:
        """An HxWx3 image (uint8 or float pixel values) already at the input size, as an app
        feeds it: pixels for a uint8 input (rounded) or a folded normalization, else
        ``(pixel - mean) / std`` (quantized for int8)."""
        if self.inp["dtype"] == np.uint8:
            return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)[None]
        if self._unfold is not None:
            x = pixels[None].astype(np.float32)
            return self._quantize(x) if self._quantized else x
        mean, std = normalization.channel_arrays()
        return self.input_for(((pixels[None].astype(np.float32) - mean) / std).astype(np.float32))

    def invoke(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The first ``count`` detections (boxes normalized to the input, unclipped, as the op writes them)."""
        self.it.set_tensor(self.inp["index"], x)
        self.it.invoke()
        boxes, classes, scores = decode_outputs({role: self.it.get_tensor(i) for role, i in self.role_index.items()})
        return {"boxes": boxes, "classes": np.nan_to_num(classes).astype(np.int64), "scores": scores}

    def heads(self) -> dict[str, np.ndarray]:
        """The two tensors entering the postprocess op after the last invoke, as real numbers."""
        out = {}
        for key, index in zip(HEADS, self.head_tensors):
            value = self.it.get_tensor(index)
            q = self.head_quantization[key]
            out[key] = value if q is None else (value.astype(np.float32) - q[1]) * np.float32(q[0])
        return out

    def run(self, pre: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        dets = self.invoke(self.input_for(pre))
        if not self._decoder_read:
            # after an invoke, like the heads: in an fp16 model the anchors are a DEQUANTIZE
            # op's output, garbage (NaN, 1e13) until it has run
            self.decoder = _op_decoder(self.it, self._postprocess, self._details)
            self._decoder_read = True
        return self.heads(), dets


# --- measuring -------------------------------------------------------------------------------


def compare_step(
    acc: dict[str, Any],
    var: VariantModel,
    pre: np.ndarray,
    ref_heads: dict[str, np.ndarray],
    ref_dets: dict[str, np.ndarray],
    score_threshold: float,
    score_tie: float = 0.0,
) -> None:
    """One image through one variant, compared with the reference's results for it.

    Everything :func:`measure` does per variant and image (scripts/bench.py times exactly
    this against a bare ``invoke``). ``ref_dets``: all the reference's detections (the
    threshold is applied here, on both sides alike).
    """
    heads, dets = var.run(pre)
    accumulate(acc, heads, dets, ref_heads, ref_dets, score_threshold, score_tie, var.max_detections, var.decoder)


def accumulate(
    acc: dict[str, Any],
    heads: dict[str, np.ndarray],
    dets: dict[str, np.ndarray],
    ref_heads: dict[str, np.ndarray],
    ref_dets: dict[str, np.ndarray],
    score_threshold: float,
    score_tie: float,
    max_detections: int | None,
    decoder: BoxDecoder | None = None,
) -> None:
    """The comparison half of :func:`compare_step`, on a variant's outputs for one image
    (``decoder``: the variant's op's anchors and scales, for the anchor-aware IoU)."""
    for key, stat in acc["heads"].items():
        stat.add(heads[key], ref_heads[key])
    def decode() -> tuple[np.ndarray, np.ndarray]:
        assert decoder is not None
        with np.errstate(all="ignore"):  # a broken variant's heads (inf, huge): its boxes match no anchor
            return decoder.boxes(ref_heads["box_encodings"]), decoder.boxes(heads["box_encodings"])

    acc["det"].add(ref_dets, dets, score_threshold, score_tie, max_detections,
                   decode=decode if decoder is not None else None)


def _clip_and_drop(d: dict[str, np.ndarray], h: int, w: int) -> dict[str, np.ndarray]:
    """What an app does with detections in photo pixels: clip to the photo, drop empty boxes."""
    boxes = np.clip(d["boxes"], 0, [h, w, h, w]).astype(np.float32)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    out = {**d, "boxes": boxes}
    return out if keep.all() else {k: v[keep] for k, v in out.items()}


def od_api_bilinear(rgb: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """The keep-aspect resizer's own resize (``resize_to_range``: TF1 ``resize_images``
    bilinear, ``align_corners=False``, no half-pixel centres), as float pixel values: not
    rounded, so that a float variant sees exactly the reference's input when (and only when)
    the letterbox geometry is right."""
    import tensorflow as tf

    out = tf.compat.v1.image.resize_images(tf.constant(rgb, tf.float32), [new_h, new_w],
                                           method=tf.compat.v1.image.ResizeMethod.BILINEAR, align_corners=False)
    return out.numpy().astype(np.float32)


def app_path_step(
    acc: _DetectionAccumulator,
    var: VariantModel,
    rgb: np.ndarray,
    ref: ReferenceRun,
    spec: ResizeSpec,
    normalization: Normalization,
    score_threshold: float,
    score_tie: float,
) -> None:
    """The letterbox contract on one photo: the app's letterbox + rescaling vs the model's own.

    The photo is resized with the OD API's own bilinear kernel (:func:`od_api_bilinear`), so
    that what is compared is the geometry an app must get right (fitted size, top-left
    placement, pad colour, box rescaling), not the choice of resampling filter, which
    differs between image libraries for every model, letterboxed or not."""
    h, w = rgb.shape[:2]
    pixels, fitted = letterbox(rgb, spec, od_api_bilinear)
    dets = var.invoke(var.app_input(pixels, normalization))
    var_px = {**dets, "boxes": boxes_to_pixels(dets["boxes"], spec, h, w, fitted).astype(np.float32)}
    ref_d = ref.detections
    ref_px = {**ref_d, "boxes": boxes_to_pixels(ref_d["boxes"], spec, h, w, ref.true_image_shape).astype(np.float32)}
    # the op's top-N cut applies here too (a near-equal pair swapped at the cut of a full
    # list is a tie, as on the network path). It is the cut of the op's lists, taken before
    # the clipping drops boxes outside the photo: a list shortened by that was still cut at N
    # (measured on the full-size EfficientDet-D0, where many boxes of a random model lie in
    # the padding: without this, dynamic's letterbox recall was 0.92 against 1.0 on the
    # network path, the misses all just below the other side's cut)
    cuts = (_cut(_finite(ref_px)[0], var.max_detections), _cut(_finite(var_px)[0], var.max_detections))
    acc.add(_clip_and_drop(ref_px, h, w), _clip_and_drop(var_px, h, w), score_threshold, score_tie,
            var.max_detections, cuts)


def measure(
    reference_dir: Path,
    models: dict[str, bytes],
    images: Iterable[np.ndarray],
    score_threshold: float = 0.3,
    folded: dict[str, Any] | None = None,
    score_ties: Mapping[str, float] | None = None,
    resize: ResizeSpec | None = None,
    normalization: Normalization = DEFAULT_NORMALIZATION,
) -> dict[str, ParityResult]:
    """Stream ``images`` (uint8 HxWx3) once through the reference and every variant.

    ``folded``: variant -> the Normalization folded into its graph (liteship.converter.normfold).
    ``score_ties``: per variant name, the score difference counted as a tie (default: that
    variant's ``score_tie`` in the built-in gates). ``resize``: a letterbox spec adds the
    app-path comparison (``normalization``: what the app applies, i.e. the model's metadata).
    """
    ref = Reference(reference_dir)
    folded = folded or {}
    variants = {name: VariantModel(model, unfold=folded.get(name)) for name, model in models.items()}
    ties = {name: _default_tie(name, score_ties) for name in variants}
    app = resize is not None and resize.letterbox
    acc = {name: new_accumulator() for name in variants}
    if app:
        for a in acc.values():
            a["app"] = _DetectionAccumulator()
    count = 0
    for rgb in images:
        count += 1
        r = ref.run_full(rgb)
        for name, var in variants.items():
            compare_step(acc[name], var, r.preprocessed, r.heads, r.detections, score_threshold, ties[name])
            if app:
                assert resize is not None
                app_path_step(acc[name]["app"], var, rgb, r, resize, normalization, score_threshold, ties[name])
    return {name: result_of(name, a, count, score_threshold, ties[name], resize) for name, a in acc.items()}


def new_accumulator() -> dict[str, Any]:
    """The running sums of one variant's comparison: ``heads`` (per head: ``add(variant,
    reference)``), ``det`` (``add(reference, variant, threshold, tie, max_detections)``) and
    the letterbox ``app`` path (None unless set)."""
    return {"heads": {k: _HeadAccumulator() for k in HEADS}, "det": _DetectionAccumulator(), "app": None}


def result_of(name: str, acc: dict[str, Any], images: int, score_threshold: float, score_tie: float,
              resize: ResizeSpec | None = None) -> ParityResult:
    """A :func:`new_accumulator` 's sums as the variant's ParityResult."""
    det: DetectionStats = acc["det"].result()
    return ParityResult(
        variant=name,
        images=images,
        score_threshold=score_threshold,
        score_tie=score_tie,
        heads={k: s.result() for k, s in acc["heads"].items()},
        reference_detections=det.reference_detections,
        variant_detections=det.variant_detections,
        matched=det.matched,
        misses=det.misses,
        extras=det.extras,
        ties_reference=det.ties_reference,
        ties_variant=det.ties_variant,
        class_agreement=det.class_agreement,
        recall=det.recall,
        precision=det.precision,
        iou=det.iou,
        score_delta=det.score_delta,
        nonfinite_detections={"reference": det.nonfinite_reference, "variant": det.nonfinite_variant},
        app_path=acc["app"].result() if acc["app"] is not None else None,
        resize=resize.mode if resize is not None else "stretch",
        anchor_ties=det.anchor_ties,
        iou_as_matched=det.iou_as_matched,
    )


def _default_tie(name: str, score_ties: Mapping[str, float] | None) -> float:
    if score_ties is not None and name in score_ties:
        return float(score_ties[name])
    from liteship.types import Variant
    from liteship.validation.gates import TOLERANCES

    try:
        return TOLERANCES[Variant(name)].score_tie
    except ValueError:
        return TOLERANCES[Variant.FP32].score_tie
