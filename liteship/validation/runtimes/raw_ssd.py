"""The desktop run of a 2-output (raw heads) model, for the runtime comparisons.

A model without ``TFLite_Detection_PostProcess`` (liteship's ``gpu`` variant) cannot go
through :class:`~liteship.validation.detect.TFLiteDetector`. Its desktop run is the
Interpreter's two outputs decoded by :mod:`liteship.validation.raw_heads` with the model's
own ``DETECTOR_METADATA``, suppressed the way MediaPipe's ObjectDetector does for this form
(class-agnostic, IoU :data:`~liteship.validation.contracts.MEDIAPIPE_RAW_NMS_IOU`, score
threshold 0.0 -- the Python API's default -- and every result kept, like the MediaPipe
child's ``max_results=-1``). CompiledModel's outputs are decoded the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteship.tflite_inspect import ModelInfo
from liteship.validation import contracts as C


def is_raw_ssd(info: ModelInfo, meta: Any) -> bool:
    return (len(info.outputs) == 2 and not info.postprocess and meta.readable
            and C.DETECTOR_METADATA_NAME in meta.custom_data)


def options_of(meta: Any) -> Any:
    """The model's DETECTOR_METADATA (anchors, scales, sigmoid) as DetectorOptions."""
    return _options(meta)


def _options(meta: Any) -> Any:
    from liteship.converter import mediapipe_metadata as mpmd

    return mpmd.decode(meta.custom_data[C.DETECTOR_METADATA_NAME])


def positions(info: ModelInfo, meta: Any) -> tuple[int, int]:
    """Output positions of ``location`` and ``score`` (metadata names; MediaPipe's 0, 1 otherwise)."""
    return _positions(info, meta)


def _positions(info: ModelInfo, meta: Any) -> tuple[int, int]:
    names = list(meta.output_names)
    if all(n in names for n in C.RAW_SSD_OUTPUT_NAMES):
        loc, score = (names.index(n) for n in C.RAW_SSD_OUTPUT_NAMES)
        return loc, score
    return 0, 1  # MediaPipe's fallback when the names do not match


def detections(location: np.ndarray, score: np.ndarray, options: Any, max_detections: int | None = None,
               score_threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The heads of one image decoded and suppressed as MediaPipe does for this form
    (class-agnostic, IoU 0.3); every detection kept unless ``max_detections`` is given."""
    from liteship.validation import raw_heads

    loc = np.asarray(location, np.float32).reshape(-1, 4)
    d = raw_heads.detect(loc, np.asarray(score, np.float32).reshape(len(loc), -1), options,
                         score_threshold=score_threshold, iou_threshold=C.MEDIAPIPE_RAW_NMS_IOU,
                         max_detections=len(loc) if max_detections is None else max_detections)
    return d["boxes"], d["classes"], d["scores"]


def desktop_run(model: bytes, info: ModelInfo, meta: Any, images: Sequence[np.ndarray], mean: Sequence[float],
                std: Sequence[float]) -> tuple[Any, np.ndarray]:
    """(DesktopRun, the model inputs [K,1,H,W,3] it was given)."""
    from ai_edge_litert.interpreter import Interpreter

    from liteship import nativelog
    from liteship.validation.runtimes.compare import DesktopRun

    options = _options(meta)
    loc_pos, score_pos = _positions(info, meta)
    m = np.asarray(mean, np.float32).reshape(-1)
    s = np.asarray(std, np.float32).reshape(-1)
    inputs = np.stack([((np.asarray(img, np.float32) - m) / s)[None] for img in images]).astype(np.float32)
    with nativelog.captured():
        it = Interpreter(model_content=model, num_threads=2)
        it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = it.get_output_details()
    runs = []
    for x in inputs:
        it.set_tensor(inp, x)
        it.invoke()
        runs.append(detections(it.get_tensor(outs[loc_pos]["index"]), it.get_tensor(outs[score_pos]["index"]), options))
    run = DesktopRun(tuple(r[0] for r in runs), tuple(r[1] for r in runs), tuple(r[2] for r in runs),
                     tuple(meta.category_labels))
    return run, inputs


def compiled_detections(info: ModelInfo, meta: Any, payload: dict, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CompiledModel's two buffers of one image (by the signature's output names) decoded."""
    from liteship.converter.gpu_variant import output_names

    names = payload.get("output_names") or list(output_names(info))
    values = dict(zip(names, payload["outputs"][image]))
    by_position = [values[n] for n in output_names(info)]
    loc_pos, score_pos = _positions(info, meta)
    return detections(np.asarray(by_position[loc_pos]), np.asarray(by_position[score_pos]), _options(meta))


@dataclass(frozen=True)
class Nms:
    """The decode + NMS settings an app applies to the 2-output form's heads (the config's)."""

    score_threshold: float
    iou_threshold: float
    max_detections: int
    regular_nms: bool = False


class RawSsdDetector:
    """A 2-output model run the way an app that decodes the heads itself runs it (the
    Interpreter, then :mod:`liteship.validation.raw_heads` with the model's DETECTOR_METADATA
    and ``nms``): the :class:`~liteship.validation.detect.TFLiteDetector` interface that
    :mod:`liteship.validation.app_run` uses, pixel boxes of the image it was given."""

    def __init__(self, model: bytes, nms: Nms, num_threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from liteship import nativelog
        from liteship.tflite_inspect import inspect_model
        from liteship.tflite_metadata import read_metadata_view

        info = inspect_model(model)
        meta = read_metadata_view(model, info)
        if not is_raw_ssd(info, meta):
            raise ValueError("not a 2-output model with DETECTOR_METADATA")
        self._options, self._nms = _options(meta), nms
        self._positions = _positions(info, meta)
        mean, std = meta.normalization if meta.normalization else ((127.5,), (127.5,))
        self._mean, self._std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
        _, self._h, self._w, _ = info.inputs[0].shape
        with nativelog.captured():
            self._it = Interpreter(model_content=model, num_threads=num_threads)
            self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        self._outputs = self._it.get_output_details()

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> the model's float32 input [1, H, W, 3]: stretched (Pillow bilinear) and
        normalized with the metadata's mean/std, as MediaPipe and an app feed it."""
        from liteship.validation.runtimes.compare import resize_to_input

        x = (resize_to_input(rgb, self._h, self._w).astype(np.float32) - self._mean) / self._std
        return x[None].astype(np.float32)

    def detect(self, rgb: np.ndarray) -> Any:
        return self.detect_checked(rgb)[0]

    def detect_checked(self, rgb: np.ndarray) -> tuple[Any, dict[str, int]]:
        from liteship.validation import raw_heads
        from liteship.validation.detect import Detections

        h, w = rgb.shape[:2]
        self._it.set_tensor(self._input, self.preprocess(rgb))
        self._it.invoke()
        heads = {name: self._it.get_tensor(self._outputs[pos]["index"]) for name, pos in
                 zip(C.RAW_SSD_OUTPUT_NAMES, self._positions)}
        health = {name: int((~np.isfinite(v)).sum()) for name, v in heads.items()}
        loc = np.nan_to_num(heads["location"].reshape(-1, 4), nan=0.0, posinf=0.0, neginf=0.0)
        score = np.nan_to_num(heads["score"].reshape(len(loc), -1), nan=0.0, posinf=0.0, neginf=0.0)
        d = raw_heads.detect(loc, score, self._options, score_threshold=self._nms.score_threshold,
                             iou_threshold=self._nms.iou_threshold, max_detections=self._nms.max_detections,
                             regular_nms=self._nms.regular_nms)
        b = d["boxes"]
        pixel = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1).clip(0, [w, h, w, h])
        return Detections(pixel.astype(np.float32), d["classes"], d["scores"]), health
