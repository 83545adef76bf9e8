"""Decode + NMS of raw SSD heads (the ``gpu`` variant's outputs), as an app has to do.

A model without ``TFLite_Detection_PostProcess`` gives box encodings and class scores per
anchor; whoever runs it with ``CompiledModel`` (or the Interpreter) decodes the boxes with
the anchors and scales of its ``DETECTOR_METADATA`` and runs NMS. This is that code, in
NumPy, with the semantics of the TFLite op (``kernels/detection_postprocess.cc``) and of
MediaPipe's ``TensorsToDetectionsCalculator`` + ``NonMaxSuppressionCalculator``:

* decode (faster_rcnn_box_coder, YXHW): ``yc = ty / y_scale * ha + yca``,
  ``h = exp(th / h_scale) * ha`` (x, w alike);
* fast NMS (class-agnostic): each anchor's best class and score, greedy NMS over anchors
  (suppressed when IoU > threshold), top ``max_detections``;
* regular NMS: NMS per class (up to ``detections_per_class``), then the top
  ``max_detections`` over all classes.

Written here rather than taken from the OD API (``box_coder.decode`` + TF NMS): the check
it serves runs outside TensorFlow and must stand for an app's own decoder, and the OD API
is the reference it is compared with.
"""

from __future__ import annotations

import numpy as np

from liteship.converter.mediapipe_metadata import DetectorOptions


def decode_boxes(encodings: np.ndarray, options: DetectorOptions) -> np.ndarray:
    """[A,4] (ty, tx, th, tw) -> [A,4] normalized (ymin, xmin, ymax, xmax)."""
    e = np.asarray(encodings, dtype=np.float32).reshape(-1, 4)
    a = options.anchors  # x_center, y_center, width, height
    if len(e) != len(a):
        raise ValueError(f"{len(e)} box encodings for {len(a)} anchors")
    yc = e[:, 0] / options.y_scale * a[:, 3] + a[:, 1]
    xc = e[:, 1] / options.x_scale * a[:, 2] + a[:, 0]
    if options.apply_exponential_on_box_size:
        h = np.exp(e[:, 2] / options.h_scale) * a[:, 3]
        w = np.exp(e[:, 3] / options.w_scale) * a[:, 2]
    else:
        h = e[:, 2] / options.h_scale * a[:, 3]
        w = e[:, 3] / options.w_scale * a[:, 2]
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    inter_hw = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    inter = inter_hw[:, 0] * inter_hw[:, 1]
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Indices kept by greedy NMS, highest score first (ties: lower index first)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    kept: list[int] = []
    for i in order:
        if len(kept) >= limit:
            break
        if kept and np.any(_iou_one(boxes[i], boxes[kept]) > iou_threshold):
            continue
        kept.append(int(i))
    return kept


def detect(
    encodings: np.ndarray,
    scores: np.ndarray,
    options: DetectorOptions,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    regular_nms: bool = False,
    detections_per_class: int = 100,
) -> dict[str, np.ndarray]:
    """Detections of one image: boxes [N,4] normalized (ymin, xmin, ymax, xmax), classes [N]
    (0-based = labelmap line), scores [N], best first."""
    boxes = decode_boxes(encodings, options)
    s = np.asarray(scores, dtype=np.float32).reshape(len(boxes), -1)
    if options.sigmoid_score:
        s = 1.0 / (1.0 + np.exp(-s))
    picks: list[tuple[float, int, int]] = []  # score, anchor, class
    if regular_nms:
        for c in range(s.shape[1]):
            cand = np.flatnonzero(s[:, c] >= score_threshold)
            for k in greedy_nms(boxes[cand], s[cand, c], iou_threshold, detections_per_class):
                picks.append((float(s[cand[k], c]), int(cand[k]), c))
        picks.sort(key=lambda p: (-p[0], p[1], p[2]))
        picks = picks[:max_detections]
    else:
        best = s.argmax(axis=1)
        top = s[np.arange(len(s)), best]
        cand = np.flatnonzero(top >= score_threshold)
        picks = [(float(top[cand[k]]), int(cand[k]), int(best[cand[k]]))
                 for k in greedy_nms(boxes[cand], top[cand], iou_threshold, max_detections)]
    idx = np.asarray([p[1] for p in picks], dtype=np.int64)
    return {
        "boxes": boxes[idx].reshape(-1, 4).astype(np.float32),
        "classes": np.asarray([p[2] for p in picks], dtype=np.int64),
        "scores": np.asarray([p[0] for p in picks], dtype=np.float32),
    }
