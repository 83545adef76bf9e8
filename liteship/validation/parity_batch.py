"""Parity's per-image comparison for ALL variants at once (NumPy over a variant axis).

:func:`compare_image` computes exactly what :func:`liteship.validation.parity.compare_step`
computes for each variant in turn -- head differences (float64, exact), detections above
the score threshold, greedy one-to-one IoU matching (highest reference score first, the
highest IoU, the lowest index among equal ones), class agreement, IoU and score deltas --
but with one NumPy call per step for every variant together instead of one per variant.
On the demo model (one ``invoke`` about 1 ms) the per-variant bookkeeping was about
0.09 ms of Python and NumPy call overhead; stacked, it is paid once per image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from liteship.types import OutputRole

HEADS = ("box_encodings", "class_predictions")


def run_raw(var: Any, pre: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
    """One variant (a parity._Variant) on ``pre``: its heads and its raw detection outputs
    (boxes [D,4], classes [D], scores [D], count) -- not yet cut to ``count``."""
    it = var.it
    it.set_tensor(var.inp["index"], var.input_for(pre))
    it.invoke()
    get = it.get_tensor
    heads = {"box_encodings": get(var.head_tensors[0]), "class_predictions": get(var.head_tensors[1])}
    idx = var.role_index
    raw = (get(idx[OutputRole.BOXES])[0], get(idx[OutputRole.CLASSES])[0], get(idx[OutputRole.SCORES])[0],
           int(get(idx[OutputRole.COUNT])[0]))
    return heads, raw


def compare_image(
    accs: Sequence[dict[str, Any]],
    heads: Sequence[Mapping[str, np.ndarray]],
    raws: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
    ref_heads: Mapping[str, np.ndarray],
    ref_kept: Mapping[str, np.ndarray],
    score_threshold: float,
    iou_threshold: float = 0.5,
) -> None:
    """Accumulate one image into each variant's accumulator (``parity._new_accumulator``)."""
    v_count = len(accs)
    for key in HEADS:
        ref = ref_heads[key]
        stacked = np.stack([h[key] for h in heads]) if v_count > 1 else heads[0][key][None]
        diff = np.subtract(stacked, ref, dtype=np.float64)  # exact, as float64 operands
        np.abs(diff, out=diff)
        flat = diff.reshape(v_count, -1)
        maxima, sums = flat.max(axis=1).tolist(), flat.sum(axis=1).tolist()
        size = flat.shape[1]
        for acc, mx, sm in zip(accs, maxima, sums):
            stat = acc["heads"][key]
            # NaN-safe as in compare_step: max(0.0, nan) is 0.0 in Python
            stat[0] = math.nan if math.isnan(mx) or math.isnan(stat[0]) else max(stat[0], mx)
            stat[1] += sm / size
            stat[2] += 1

    # variant detections: [V, D] with a validity mask (within count, score >= threshold)
    depth = max(len(r[2]) for r in raws)
    boxes = np.zeros((v_count, depth, 4), np.float32)
    classes = np.zeros((v_count, depth), np.int64)
    scores = np.zeros((v_count, depth), np.float32)
    counts = np.empty(v_count, np.int64)
    for v, (b, c, s, n) in enumerate(raws):
        d = len(s)
        boxes[v, :d], classes[v, :d], scores[v, :d], counts[v] = b, c, s, min(max(n, 0), d)
    valid = (np.arange(depth)[None, :] < counts[:, None]) & (scores >= score_threshold)
    kept_per_variant = valid.sum(axis=1).tolist()
    n_ref = len(ref_kept["scores"])
    for acc, k in zip(accs, kept_per_variant):
        acc["ref"] += n_ref
        acc["var"] += k
    if n_ref == 0 or not any(kept_per_variant):
        return
    rb = ref_kept["boxes"][None, :, None, :]  # [1, N, 1, 4]
    vb = boxes[:, None, :, :]  # [V, 1, D, 4]
    overlap = np.clip(np.minimum(rb[..., 2:], vb[..., 2:]) - np.maximum(rb[..., :2], vb[..., :2]), 0, None)
    inter = overlap[..., 0] * overlap[..., 1]
    size_r = np.clip(rb[..., 2:] - rb[..., :2], 0, None)
    size_v = np.clip(vb[..., 2:] - vb[..., :2], 0, None)
    union = size_r[..., 0] * size_r[..., 1] + size_v[..., 0] * size_v[..., 1] - inter
    iou = inter / np.maximum(union, 1e-12)  # [V, N, D]
    # a variant detection is available while valid, unused, and overlapping enough
    available = np.where(valid[:, None, :] & (iou >= iou_threshold), iou, -1.0)
    order = np.argsort(-ref_kept["scores"], kind="stable")  # highest reference score first
    rows = np.arange(v_count)
    matched_ref, matched_var, matched_iou, matched_v = [], [], [], []
    for i in order.tolist():
        cand = available[:, i, :]
        best = cand.argmax(axis=1)  # the first (lowest-index) maximum
        got = cand[rows, best]
        hit = got >= 0
        if not hit.any():
            continue
        vs = rows[hit]
        js = best[hit]
        available[vs, :, js] = -1.0  # used
        matched_v.append(vs)
        matched_var.append(js)
        matched_ref.append(np.full(len(vs), i))
        matched_iou.append(got[hit])
    if not matched_v:
        return
    mv, mj, mi, mo = (np.concatenate(x) for x in (matched_v, matched_var, matched_ref, matched_iou))
    same = ref_kept["classes"][mi] == classes[mv, mj]
    dscore = np.abs(ref_kept["scores"][mi].astype(np.float64) - scores[mv, mj].astype(np.float64))
    # per variant, in matching order (as compare_step appends them)
    for v in np.unique(mv).tolist():
        sel = mv == v
        acc = accs[v]
        acc["matched"] += int(sel.sum())
        acc["same_class"] += int(same[sel].sum())
        acc["iou"].values.extend(mo[sel].astype(np.float64).tolist())
        acc["dscore"].values.extend(dscore[sel].tolist())
