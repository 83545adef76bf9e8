"""Parity of a TFLite variant against the desktop reference, on the same inputs.

Measure first, judge separately: :func:`measure` returns numbers only; :func:`judge`
turns them into checks with the tolerances of :data:`TOLERANCES` (data, per variant).

* Tensor level: the reference's own ``preprocess`` output is fed to both sides (quantized
  with the model's input parameters for integer inputs), and the raw heads are compared
  elementwise: the reference ``heads`` signature vs the two tensors entering
  TFLite_Detection_PostProcess (box encodings, class scores after the score converter).
* Detection level: the reference ``detect`` signature (the OD API's own postprocess with
  the op's NMS settings) vs the variant's outputs, matched greedily by IoU >= 0.5 among
  detections scoring >= ``score_threshold``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.types import Check, Verdict
from liteship.tflite_inspect import inspect_model
from liteship.types import OutputRole, Variant
from liteship.validation.reference import Reference


@dataclass(frozen=True)
class Tolerance:
    """Per-variant limits; documented in docs/parity.md."""

    box_encodings_max_abs: float
    class_scores_max_abs: float
    min_recall: float  # matched / reference detections
    min_precision: float  # matched / variant detections
    min_class_agreement: float
    min_mean_iou: float
    max_mean_score_delta: float


#: fp32 must reproduce the reference up to float reordering; fp16 halves the mantissa;
#: dynamic range and int8 quantize weights (and activations) to 8 bits.
TOLERANCES: dict[Variant, Tolerance] = {
    Variant.FP32: Tolerance(1e-3, 1e-3, 0.98, 0.98, 0.98, 0.98, 0.005),
    Variant.FP16: Tolerance(0.05, 0.02, 0.95, 0.95, 0.97, 0.95, 0.02),
    Variant.DYNAMIC: Tolerance(0.5, 0.15, 0.85, 0.85, 0.92, 0.85, 0.08),
    Variant.INT8: Tolerance(1.0, 0.25, 0.80, 0.80, 0.90, 0.80, 0.10),
    # fp32 weights (fp16: the looser of this and FP16's, liteship/validation/gpu_parity.py);
    # detections as MediaPipe decodes them: its own NMS, boxes in whole pixels
    Variant.GPU: Tolerance(1e-3, 1e-3, 0.95, 0.95, 0.97, 0.90, 0.01),
}


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


@dataclass(frozen=True)
class ParityResult:
    variant: str
    images: int
    score_threshold: float
    heads: dict[str, dict[str, float]]  # name -> {max_abs, mean_abs}
    reference_detections: int
    variant_detections: int
    matched: int
    class_agreement: float | None
    recall: float | None
    precision: float | None
    iou: dict[str, Any]  # summary + histogram
    score_delta: dict[str, Any]  # |score_ref - score_variant| of matched pairs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def match(ref: dict[str, np.ndarray], var: dict[str, np.ndarray], iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU, highest reference score first.

    Each reference detection takes the unused variant detection with the highest IoU (the
    lowest index among equal ones), if that IoU reaches ``iou_threshold``. Plain Python on
    the IoU matrix: a handful of detections per image, and this runs per image and variant.
    """
    n, m = len(ref["scores"]), len(var["scores"])
    if n == 0 or m == 0:
        return []
    rows = _iou(ref["boxes"], var["boxes"]).tolist()
    scores = ref["scores"].tolist()
    pairs: list[tuple[int, int, float]] = []
    used: set[int] = set()
    for i in sorted(range(n), key=lambda k: -scores[k]):
        row = rows[i]
        best = max((j for j in range(m) if j not in used and row[j] >= iou_threshold),
                   key=lambda j: (row[j], -j), default=None)
        if best is not None:
            pairs.append((i, best, row[best]))
            used.add(best)
    return pairs


def _postprocess_runs_last(info: Any) -> bool:
    """True when TFLite_Detection_PostProcess is the last operator of the only subgraph.

    Its two inputs (the raw heads) then still hold their values after ``invoke``: the
    arena reuses a tensor's memory only for tensors of later operators, and there are none.
    """
    return info.subgraph_count == 1 and info.postprocess[0].operator_index == sum(info.op_counts.values()) - 1


class _Variant:
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

    def input_for(self, pre: np.ndarray) -> np.ndarray:
        """The reference's preprocessed image as this variant's input (quantized for integer
        inputs: ``clip(round(pre / scale) + zero_point)``, computed in place in one buffer;
        ``pre * std + mean`` for a variant with the normalization folded in)."""
        if self._unfold is not None:
            std, mean = self._unfold
            return (pre * std + mean).astype(self.inp["dtype"], copy=False)
        if not self._quantized:
            return pre.astype(self.inp["dtype"], copy=False)
        scale, zero, lo, hi = self._quant
        buf = self._buffer
        if buf is None or buf.shape != pre.shape or buf.dtype != pre.dtype:
            buf = self._buffer = np.empty_like(pre)
        np.divide(pre, scale, out=buf)
        np.rint(buf, out=buf)
        buf += zero
        np.clip(buf, lo, hi, out=buf)
        return buf.astype(self.inp["dtype"])

    def run(self, pre: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        self.it.set_tensor(self.inp["index"], self.input_for(pre))
        self.it.invoke()
        get = self.it.get_tensor  # returns a copy
        heads = {"box_encodings": get(self.head_tensors[0]), "class_predictions": get(self.head_tensors[1])}
        n = int(get(self.role_index[OutputRole.COUNT])[0])
        dets = {
            "boxes": get(self.role_index[OutputRole.BOXES])[0, :n],
            "classes": get(self.role_index[OutputRole.CLASSES])[0, :n].astype(np.int64),
            "scores": get(self.role_index[OutputRole.SCORES])[0, :n],
        }
        return heads, dets


def _above(d: dict[str, np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    keep = d["scores"] >= threshold
    if keep.all():
        return d
    return {k: v[keep] for k, v in d.items()}


def _new_accumulator() -> dict[str, Any]:
    return {
        "heads": {"box_encodings": [0.0, 0.0, 0], "class_predictions": [0.0, 0.0, 0]},
        "ref": 0, "var": 0, "matched": 0, "same_class": 0, "iou": _Stats(), "dscore": _Stats(),
    }


def compare_step(
    acc: dict[str, Any],
    var: _Variant,
    pre: np.ndarray,
    ref_heads: dict[str, np.ndarray],
    ref_kept: dict[str, np.ndarray],
    score_threshold: float,
) -> None:
    """One image through one variant, compared with the reference's results for it.

    Everything :func:`measure` does per variant and image (scripts/bench.py times exactly
    this against a bare ``invoke``).
    """
    heads, dets = var.run(pre)
    for key, stat in acc["heads"].items():
        diff = np.subtract(heads[key], ref_heads[key], dtype=np.float64)  # exact, as float64 operands
        np.abs(diff, out=diff)
        # NaN-safe: max(0.0, nan) is 0.0 in Python, which would let a NaN head pass
        largest = float(diff.max())  # NaN when either side holds one
        stat[0] = math.nan if math.isnan(largest) or math.isnan(stat[0]) else max(stat[0], largest)
        stat[1] += float(diff.sum()) / diff.size  # what diff.mean() computes
        stat[2] += 1
    var_kept = _above(dets, score_threshold)
    acc["ref"] += len(ref_kept["scores"])
    acc["var"] += len(var_kept["scores"])
    pairs = match(ref_kept, var_kept)
    if pairs:
        acc["matched"] += len(pairs)
        acc["same_class"] += sum(int(ref_kept["classes"][i] == var_kept["classes"][j]) for i, j, _ in pairs)
        acc["iou"].add(iou for _, _, iou in pairs)
        acc["dscore"].add(abs(float(ref_kept["scores"][i]) - float(var_kept["scores"][j])) for i, j, _ in pairs)


def measure(
    reference_dir: Path,
    models: dict[str, bytes],
    images: Iterable[np.ndarray],
    score_threshold: float = 0.3,
    folded: dict[str, Any] | None = None,
) -> dict[str, ParityResult]:
    """Stream ``images`` (uint8 HxWx3) once through the reference and every variant.
    ``folded``: variant -> the Normalization folded into its graph (liteship.converter.normfold)."""
    from liteship.validation import parity_batch

    ref = Reference(reference_dir)
    folded = folded or {}
    variants = {name: _Variant(model, unfold=folded.get(name)) for name, model in models.items()}
    acc = {name: _new_accumulator() for name in variants}
    accs = list(acc.values())
    count = 0
    for rgb in images:
        count += 1
        pre, ref_heads, ref_dets = ref.run(rgb)
        ref_kept = _above(ref_dets, score_threshold)
        outs = [parity_batch.run_raw(var, pre) for var in variants.values()]  # all variants compared at once
        parity_batch.compare_image(accs, [h for h, _ in outs], [r for _, r in outs], ref_heads, ref_kept, score_threshold)
    results = {}
    for name, a in acc.items():
        ious = np.asarray(a["iou"].values)
        hist, edges = np.histogram(ious, bins=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0 + 1e-9])
        results[name] = ParityResult(
            variant=name,
            images=count,
            score_threshold=score_threshold,
            heads={k: {"max_abs": s[0], "mean_abs": s[1] / max(s[2], 1)} for k, s in a["heads"].items()},
            reference_detections=a["ref"],
            variant_detections=a["var"],
            matched=a["matched"],
            class_agreement=a["same_class"] / a["matched"] if a["matched"] else None,
            recall=a["matched"] / a["ref"] if a["ref"] else None,
            precision=a["matched"] / a["var"] if a["var"] else None,
            iou={**a["iou"].summary(), "histogram": {"edges": [round(e, 3) for e in edges], "counts": hist.tolist()}},
            score_delta=a["dscore"].summary(),
        )
    return results


def _ge(cid: str, value: float | None, limit: float, fix: str) -> Check:
    if value is None:
        return Check(cid, Verdict.NA, f">= {limit}", None, "nothing to compare (no detections above the threshold)")
    ok = value >= limit
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, f">= {limit}", round(value, 6), "", "" if ok else fix)


def _le(cid: str, value: float | None, limit: float, fix: str) -> Check:
    if value is None:
        return Check(cid, Verdict.NA, f"<= {limit}", None, "nothing to compare")
    ok = value <= limit
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, f"<= {limit}", round(value, 6), "", "" if ok else fix)


def judge(result: ParityResult, tolerance: Tolerance) -> list[Check]:
    quant = "quantization moved the heads: see the per-layer attribution, try more or better calibration images"
    return [
        _le("parity.heads.box_encodings.max_abs", result.heads["box_encodings"]["max_abs"], tolerance.box_encodings_max_abs, quant),
        _le("parity.heads.class_predictions.max_abs", result.heads["class_predictions"]["max_abs"], tolerance.class_scores_max_abs, quant),
        _ge("parity.detections.recall", result.recall, tolerance.min_recall, "the variant misses detections the reference makes"),
        _ge("parity.detections.precision", result.precision, tolerance.min_precision, "the variant makes detections the reference does not"),
        _ge("parity.detections.class_agreement", result.class_agreement, tolerance.min_class_agreement, "matched boxes disagree on the class"),
        _ge("parity.detections.mean_iou", result.iou["mean"], tolerance.min_mean_iou, "boxes moved: check box decoding / scales"),
        _le("parity.detections.mean_score_delta", result.score_delta["mean"], tolerance.max_mean_score_delta, "scores drifted"),
    ]
