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

import enum
from dataclasses import dataclass

from liteship.types import POSTPROCESS_PORT_ORDER, OutputRole
from liteship.validation.runtimes.result import Runtime

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


class RuleSet(enum.StrEnum):
    """Which family of rules :mod:`liteship.validation.lint` applies to a contract."""

    #: the field-driven rules of the classic apps (input, outputs, binding, labels, N, ops)
    APP = "app"
    #: MediaPipe Tasks ObjectDetector's own checks (:mod:`liteship.validation.lint_mediapipe`)
    MEDIAPIPE = "mediapipe"


class OpTable(enum.StrEnum):
    #: TensorFlow's runtime_version.cc: the min runtime of each op version (pinned old runtimes)
    RUNTIME_VERSION = "runtime_version"
    #: LiteRT 2.x register.cc: the max version each op kernel is registered with (litert_ops.py)
    LITERT_REGISTER = "litert_register"


class OutputForm(enum.StrEnum):
    """The shapes of detector a consumer accepts."""

    #: 4 outputs of TFLite_Detection_PostProcess (boxes, classes, scores, count): what
    #: liteship writes and every contract reads
    POSTPROCESS = "postprocess"
    #: MediaPipe's second form: 2 raw outputs ``location`` [1,A,4] and ``score`` [1,A,C], with
    #: a ``DETECTOR_METADATA`` custom metadata entry (anchors, box decoding) -- MediaPipe
    #: decodes and runs NMS itself (detection_postprocessing_graph.cc, out-of-model NMS).
    #: Extension point: add it to a contract's ``output_forms`` together with its rules in
    #: ``lint_mediapipe.FORM_RULES``; until then lint reports such a model as not checked.
    RAW_SSD = "raw-ssd"


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
    #: the real runtime to load and run the model in (liteship.validation.runtimes)
    runtime_check: Runtime | None = None
    rules: RuleSet = RuleSet.APP
    #: which table ``ops.versions`` checks against
    op_table: OpTable = OpTable.RUNTIME_VERSION
    #: on a metadata name mismatch the app logs a warning and reads outputs 0..3 as
    #: location, category, score, number of detections (Task Library, MediaPipe)
    name_fallback_to_index: bool = False
    #: outputs must carry their real static shapes (buffers are allocated from them)
    static_output_shapes: bool = False
    output_forms: tuple[OutputForm, ...] = (OutputForm.POSTPROCESS,)
    #: where the rules come from (documented in docs/consumers.md)
    source: str = ""


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
        source="android_app/ (liteship's own app: ModelRoles.java finds outputs by metadata name)",
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
        runtime_check=Runtime.TASK_LIBRARY,
        name_fallback_to_index=True,
        source="tensorflow/tflite-support tensorflow_lite_support/cc/task/vision/object_detector.cc (0.4.4)",
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
        source="google-ai-edge/litert-samples object_detection (Interpreter, outputs by index)",
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
        source="tensorflow/examples lite/examples/object_detection (TF1 era, TFLiteObjectDetectionAPIModel.java)",
    ),
    Contract(
        name="mediapipe",
        app="MediaPipe Tasks ObjectDetector (com.google.mediapipe:tasks-vision; the MediaPipe samples' object detection app)",
        input_dtypes=("uint8", "float32"),
        float_needs_normalization=True,
        fixed_normalization=None,
        expected_size=None,  # any HxW: MediaPipe stretches the image to it (no letterbox)
        binding=Binding.NAME,
        index_order=(),
        metadata_required=True,
        labels_required=False,  # without labels the results carry only a class index
        label_file=None,
        max_results=3,  # the samples app's default maxResults
        runtime=None,
        runtime_note="tasks-vision bundles its own current TFLite runtime; the real MediaPipe run decides",
        runtime_check=Runtime.MEDIAPIPE,
        rules=RuleSet.MEDIAPIPE,
        name_fallback_to_index=True,
        source="google-ai-edge/mediapipe mediapipe/tasks/cc/vision/object_detector/object_detector_graph.cc, "
               "tasks/cc/components/processors/detection_postprocessing_graph.cc, "
               "tasks/cc/vision/utils/image_tensor_specs.cc, tasks/cc/components/processors/image_preprocessing_graph.cc",
    ),
    Contract(
        name="litert-compiled",
        app="LiteRT 2.x CompiledModel app on CPU (com.google.ai.edge.litert 2.x; buffers from static shapes, outputs by index)",
        input_dtypes=("uint8", "float32", "int8"),
        float_needs_normalization=False,  # the app normalizes with its own constants
        fixed_normalization=None,
        expected_size=None,
        binding=Binding.INDEX,
        index_order=POSTPROCESS_PORT_ORDER,
        metadata_required=False,
        labels_required=False,
        label_file=None,
        max_results=5,  # the LiteRT samples' maxResults
        runtime="2.3.0",
        runtime_note="LiteRT 2.x BuiltinOpResolver (register.cc, ai-edge-litert 2.3)",
        runtime_check=Runtime.COMPILED_MODEL,
        op_table=OpTable.LITERT_REGISTER,
        static_output_shapes=True,
        source="google-ai-edge/LiteRT tflite/core/kernels/register.cc; CompiledModel buffer sizing "
               "(google-ai-edge/LiteRT#9518, measured with ai-edge-litert 2.3.0)",
    ),
)

BY_NAME: dict[str, Contract] = {c.name: c for c in CONTRACTS}
#: the contracts `liteship run` gates on by default
DEFAULT_GATING: tuple[str, ...] = ("bundled-app", "task-library", "mediapipe", "litert-compiled")
NAMES: tuple[str, ...] = tuple(BY_NAME)


def max_supported_version(op: str, runtime: str) -> int | None:
    """Highest version of ``op`` the table says ``runtime`` supports (None = op not in table)."""
    mins = MIN_RUNTIME_FOR_OP_VERSION.get(op)
    if mins is None:
        return None
    rt = version_key(runtime)
    supported = [v for v, m in enumerate(mins, start=1) if version_key(m) <= rt]
    return max(supported) if supported else 0


# --- MediaPipe Tasks ObjectDetector: its load-time checks, as data ---------------------------
#
# What ObjectDetectorGraph (and the graphs it configures) verify when a model is loaded, in
# the order MediaPipe runs them, each with the error text it raises (``str.format`` fields
# stand for the C++ ``StrFormat`` arguments). The Python API raises them as ValueError
# (kInvalidArgument), NotImplementedError (kUnimplemented), FileNotFoundError (kNotFound) or
# RuntimeError (kInternal). Read from google-ai-edge/mediapipe at 85c0cdc7d (2026):
_OD = "mediapipe/tasks/cc/vision/object_detector/object_detector_graph.cc"
_SPECS = "mediapipe/tasks/cc/vision/utils/image_tensor_specs.cc"
_PRE = "mediapipe/tasks/cc/components/processors/image_preprocessing_graph.cc"
_POST = "mediapipe/tasks/cc/components/processors/detection_postprocessing_graph.cc"


@dataclass(frozen=True)
class RuntimeText:
    """One error text of a runtime and the source file that raises it."""

    text: str
    source: str

    def format(self, **fields: object) -> str:
        return self.text.format(**fields)


MEDIAPIPE_ERRORS: dict[str, RuntimeText] = {
    "model.subgraphs": RuntimeText("Expected a model with a single subgraph, found {n}.", _OD),
    "metadata.present": RuntimeText("Object detection models require TFLite Model Metadata but none was found", _OD),
    "input.count": RuntimeText("Image tflite models are assumed to have a single input.", _SPECS),
    "input.metadata": RuntimeText("Tensor index is out of range.", _SPECS),
    "input.content": RuntimeText("Expected ImageProperties for tensor {name}, got {type}.", _SPECS),
    "input.rank": RuntimeText("Only 4D tensors in BHWD layout are supported.", _SPECS),
    "input.dtype": RuntimeText(
        "Type mismatch for input tensor {name}. Requested one of these types: uint8/float32, got {type}.", _SPECS),
    "input.color_space": RuntimeText("Only RGB color space is supported for now.", _SPECS),
    "input.shape": RuntimeText(
        "The input tensor should have dimensions 1 x height x width x depth, where depth = 3 or 4. "
        "Got {b} x {h} x {w} x {d}.", _SPECS),
    "input.normalization.missing": RuntimeText(
        "Input tensor has type float32: it requires specifying NormalizationOptions metadata to preprocess "
        "input images.", _SPECS),
    "input.normalization.dims": RuntimeText(
        "NormalizationOptions: expected mean and std of same dimension, got {mean} and {std}.", _SPECS),
    "input.normalization.count": RuntimeText(
        "NormalizationOptions: only 1 or 3 mean and std values are supported, got {n}.", _SPECS),
    "input.normalization.multiple": RuntimeText(
        "The number of elements in the input tensor must be a multiple of the number of normalization "
        "parameters.", _SPECS),
    "input.normalization.per_channel": RuntimeText("Per-channel image normalization is not available.", _PRE),
    "input.normalization.std_zero": RuntimeText(
        "NormalizationOptions.std_values can't be 0. Please check if the tensor metadata has been populated "
        "correctly.", _PRE),
    "outputs.count": RuntimeText("Expected a model with 2 or 4 output tensors, found {n}.", _POST),
    "outputs.dtype": RuntimeText(
        "Expected output tensor at index {i} to have type UINT8 or FLOAT32, found {type} instead.", _POST),
    "outputs.quantized": RuntimeText(
        "Expected either all or none of the output tensors to be quantized, but found {q} quantized outputs "
        "for {n} total outputs.", _POST),
    "outputs.metadata_count": RuntimeText(
        "Mismatch between number of output tensors ({n}) and output tensors metadata ({m}).", _POST),
    # logged (ABSL_LOG(WARNING)), not raised: outputs are then read as 0..3 (or 0..1)
    "outputs.names": RuntimeText(
        'You don\'t seem to be matching tensor names in metadata list. The tensor name "{name}" at index {i} '
        'in the model metadata doesn\'t match the available output names: [{names}].', _POST),
    "location.box_properties.missing": RuntimeText("Expected BoundingBoxProperties for tensor {name}, found none.", _POST),
    "location.box_properties.type": RuntimeText("Expected BoundingBoxProperties for tensor {name}, found {type}.", _POST),
    "location.box_type": RuntimeText("Mobile SSD only supports BoundingBoxType BOUNDARIES, found {type}", _POST),
    "location.coordinate_type": RuntimeText("Mobile SSD only supports CoordinateType RATIO, found {type}", _POST),
    "location.box_index": RuntimeText("Expected BoundingBoxProperties index to contain 4 values, found {n}", _POST),
    # the 2-output form without its custom metadata entry
    "outputs.detector_metadata": RuntimeText(
        "TensorsDecodingOptions is not found in the object detector metadata.", _POST),
}

#: the input depths, NormalizationOptions lengths and output dtypes MediaPipe accepts (_SPECS, _POST)
MEDIAPIPE_INPUT_DEPTHS = (3, 4)
MEDIAPIPE_NORMALIZATION_VALUES = (1, 3)
MEDIAPIPE_OUTPUT_DTYPES = ("float32", "uint8")
#: BoundingBoxProperties.index for TFLite_Detection_PostProcess boxes [ymin, xmin, ymax, xmax]:
#: MediaPipe (and the Task Library) read left, top, right, bottom at these positions
POSTPROCESS_BOX_INDEX = (1, 0, 3, 2)
#: the output names MediaPipe and the Task Library look for (POSTPROCESS_PORT_ORDER's values)
DETECTION_OUTPUT_NAMES = tuple(r.value for r in POSTPROCESS_PORT_ORDER)
#: the 2-output form's names and custom metadata entry (_POST)
RAW_SSD_OUTPUT_NAMES = ("location", "score")
DETECTOR_METADATA_NAME = "DETECTOR_METADATA"

#: what TFLite (in every runtime: LiteRT, MediaPipe, the Task Library) says about a Flex op
#: without the Select TF ops delegate (tflite/core/subgraph.cc; measured in all three here)
TFLITE_FLEX_ERROR = ("Select TensorFlow op(s), included in the given model, is(are) not supported by this "
                     "interpreter. Make sure you apply/link the Flex delegate before inference.")

#: the Task Library's name-mismatch warning (object_detector.cc; same words as MediaPipe's)
TASK_LIBRARY_NAMES_WARNING = MEDIAPIPE_ERRORS["outputs.names"].text
