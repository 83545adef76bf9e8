"""Shared types: ``str`` enums (CLI choices come from them) and frozen dataclasses."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Variant(str, enum.Enum):
    """The TFLite variants made from one export (file name = value + ``.tflite``)."""

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"  # dynamic-range: int8 weights, float activations
    INT8 = "int8"  # full integer: int8 weights and activations, uint8 (or int8) input
    #: optional: raw heads (location [1,A,4], score [1,A,C]) + MediaPipe DETECTOR_METADATA,
    #: no TFLite_Detection_PostProcess, so the whole graph runs on the GPU delegate
    GPU = "gpu"


#: what ``--variants`` gives when not set: the four TFLite_Detection_PostProcess variants
DEFAULT_VARIANTS: tuple[Variant, ...] = (Variant.FP32, Variant.FP16, Variant.DYNAMIC, Variant.INT8)


class GpuPrecision(str, enum.Enum):
    """Weights of the ``gpu`` variant (its input and outputs are float32 either way)."""

    FP16 = "fp16"  # half the size; what the GPU delegate computes in by default anyway
    FP32 = "fp32"


class OutputOrder(str, enum.Enum):
    """Order of the 4 outputs in the converted model's output list."""

    #: boxes [1,N,4], classes [1,N], scores [1,N], count [1]: the TFLite_Detection_PostProcess
    #: port order, what TF1 exports give and what apps reading outputs by index expect.
    PORT = "port"
    #: what the TF2 converter leaves (scores, boxes, count, classes): only safe for apps that
    #: find outputs by metadata name (Task Library).
    CONVERTER = "converter"


class Int8Input(str, enum.Enum):
    UINT8 = "uint8"  # Task Library, LiteRT sample, legacy app
    INT8 = "int8"  # rejected by the Task Library


class InputKind(str, enum.Enum):
    CHECKPOINT = "checkpoint"  # pipeline.config + checkpoint dir (model_main_tf2.py output)
    SAVED_MODEL = "saved_model"  # export_tflite_graph_tf2.py output
    FROZEN_GRAPH = "frozen_graph"  # export_tflite_ssd_graph.py (TF1) tflite_graph.pb
    #: TF1 pipeline.config (slim feature extractor) + model.ckpt-N, exported in-process to a
    #: tflite_graph.pb by the OD API's TF1 exporter (liteship.converter.tf1_export)
    TF1_CHECKPOINT = "tf1_checkpoint"


class OutputRole(str, enum.Enum):
    """Role of a detection output; values are the Task Library metadata tensor names."""

    BOXES = "location"
    CLASSES = "category"
    SCORES = "score"
    COUNT = "number of detections"


#: TFLite_Detection_PostProcess output ports, in order (source of truth:
#: tensorflow/lite/kernels/detection_postprocess.cc, kOutputTensorDetectionBoxes = 0,
#: kOutputTensorDetectionClasses = 1, kOutputTensorDetectionScores = 2,
#: kOutputTensorNumDetections = 3).
POSTPROCESS_PORT_ORDER: tuple[OutputRole, ...] = (
    OutputRole.BOXES,
    OutputRole.CLASSES,
    OutputRole.SCORES,
    OutputRole.COUNT,
)

POSTPROCESS_OP = "TFLite_Detection_PostProcess"


@dataclass(frozen=True)
class Normalization:
    """``normalized = (pixel - mean) / std`` per channel, pixel in [0, 255]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def channel_arrays(self) -> tuple[Any, Any]:
        """(mean, std) as float32 arrays of 1 or 3 values; ValueError for other counts or a 0 std."""
        import numpy as np

        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        for name, values in (("mean", mean), ("std", std)):
            if values.shape not in {(1,), (3,)}:
                raise ValueError(f"normalization {name} needs 1 or 3 values, got {values.tolist()}")
        if np.any(std == 0):
            raise ValueError(f"normalization std must not be 0, got {std.tolist()}")
        return mean, std

    def range(self) -> tuple[float, float]:
        lo = min((0.0 - m) / s for m, s in zip(self.mean, self.std))
        hi = max((255.0 - m) / s for m, s in zip(self.mean, self.std))
        return lo, hi


#: the MobileNet family's (x - 127.5) / 127.5: what a model's input means when nothing
#: better is known (no metadata, no feature extractor named in the graph)
DEFAULT_NORMALIZATION = Normalization(mean=(127.5,), std=(127.5,))


class Verdict(enum.StrEnum):
    """The outcome of one check.

    ``SKIP``: the check applies but could not run (a runtime missing, no ground truth);
    the reason is in ``Check.message``. A gating check that was skipped fails the gate
    (exit 3) unless the user allows it. ``NA``: the check does not apply to this model
    or contract; it never fails anything.
    """

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    NA = "n/a"


@dataclass(frozen=True)
class Check:
    """One measured property: what was expected, what was found, the verdict, the fix."""

    id: str
    verdict: Verdict
    expected: Any
    found: Any
    message: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = str(self.verdict)
        return d

    @classmethod
    def passed(cls, id: str, expected: Any, found: Any, message: str = "") -> Check:
        return cls(id, Verdict.PASS, expected, found, message)

    @classmethod
    def failed(cls, id: str, expected: Any, found: Any, message: str, fix: str) -> Check:
        return cls(id, Verdict.FAIL, expected, found, message, fix)

    @classmethod
    def skipped(cls, id: str, expected: Any, message: str) -> Check:
        """The check applies but could not run (the reason in ``message``)."""
        return cls(id, Verdict.SKIP, expected, None, message)

    @classmethod
    def not_applicable(cls, id: str, expected: Any, message: str) -> Check:
        """The check does not apply to this model or contract."""
        return cls(id, Verdict.NA, expected, None, message)


@dataclass(frozen=True)
class ExportOptions:
    max_detections: int = 10
    use_regular_nms: bool = False
    #: None = keep the pipeline.config's batch_non_max_suppression value
    score_threshold: float | None = None
    iou_threshold: float | None = None


#: the input size of a frozen graph whose placeholder has no static shape
DEFAULT_FROZEN_INPUT_SIZE = (300, 300)


@dataclass(frozen=True)
class FrozenGraphOptions:
    """Defaults match the TF1 ``export_tflite_ssd_graph.py`` exporter. ``height``/``width``
    None: the graph's placeholder shape (:data:`DEFAULT_FROZEN_INPUT_SIZE` when it has none)."""

    input_name: str = "normalized_input_image_tensor"
    height: int | None = None
    width: int | None = None
    output_names: tuple[str, ...] = (
        "TFLite_Detection_PostProcess",
        "TFLite_Detection_PostProcess:1",
        "TFLite_Detection_PostProcess:2",
        "TFLite_Detection_PostProcess:3",
    )


@dataclass(frozen=True)
class ConvertOptions:
    variants: tuple[Variant, ...] = DEFAULT_VARIANTS
    int8_input: Int8Input = Int8Input.UINT8
    calibration_images: int = 100
    output_order: OutputOrder = OutputOrder.PORT
    gpu_precision: GpuPrecision = GpuPrecision.FP16
    #: per-channel normalization: fold it into the float variants (their input takes 0-255)
    fold_normalization: bool = True


@dataclass(frozen=True)
class InputStats:
    """Statistics of the preprocessed representative dataset."""

    count: int
    min: float
    max: float
    mean: float
    std: float
    expected_range: tuple[float, float]
    files_skipped: tuple[str, ...] = field(default_factory=tuple)
