"""liteship's desktop run of a model, and its detections matched with a runtime's.

The desktop run is :class:`~liteship.validation.detect.TFLiteDetector` (ai-edge-litert's
Interpreter, the model's metadata normalization). Every runtime gets the same images at the
model's input size (resized once here, with the desktop's own bilinear stretch), so no
runtime resizes and all of them see the very same pixels.

Runtimes report boxes in their own pixel convention; the desktop's relative boxes are put
in the same convention before matching (source of each rule in the function):

* MediaPipe truncates ``xmin * width`` and ``(xmax - xmin) * width`` to int and clips them to
  the image (detection_transformation_calculator.cc);
* the Task Library truncates the origin and rounds the size, without clipping
  (frame_buffer_utils.cc ``OrientAndDenormalizeBoundingBox``);
* CompiledModel returns the op's raw outputs: compared unrounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liteship.validation.runtimes.result import Agreement

MATCH_IOU = 0.5


@dataclass(frozen=True)
class Det:
    """One detection: box (xmin, ymin, xmax, ymax) in pixels, class label, score."""

    box: tuple[float, float, float, float]
    label: str
    score: float


@dataclass(frozen=True)
class DesktopRun:
    """Relative boxes (ymin, xmin, ymax, xmax, unclipped), class indices, scores per image."""

    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...]
    labels: tuple[str, ...]

    def label(self, index: int) -> str:
        """The class name, as the runtimes report it: the index without labels; no name for an
        index past the end of the label file (MediaPipe leaves it unnamed)."""
        if not self.labels:
            return str(index)
        return self.labels[index] if 0 <= index < len(self.labels) else ""

    def detections(self, image: int, width: int, height: int, convention: str) -> list[Det]:
        out = []
        for box, cls, score in zip(self.boxes[image], self.classes[image], self.scores[image]):
            if not (np.isfinite(box).all() and np.isfinite(cls) and np.isfinite(score)):
                continue  # a NaN/Inf row is no detection; the `finite` gate reports it
            out.append(Det(to_pixels(box, width, height, convention), self.label(int(round(float(cls)))), float(score)))
        return out


def desktop_run(model: bytes, images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float],
                labels: Sequence[str]) -> DesktopRun:
    from liteship import nativelog
    from liteship.validation.detect import TFLiteDetector

    with nativelog.captured():
        detector = TFLiteDetector(model, num_threads=2, mean=list(mean), std=list(std))
        runs = [detector.detect_normalized(image) for image in images]
    return DesktopRun(tuple(r[0] for r in runs), tuple(r[1] for r in runs), tuple(r[2] for r in runs), tuple(labels))


def resize_to_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """The desktop's stretch (TFLiteDetector.preprocess: Pillow bilinear, no aspect kept)."""
    from PIL import Image

    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    image = Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def to_pixels(box: np.ndarray, width: int, height: int, convention: str) -> tuple[float, float, float, float]:
    """A relative (ymin, xmin, ymax, xmax) box as (xmin, ymin, xmax, ymax) pixels the way
    ``convention`` (``mediapipe``, ``task-library``, ``exact``) reports it."""
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    if convention == "mediapipe":
        x0 = _bounded(int(np.float32(xmin) * width), width)
        y0 = _bounded(int(np.float32(ymin) * height), height)
        w = _bounded(int(np.float32(xmax - xmin) * width), width)
        h = _bounded(int(np.float32(ymax - ymin) * height), height)
        return float(x0), float(y0), float(x0 + w), float(y0 + h)
    if convention == "task-library":
        x0, y0 = int(np.float32(xmin) * width), int(np.float32(ymin) * height)
        w, h = _round(np.float32(abs(xmax - xmin)) * width), _round(np.float32(abs(ymax - ymin)) * height)
        return float(x0), float(y0), float(x0 + w), float(y0 + h)
    return xmin * width, ymin * height, xmax * width, ymax * height


def _round(value: float) -> int:
    """C's round(): halves away from zero (Python's round() rounds halves to even)."""
    return int(np.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def _bounded(value: int, upper: int) -> int:
    return max(0, min(value, upper))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of (xmin, ymin, xmax, ymax) boxes; two equal boxes are 1.0 even when empty (pixel
    rounding makes boxes of tiny images empty)."""
    if tuple(a) == tuple(b):
        return 1.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agree(desktop: Sequence[Sequence[Det]], runtime: Sequence[Sequence[Det]], min_score: float = 0.0, *,
          score_tie: float = 0.0, max_detections: int | None = None) -> Agreement:
    """Match the two runs image by image (greedy by IoU, highest desktop score first), over the
    detections scoring at least ``min_score``, tie-aware as parity is.

    The unmatched detections go through :func:`liteship.validation.parity.match_tie_aware`
    (``score_tie`` = the score tolerance, ``min_score`` = the threshold, ``max_detections`` =
    the op's N, for the top-N cut): a detection scoring within ``score_tie`` of the threshold
    or of the other run's full top-N list's last score, or overlapping an unmatched detection
    of the other run within ``score_tie`` of its score, is a tie (the two runs' kernels put a
    near-equal pair on either side of a cut), neither matched nor missed. Pairs are matched
    here first, with :func:`iou` (equal boxes, even empty ones after pixel rounding, are the
    same box); the remainders hold no pair of IoU >= 0.5 left, so parity only sorts them.
    """
    from liteship.validation import parity

    if min_score > 0:
        desktop = [[d for d in image if d.score >= min_score] for image in desktop]
        runtime = [[d for d in image if d.score >= min_score] for image in runtime]
    n_desk = n_rt = matched = same = ties_desk = ties_rt = 0
    ious: list[float] = []
    deltas: list[float] = []
    mismatches = []
    for k, (ref, got) in enumerate(zip(desktop, runtime)):
        n_desk, n_rt = n_desk + len(ref), n_rt + len(got)
        used: set[int] = set()
        paired: set[int] = set()
        for i, d in sorted(enumerate(ref), key=lambda t: -t[1].score):
            scored = [(iou(d.box, g.box), -j, j) for j, g in enumerate(got) if j not in used]
            best = max(scored, default=None)
            if best is None or best[0] < MATCH_IOU:
                continue
            used.add(best[2])
            paired.add(i)
            g = got[best[2]]
            matched += 1
            same += int(g.label == d.label)
            ious.append(best[0])
            deltas.append(abs(g.score - d.score))
        left_ref = [d for i, d in enumerate(ref) if i not in paired]
        left_got = [g for j, g in enumerate(got) if j not in used]
        tie_ref = tie_got = 0
        if left_ref or left_got:
            ties = parity.match_tie_aware(_as_arrays(left_ref), _as_arrays(left_got), min_score, score_tie,
                                          ref_cut=_cut(ref, max_detections), var_cut=_cut(got, max_detections))
            tie_ref, tie_got = len(ties.ties_reference), len(ties.ties_variant)
        ties_desk, ties_rt = ties_desk + tie_ref, ties_rt + tie_got
        if len(ref) - tie_ref != len(got) - tie_got:  # a count the ties do not explain
            mismatches.append(k)
    return Agreement(
        images=len(desktop), desktop=n_desk, runtime=n_rt, matched=matched, same_class=same,
        min_iou=min(ious) if ious else None, mean_iou=float(np.mean(ious)) if ious else None,
        max_score_delta=max(deltas) if deltas else None, count_mismatches=tuple(mismatches),
        ties_desktop=ties_desk, ties_runtime=ties_rt,
    )


def _as_arrays(dets: Sequence[Det]) -> dict[str, np.ndarray]:
    """Dets as parity's detection arrays: boxes (ymin, xmin, ymax, xmax) -- here in pixels, IoU
    does not mind -- and scores."""
    boxes = np.array([(d.box[1], d.box[0], d.box[3], d.box[2]) for d in dets], np.float64).reshape(-1, 4)
    return {"boxes": boxes, "scores": np.array([d.score for d in dets], np.float64)}


def _cut(dets: Sequence[Det], max_detections: int | None) -> float | None:
    """The lowest score of a full top-N list (the op returned N detections), else None."""
    if not max_detections or len(dets) < max_detections:
        return None
    return min(d.score for d in dets)


def is_dynamic_range(data: bytes) -> bool:
    """A dynamic-range (hybrid) model: float32 input, and int8 constant weights read directly by
    ops with float outputs (no DEQUANTIZE in between), which quantize activations on the fly."""
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    from liteship.tflite_inspect import inspect_model

    info = inspect_model(data)
    if not info.inputs or info.inputs[0].dtype != "float32":
        return False
    model = schema.Model.GetRootAs(data, 0)
    sg = model.Subgraphs(0)

    def constant_int8(index: int) -> bool:
        t = sg.Tensors(index)
        return t.Type() == schema.TensorType.INT8 and model.Buffers(t.Buffer()).DataLength() > 0

    dequantize = next((i for i in range(model.OperatorCodesLength())
                       if max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
                       == schema.BuiltinOperator.DEQUANTIZE), None)
    for j in range(sg.OperatorsLength()):
        op = sg.Operators(j)
        if op.OpcodeIndex() == dequantize or op.OutputsLength() == 0:
            continue
        out = op.Outputs(0)
        if out < 0 or sg.Tensors(out).Type() != schema.TensorType.FLOAT32:
            continue
        if any(0 <= op.Inputs(k) and constant_int8(op.Inputs(k)) for k in range(op.InputsLength())):
            return True
    return False


def payload_detections(payload: dict) -> list[list[Det]]:
    """A runtime child's ``detections`` (per image: [x0, y0, x1, y1, label, score] rows, pixels) as Dets."""
    return [[Det((float(x0), float(y0), float(x1), float(y1)), str(name), float(score))
             for x0, y0, x1, y1, name, score in image] for image in payload["detections"]]
