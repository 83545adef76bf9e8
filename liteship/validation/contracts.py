"""What each consumer app needs from a detection .tflite: contracts as data (one table).

A contract is a frozen dataclass; :mod:`liteship.validation.lint` turns every field into
checks. Nothing here imports TensorFlow or tflite-support.

Op-version table: ``MIN_RUNTIME_FOR_OP_VERSION`` is copied (for the ops SSD detectors
use) from TensorFlow's ``tensorflow/lite/tools/versioning/runtime_version.cc``
(``FindMinimumRuntimeVersionForOp``) as of the TF 2.11 sources (its newest entry is
``UNSORTED_SEGMENT_MIN`` v1 -> 2.11.0). It is the same table the converter uses to write a
model's ``min_runtime_version``. It is an approximation of what a pinned runtime loads:

* the runtime's op resolver (``register.cc``) is the real authority; the two agree for
  released versions, but a runtime may register a version the table never recorded;
* for runtimes newer than the snapshot (``TABLE_SNAPSHOT``) versions above the table's
  highest are reported as *unverified*, not as failures;
* an op missing from the table is reported as unchecked (not a failure), except a
  builtin code tflite-support's schema does not know (``BUILTIN_<n>``): that fails.

Runtime pins are also approximations, documented per contract (``runtime_note``).
"""

from __future__ import annotations

from dataclasses import dataclass

from liteship.types import POSTPROCESS_PORT_ORDER, OutputRole

#: the newest runtime the table below knows about
TABLE_SNAPSHOT = "2.11.0"

#: op name (as in ModelInfo.op_versions) -> min runtime of version 1, 2, ... (index = version - 1)
MIN_RUNTIME_FOR_OP_VERSION: dict[str, tuple[str, ...]] = {
    "ADD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0"),
    "ARG_MAX": ("1.9.0", "1.14.0", "2.9.0"),
    "AVERAGE_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "BATCH_MATMUL": ("2.3.0", "2.3.0", "2.4.0", "2.5.0"),
    "CAST": ("1.5.0", "2.7.0", "2.8.0", "2.9.0"),
    "CONCATENATION": ("1.5.0", "1.14.0", "2.3.0"),
    "CONV_2D": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0"),
    "DEPTHWISE_CONV_2D": ("1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0"),
    "DEQUANTIZE": ("1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0"),
    "DIV": ("1.6.0", "2.3.0"),
    "EXP": ("1.7.0",),
    "EXPAND_DIMS": ("1.10.0",),
    "FULLY_CONNECTED": ("1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0", "2.3.0", "2.3.0"),
    "GATHER": ("1.6.0", "1.14.0", "1.15.0", "2.4.0", "2.5.0"),
    "HARD_SWISH": ("1.15.0",),
    "LOGISTIC": ("1.14.0", "1.14.0", "2.3.0"),
    "MAXIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MAX_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "MEAN": ("1.6.0", "1.14.0", "2.4.0"),
    "MINIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MUL": ("1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0"),
    "PACK": ("1.11.0", "1.14.0", "2.3.0"),
    "PAD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0"),
    "PADV2": ("1.9.0", "1.14.0", "2.4.0", "2.6.0"),
    "QUANTIZE": ("1.14.0", "1.15.0", "2.7.0"),
    "RELU": ("1.5.0", "2.1.0", "2.5.0"),
    "RELU6": ("1.5.0", "1.14.0", "2.5.0"),
    "RESHAPE": ("1.5.0",),
    "RESIZE_BILINEAR": ("1.7.0", "1.14.0", "2.2.0", "2.5.0"),
    "RESIZE_NEAREST_NEIGHBOR": ("1.13.1", "1.14.0", "2.3.0", "2.4.0"),
    "RSQRT": ("1.10.0", "2.5.0"),
    "SHAPE": ("1.10.0",),
    "SLICE": ("1.14.0", "1.14.0", "1.14.0", "2.4.0", "2.5.0"),
    "SOFTMAX": ("1.5.0", "1.14.0", "2.3.0"),
    "SPLIT": ("1.5.0", "1.14.0", "1.14.0", "2.3.0"),
    "SPLIT_V": ("1.13.1", "2.3.0"),
    "SQRT": ("1.10.0",),
    "SQUARED_DIFFERENCE": ("1.13.1", "2.5.0"),
    "SQUEEZE": ("1.6.0", "2.5.0"),
    "STRIDED_SLICE": ("1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0"),
    "SUB": ("1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"),
    "SUM": ("1.10.0", "1.15.0"),
    "TANH": ("1.14.0", "1.14.0", "2.3.0"),
    "TILE": ("1.10.1", "2.2.0", "2.8.0"),
    "TRANSPOSE": ("1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0"),
    "TRANSPOSE_CONV": ("1.9.0", "2.2.0", "2.3.0"),
    "UNPACK": ("1.11.0", "1.14.0", "2.2.0", "2.3.0"),
    # custom op: kernels/detection_postprocess.cc, one version since TF 1.x
    "CUSTOM:TFLite_Detection_PostProcess": ("1.13.0",),
}


def version_key(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


class Binding:
    NAME = "name"  # outputs found by metadata name (Task Library)
    INDEX = "index"  # outputs read by position in the output list


class Gpu:
    #: GPU delegate optional in the app: incompatible ops fall back to CPU, so the check
    #: passes and lists them; only a model the analyzer cannot analyze fails.
    OPTIONAL = "optional"
    #: the app only runs on the GPU delegate: any op other than the postprocess op that is
    #: not GPU-compatible fails (no contract uses this today).
    REQUIRED = "required"


@dataclass(frozen=True)
class Contract:
    name: str
    app: str
    #: accepted input dtypes (ModelInfo dtype names)
    input_dtypes: tuple[str, ...]
    #: a float32 input must carry NormalizationOptions metadata
    float_needs_normalization: bool
    #: expected (mean, std) when the app hard-codes it (checked if metadata states one)
    fixed_normalization: tuple[float, float] | None
    #: (H, W) the app assumes; a different size passes with a warning
    expected_size: tuple[int, int] | None
    binding: str
    #: for Binding.INDEX: the role read at each output position (shorter = rest ignored)
    index_order: tuple[OutputRole, ...]
    metadata_required: bool
    #: labels must be attached to the category tensor as TENSOR_VALUE_LABELS
    labels_required: bool
    #: exact associated-file name the app opens (None = any name)
    label_file: str | None
    max_results: int
    #: runtime pin for op versions; None = "current LiteRT" (not checked by the table)
    runtime: str | None
    runtime_note: str
    gpu: str = Gpu.OPTIONAL
    #: run the real Task Library ObjectDetector in a subprocess (taskcheck.py)
    task_library_load: bool = False


CONTRACTS: tuple[Contract, ...] = (
    Contract(
        name="bundled-app",
        app="liteship's Android app: outputs by metadata name, labels from labelmap.txt in the metadata",
        input_dtypes=("float32", "uint8"),
        float_needs_normalization=True,
        fixed_normalization=None,
        expected_size=None,
        binding=Binding.NAME,
        index_order=(),
        metadata_required=True,
        labels_required=True,
        label_file="labelmap.txt",
        max_results=10,  # = liteship's default --max-detections
        runtime=None,
        runtime_note="current LiteRT (ai-edge-litert); `liteship run` loads every model with it",
    ),
    Contract(
        name="task-library",
        app="TFLite Task Library ObjectDetector (tensorflow/examples object_detection app)",
        input_dtypes=("float32", "uint8"),
        float_needs_normalization=True,
        fixed_normalization=None,
        expected_size=None,
        binding=Binding.NAME,
        index_order=(),
        metadata_required=True,
        labels_required=True,
        label_file=None,
        max_results=3,  # the example app's default maxResults
        runtime="2.11.0",
        runtime_note="tensorflow-lite-task-vision 0.4.x bundles a TFLite runtime of the 2.11-2.12 era (approximation)",
        task_library_load=True,
    ),
    Contract(
        name="litert-sample",
        app="LiteRT object detection sample (Interpreter; outputs by index, labels from metadata)",
        input_dtypes=("uint8",),
        float_needs_normalization=False,
        fixed_normalization=None,
        expected_size=None,
        binding=Binding.INDEX,
        index_order=POSTPROCESS_PORT_ORDER[:3],  # count is not read
        metadata_required=True,
        labels_required=True,
        label_file="labelmap.txt",
        max_results=5,
        runtime="2.16.1",
        runtime_note="LiteRT 1.x (TFLite 2.16+); newer than the op table's snapshot, so newer op versions are unverified",
    ),
    Contract(
        name="legacy-detect",
        app="TF1-era detect.tflite Android app (DetectorActivity; outputs by index, labelmap.txt asset)",
        input_dtypes=("uint8", "float32"),
        float_needs_normalization=False,
        fixed_normalization=(127.5, 127.5),
        expected_size=(300, 300),
        binding=Binding.INDEX,
        index_order=POSTPROCESS_PORT_ORDER,
        metadata_required=False,
        labels_required=False,  # the app ships labelmap.txt as an asset
        label_file=None,
        max_results=10,  # NUM_DETECTIONS = 10 in the app
        runtime="2.4.0",
        runtime_note="the legacy app's Gradle pins were TFLite 2.x releases around 2.3-2.5 (approximation: 2.4.0)",
    ),
)

BY_NAME: dict[str, Contract] = {c.name: c for c in CONTRACTS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def max_supported_version(op: str, runtime: str) -> int | None:
    """Highest version of ``op`` the table says ``runtime`` supports (None = op not in table)."""
    mins = MIN_RUNTIME_FOR_OP_VERSION.get(op)
    if mins is None:
        return None
    rt = version_key(runtime)
    supported = [v for v, m in enumerate(mins, start=1) if version_key(m) <= rt]
    return max(supported) if supported else 0
