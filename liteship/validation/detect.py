"""Run a converted SSD ``.tflite`` on one image at a time, the way an Android app does.

The four ``TFLite_Detection_PostProcess`` outputs are found by role (the op's port each
output is), so models in port order and in the TF2 converter's order both work.

Preprocessing: resize to the model's input size with Pillow's bilinear filter (no aspect
ratio kept, as apps and the OD API's ``fixed_shape_resizer`` do; a letterboxed model --
``resize`` with mode letterbox -- gets the letterbox of :mod:`liteship.converter.letterbox`
instead), then

* float32 input: ``(pixel - mean) / std`` (pass the model's metadata normalization);
* uint8 input: the raw pixels (what the Task Library and the sample apps feed);
* int8 input: ``(pixel - mean) / std`` quantized with the input's scale and zero point.

Boxes come back in pixels of the original image, clipped to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from liteship.converter.letterbox import ResizeSpec, boxes_to_pixels, letterbox
from liteship.errors import ModelInputProblem
from liteship.tflite_inspect import ModelInfo, TensorInfo, inspect_model
from liteship.types import DEFAULT_NORMALIZATION, POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, Normalization, OutputRole

_INPUT_DTYPES = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8}


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one image: ``boxes`` [N,4] float32 pixels (xmin, ymin, xmax, ymax),
    ``classes`` [N] int64 0-based class indices (label-map id - 1), ``scores`` [N] float32."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        classes = np.asarray(self.classes).reshape(-1)
        if classes.size and not np.all(np.isfinite(classes) & (classes == np.rint(classes))):
            raise ValueError(f"class indices must be whole numbers, got {classes.tolist()}")
        classes = classes.astype(np.int64)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not len(boxes) == len(classes) == len(scores):
            raise ValueError(
                f"boxes, classes and scores differ in length: {len(boxes)}, {len(classes)}, {len(scores)}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        return {
            "boxes": self.boxes.tolist(),
            "classes": self.classes.tolist(),
            "scores": self.scores.tolist(),
        }


class TFLiteDetector:
    """A ``TFLite_Detection_PostProcess`` model ready to run on uint8 HxWx3 RGB images.

    ``model`` is the ``.tflite`` bytes or its path; ``mean``/``std`` (one value or one per
    channel) are the model's normalization, used for float32 and int8 inputs.
    """

    def __init__(
        self,
        model: bytes | Path | str,
        num_threads: int = 2,
        *,
        mean: float | Sequence[float] = DEFAULT_NORMALIZATION.mean,
        std: float | Sequence[float] = DEFAULT_NORMALIZATION.std,
        resize: ResizeSpec | None = None,
    ) -> None:
        data, source = _read_model(model)
        self.info: ModelInfo = inspect_model(data, source=source)
        self.source = source
        self._mean, self._std = Normalization(tuple(np.atleast_1d(mean).tolist()),
                                              tuple(np.atleast_1d(std).tolist())).channel_arrays()
        self.resize = resize if resize is not None and resize.letterbox else None
        image = _image_input(self.info, source)
        self.input_dtype: str = image.dtype
        self.input_height, self.input_width = image.shape[1], image.shape[2]
        self._input_quant = _input_quantization(image, source)
        self._output_position = _output_positions(self.info, source)

        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_content=data, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ModelInputProblem(f"{source} cannot be loaded by the TFLite interpreter: {exc}") from None
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        self._outputs = {role: outputs[position] for role, position in self._output_position.items()}

    @property
    def num_classes(self) -> int | None:
        """``num_classes`` of the postprocess op (without background)."""
        return self.info.postprocess[0].options.num_classes if self.info.postprocess else None

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> the model's input tensor [1, H, W, 3]."""
        rgb = _checked_image(rgb)
        if self.resize is not None:
            rgb = letterbox(rgb, self.resize)[0]
        image = Image.fromarray(rgb, "RGB")
        if image.size != (self.input_width, self.input_height):
            image = image.resize((self.input_width, self.input_height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)[np.newaxis]
        if self.input_dtype == "uint8":
            return pixels
        normalized = (pixels.astype(np.float32) - self._mean) / self._std
        if self.input_dtype == "float32":
            return normalized.astype(np.float32)
        scale, zero_point = self._input_quant
        info = np.iinfo(np.int8)
        quantized = np.rint(normalized / scale) + zero_point
        return np.clip(quantized, info.min, info.max).astype(np.int8)

    def detect(self, rgb: np.ndarray) -> Detections:
        """Detections for one uint8 HxWx3 RGB image (only the first ``count`` rows)."""
        return self.detect_checked(rgb)[0]

    def detect_checked(self, rgb: np.ndarray) -> tuple[Detections, dict[OutputRole, int]]:
        """:meth:`detect`, plus how many NaN/Inf values each output held in its valid rows
        (the count itself included). Rows with a non-finite value are left out of the
        detections; the counts say they were there."""
        rgb = _checked_image(rgb)
        height, width = rgb.shape[:2]
        raw_count = self._invoke(rgb)
        boxes, classes, scores = decode_outputs({role: self._output(role) for role in POSTPROCESS_PORT_ORDER})
        finite = {OutputRole.BOXES: np.isfinite(boxes).all(axis=1), OutputRole.CLASSES: np.isfinite(classes),
                  OutputRole.SCORES: np.isfinite(scores)}
        health = {role: int((~ok).sum()) for role, ok in finite.items()}
        health[OutputRole.COUNT] = 0 if raw_count.size and np.isfinite(raw_count[0]) else 1
        keep = finite[OutputRole.BOXES] & finite[OutputRole.CLASSES] & finite[OutputRole.SCORES]
        if not keep.all():
            boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
        if self.resize is not None:  # relative to the padded square, not to the photo
            boxes = boxes_to_pixels(boxes, self.resize, height, width)
            scale_y = scale_x = 1.0
        else:
            scale_y, scale_x = height, width
        ymin, xmin, ymax, xmax = (boxes[:, k] for k in range(4))
        pixel_boxes = np.stack(
            [
                np.clip(xmin * scale_x, 0, width),
                np.clip(ymin * scale_y, 0, height),
                np.clip(xmax * scale_x, 0, width),
                np.clip(ymax * scale_y, 0, height),
            ],
            axis=-1,
        )
        return Detections(pixel_boxes, np.rint(classes), scores), health

    def output_name(self, role: OutputRole) -> str:
        return str(self._outputs[role]["name"])

    def detect_normalized(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The op's outputs for one image, first ``count`` rows, as written: boxes [n,4]
        (ymin, xmin, ymax, xmax) relative to the image and unclipped, classes [n], scores [n]."""
        self._invoke(_checked_image(rgb))
        return decode_outputs({role: self._output(role) for role in POSTPROCESS_PORT_ORDER})

    def _invoke(self, rgb: np.ndarray) -> np.ndarray:
        """Run one image; returns the raw count output."""
        self._interpreter.set_tensor(self._input_index, self.preprocess(rgb))
        self._interpreter.invoke()
        return self._output(OutputRole.COUNT).reshape(-1)

    def _output(self, role: OutputRole) -> np.ndarray:
        detail = self._outputs[role]
        value = self._interpreter.get_tensor(detail["index"])
        if value.dtype == np.float32:
            return value
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if scale:
            return (value.astype(np.float32) - zero_point) * scale
        return value.astype(np.float32)


# --- helpers ---------------------------------------------------------------------------


def decode_outputs(outputs: dict[OutputRole, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The four postprocess outputs (by role, float) -> the first ``count`` boxes [n,4],
    classes [n] and scores [n]; a non-finite or out-of-range count is clamped."""
    boxes = outputs[OutputRole.BOXES].reshape(-1, 4)
    classes = outputs[OutputRole.CLASSES].reshape(-1)
    scores = outputs[OutputRole.SCORES].reshape(-1)
    raw_count = outputs[OutputRole.COUNT].reshape(-1)
    count = int(np.rint(raw_count[0])) if raw_count.size and np.isfinite(raw_count[0]) else 0
    count = max(0, min(count, len(boxes), len(classes), len(scores)))
    return boxes[:count], classes[:count], scores[:count]


def _read_model(model: bytes | Path | str) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the model"
    from liteship.tflite_inspect import read_model_file

    return read_model_file(model), str(model)


def _image_input(info: ModelInfo, source: str) -> TensorInfo:
    if len(info.inputs) != 1:
        names = ", ".join(t.name for t in info.inputs)
        raise ModelInputProblem(f"{source} has {len(info.inputs)} inputs ({names}), expected 1 image input")
    image = info.inputs[0]
    shape = image.shape
    if len(shape) != 4 or shape[0] not in (1, -1) or shape[3] != 3 or shape[1] <= 0 or shape[2] <= 0:
        raise ModelInputProblem(
            f"{source}: input {image.name!r} has shape {list(shape)}, expected a fixed-size [1, height, width, 3] image"
        )
    if image.dtype not in _INPUT_DTYPES:
        raise ModelInputProblem(
            f"{source}: input {image.name!r} is {image.dtype}, expected float32, uint8 or int8"
        )
    return image


def _input_quantization(image: TensorInfo, source: str) -> tuple[float, int]:
    if image.dtype != "int8":
        return 1.0, 0
    per_tensor = image.quantization.per_tensor if image.quantization else None
    if per_tensor is None or per_tensor[0] <= 0:
        raise ModelInputProblem(f"{source}: int8 input {image.name!r} has no per-tensor scale and zero point")
    return per_tensor


def _output_positions(info: ModelInfo, source: str) -> dict[OutputRole, int]:
    positions: dict[OutputRole, int] = {}
    for position, role in enumerate(info.output_roles):
        if role is not None and role not in positions:
            positions[role] = position
    missing = [role for role in POSTPROCESS_PORT_ORDER if role not in positions]
    if missing:
        raise ModelInputProblem(
            f"{source}: the model outputs are not the {POSTPROCESS_OP} outputs "
            f"(missing: {', '.join(role.value for role in missing)}); is this an SSD detector?"
        )
    return positions


def _checked_image(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise ValueError(f"expected a uint8 HxWx3 RGB image, got {array.dtype} of shape {array.shape}")
    return np.ascontiguousarray(array)
