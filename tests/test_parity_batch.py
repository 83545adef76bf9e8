"""parity_batch.compare_image (all variants at once) accumulates exactly what
parity.compare_step (one variant at a time) does: seeded random images, ties, empty cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from liteship.validation import parity, parity_batch


class _Fixed:
    """A variant whose run() returns given outputs (compare_step's view of a variant)."""

    def __init__(self, heads: dict[str, np.ndarray], raw: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
        self.heads, self.raw = heads, raw

    def run(self, pre: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        b, c, s, n = self.raw
        return self.heads, {"boxes": b[:n], "classes": c[:n].astype(np.int64), "scores": s[:n]}


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    yx = rng.uniform(0, 0.8, (n, 2))
    hw = rng.uniform(0.05, 0.3, (n, 2))
    return np.concatenate([yx, np.minimum(yx + hw, 1.0)], axis=1).astype(np.float32)


def _image(rng: np.random.Generator, variants: int, depth: int = 10) -> tuple[Any, ...]:
    anchors, classes = 50, 4
    ref_heads = {"box_encodings": rng.normal(size=(1, anchors, 4)).astype(np.float32),
                 "class_predictions": rng.uniform(size=(1, anchors, classes)).astype(np.float32)}
    n_ref = int(rng.integers(0, 6))
    ref_boxes = _boxes(rng, n_ref)
    ref_kept = {"boxes": ref_boxes, "classes": rng.integers(0, classes, n_ref),
                "scores": np.round(rng.uniform(0.3, 1.0, n_ref), 1).astype(np.float32)}  # rounded: score ties
    heads, raws = [], []
    for _ in range(variants):
        heads.append({k: (v + rng.normal(0, 0.01, v.shape)).astype(np.float32) for k, v in ref_heads.items()})
        count = int(rng.integers(0, depth + 1))
        boxes = _boxes(rng, depth)
        take = min(n_ref, depth)
        boxes[:take] = ref_boxes[:take] + rng.normal(0, 0.02, (take, 4)).astype(np.float32)
        if depth > 3:
            boxes[3] = boxes[2]  # two equal candidates: the lower index must win
        cls = rng.integers(0, classes, depth).astype(np.float32)
        scores = rng.uniform(0.0, 1.0, depth).astype(np.float32)
        raws.append((boxes, cls, scores, count))
    return ref_heads, ref_kept, heads, raws


def _flat(acc: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.values if isinstance(v, parity._Stats) else v) for k, v in acc.items()}


@pytest.mark.parametrize("variants", [1, 4])
def test_batched_comparison_equals_one_variant_at_a_time(variants: int) -> None:
    rng = np.random.default_rng(7)
    one = [parity._new_accumulator() for _ in range(variants)]
    batched = [parity._new_accumulator() for _ in range(variants)]
    pre = np.zeros((1, 4, 4, 3), np.float32)
    for _ in range(200):
        ref_heads, ref_kept, heads, raws = _image(rng, variants)
        for acc, h, r in zip(one, heads, raws):
            parity.compare_step(acc, _Fixed(h, r), pre, ref_heads, ref_kept, 0.3)
        parity_batch.compare_image(batched, heads, raws, ref_heads, ref_kept, 0.3)
    for a, b in zip(one, batched):
        assert _flat(a) == _flat(b)
    assert sum(a["matched"] for a in one) > 50, "the fixture must produce matches"


def test_nothing_to_match_still_counts_detections() -> None:
    rng = np.random.default_rng(1)
    ref_heads, _, heads, raws = _image(rng, 2)
    empty = {"boxes": np.zeros((0, 4), np.float32), "classes": np.zeros(0, np.int64), "scores": np.zeros(0, np.float32)}
    accs = [parity._new_accumulator() for _ in range(2)]
    parity_batch.compare_image(accs, heads, raws, ref_heads, empty, 0.3)
    assert [a["ref"] for a in accs] == [0, 0]
    assert [a["var"] for a in accs] == [int(((np.arange(10) < r[3]) & (r[2] >= 0.3)).sum()) for r in raws]
    assert all(a["matched"] == 0 and a["heads"]["box_encodings"][2] == 1 for a in accs)


def test_a_nan_head_stays_nan_as_in_compare_step() -> None:
    """max(0.0, nan) is 0.0 in Python: the batched path must not let a NaN head pass either."""
    rng = np.random.default_rng(3)
    ref_heads, ref_kept, heads, raws = _image(rng, 2)
    heads[1]["box_encodings"][0, 5, 2] = np.nan
    one = [parity._new_accumulator() for _ in range(2)]
    batched = [parity._new_accumulator() for _ in range(2)]
    pre = np.zeros((1, 4, 4, 3), np.float32)
    for _ in range(2):  # a later finite image must not wash the NaN out
        for acc, h, r in zip(one, heads, raws):
            parity.compare_step(acc, _Fixed(h, r), pre, ref_heads, ref_kept, 0.3)
        parity_batch.compare_image(batched, heads, raws, ref_heads, ref_kept, 0.3)
        heads[1]["box_encodings"][0, 5, 2] = 0.0
    assert np.isnan(one[1]["heads"]["box_encodings"][0]) and np.isnan(batched[1]["heads"]["box_encodings"][0])
    assert not np.isnan(batched[0]["heads"]["box_encodings"][0])
