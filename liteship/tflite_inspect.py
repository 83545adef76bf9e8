"""Read any ``.tflite`` file without TensorFlow: inputs, outputs, ops, postprocess options.

The flatbuffer accessors come from tflite-support's generated schema module, which only
needs ``flatbuffers`` (importing it does not import TensorFlow). Those accessors trust the
file: on corrupt data they raise whatever Python raises (struct.error, IndexError,
ValueError, RecursionError...) or read garbage. Here every count is checked against the file
size and every index against the table it points into, and any parsing failure becomes a
:class:`~liteship.errors.TFLiteFileProblem`.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flatbuffers import flexbuffers
from flatbuffers.number_types import Uint64Flags
from tensorflow_lite_support.metadata import schema_py_generated as schema

from liteship.errors import TFLiteFileProblem
from liteship.types import POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, OutputRole

FILE_IDENTIFIER = b"TFL3"
TFLITE_METADATA_NAME = "TFLITE_METADATA"
MIN_RUNTIME_VERSION_NAME = "min_runtime_version"
POSTPROCESS_OP_NAME = f"CUSTOM:{POSTPROCESS_OP}"
FLEX_PREFIX = "Flex"
ZIP_MAGIC = b"PK\x03\x04"

_BUILTIN_NAMES: dict[int, str] = {
    value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
_DTYPE_NAMES: dict[int, str] = {
    value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")
}
#: ``table Buffer { data:[ubyte]; offset:ulong; size:ulong; }`` — tflite-support's generated
#: module predates ``offset``/``size`` (data stored after the flatbuffer, for models > 2 GB).
_BUFFER_DATA_SLOT = 4
_BUFFER_OFFSET_SLOT = 6
_BUFFER_SIZE_SLOT = 8
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_POSTPROCESS_FLOAT_KEYS = ("nms_score_threshold", "nms_iou_threshold", "y_scale", "x_scale", "h_scale", "w_scale")
_POSTPROCESS_INT_KEYS = ("max_detections", "max_classes_per_detection", "num_classes", "detections_per_class")


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: ``real = scale * (q - zero_point)``; one entry per channel."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int = 0

    @property
    def per_tensor(self) -> tuple[float, int] | None:
        """``(scale, zero_point)`` when there is a single pair, else None."""
        if len(self.scales) == 1 and len(self.zero_points) == 1:
            return self.scales[0], self.zero_points[0]
        return None


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of subgraph 0."""

    position: int
    index: int
    name: str
    #: ``shape_signature`` when present (-1 = dynamic), else ``shape``
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization | None = None


@dataclass(frozen=True)
class PostprocessOptions:
    """``TFLite_Detection_PostProcess`` custom options (None = key absent)."""

    max_detections: int | None = None
    max_classes_per_detection: int | None = None
    num_classes: int | None = None
    use_regular_nms: bool | None = None
    nms_score_threshold: float | None = None
    nms_iou_threshold: float | None = None
    y_scale: float | None = None
    x_scale: float | None = None
    h_scale: float | None = None
    w_scale: float | None = None
    detections_per_class: int | None = None
    #: keys this class does not know, as decoded
    other: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostprocessOp:
    """A ``TFLite_Detection_PostProcess`` operator of subgraph 0."""

    operator_index: int
    #: box_encodings, class_predictions, anchors
    inputs: tuple[int, ...]
    #: tensor index per output port, in ``POSTPROCESS_PORT_ORDER``
    outputs: tuple[int, ...]
    options: PostprocessOptions

    def tensor_for(self, role: OutputRole) -> int:
        return self.outputs[POSTPROCESS_PORT_ORDER.index(role)]

    def role_of(self, tensor_index: int) -> OutputRole | None:
        if tensor_index in self.outputs[: len(POSTPROCESS_PORT_ORDER)]:
            return POSTPROCESS_PORT_ORDER[self.outputs.index(tensor_index)]
        return None


@dataclass(frozen=True)
class SignatureInfo:
    key: str
    subgraph_index: int
    inputs: dict[str, int]
    outputs: dict[str, int]


@dataclass(frozen=True)
class ModelInfo:
    schema_version: int
    description: str
    subgraph_count: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    #: operator name -> number of operators using it, over all subgraphs
    op_counts: dict[str, int]
    #: (name, version) per entry of the model's operator_codes list
    op_versions: tuple[tuple[str, int], ...]
    postprocess: tuple[PostprocessOp, ...]
    #: per position of subgraph 0's output list: the postprocess port it is, or None
    output_roles: tuple[OutputRole | None, ...]
    signatures: tuple[SignatureInfo, ...]
    metadata_names: tuple[str, ...]
    has_tflite_metadata: bool
    associated_files: tuple[str, ...]
    min_runtime_version: str | None

    @property
    def flex_ops(self) -> tuple[str, ...]:
        return tuple(name for name in self.op_counts if name.startswith("FLEX:"))

    @property
    def custom_ops(self) -> tuple[str, ...]:
        return tuple(name for name in self.op_counts if name.startswith("CUSTOM:"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (enums as their values, tuples as lists)."""
        return _jsonable(dataclasses.asdict(self))


def read_model_file(path: Path | str) -> bytes:
    """The bytes of a .tflite file; unreadable paths become TFLiteFileProblem."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TFLiteFileProblem(f"{path}: no such file (expected a .tflite model)") from None
    except IsADirectoryError:
        raise TFLiteFileProblem(f"{path} is a folder, expected a .tflite file") from None
    except OSError as exc:
        raise TFLiteFileProblem(f"{path} cannot be read: {exc.strerror or exc}") from None


def inspect_file(path: Path | str) -> ModelInfo:
    return inspect_model(read_model_file(path), source=str(path))


def inspect_model(data: bytes, *, source: str = "the model") -> ModelInfo:
    """Describe a TFLite flatbuffer; raises TFLiteFileProblem for anything that is not one."""
    if not isinstance(data, bytes):
        data = bytes(data)
    _check_header(data, source)
    try:
        return _Reader(data, source).model_info()
    except TFLiteFileProblem:
        raise
    except Exception as exc:  # noqa: BLE001 — corrupt flatbuffers fail in many ways
        raise TFLiteFileProblem(
            f"{source} is not a valid TFLite flatbuffer: it has the 'TFL3' identifier but is "
            f"corrupt or truncated ({len(data)} bytes; {str(exc) or type(exc).__name__})"
        ) from None


def metadata_buffers(data: bytes, *, source: str = "the model") -> dict[str, bytes]:
    """The model's metadata entries (``TFLITE_METADATA``, ``min_runtime_version``, ...) by name."""
    _check_header(data, source)
    return _Reader(data, source).metadata()


def _format_hint(data: bytes) -> str | None:
    if data.startswith(ZIP_MAGIC):
        return "this is a zip archive: unzip it and pass the .tflite file inside"
    return None


def _check_header(data: bytes, source: str) -> None:
    if not data:
        raise TFLiteFileProblem(f"{source} is not a TFLite flatbuffer: expected a TFLite model, found an empty file")
    found = data[4:8]
    if found != FILE_IDENTIFIER:
        raise TFLiteFileProblem(
            f"{source} is not a TFLite flatbuffer: expected file identifier 'TFL3' at bytes 4-8, "
            f"found {found!r} ({len(data)} bytes in all)",
            hint=_format_hint(data),
        )
    root = int.from_bytes(data[0:4], "little")
    if not 8 <= root <= len(data) - 4:
        raise TFLiteFileProblem(
            f"{source} is not a valid TFLite flatbuffer: expected the root table offset (bytes 0-4) "
            f"inside the file ({len(data)} bytes), found {root}"
        )


class _StrictBytes(bytes):
    """bytes whose slices must lie inside: the generated string accessors slice the buffer
    (``buf[start:start + length]``), which would silently cut a string in a truncated file."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            if (key.start is not None and key.start != start) or (key.stop is not None and key.stop != stop):
                raise IndexError(f"bytes {key.start}..{key.stop} are past the end of the file ({len(self)} bytes)")
        return super().__getitem__(key)


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = _StrictBytes(data)
        self.source = source
        self.model = schema.Model.GetRootAs(self.data, 0)

    def fail(self, what: str) -> TFLiteFileProblem:
        return TFLiteFileProblem(f"{self.source} is not a valid TFLite model: {what}")

    def count(self, n: int, what: str) -> int:
        """A table-vector length; each element is a 4-byte offset, so it must fit the file."""
        if not 0 <= n <= len(self.data) // 4:
            raise self.fail(f"expected a count of {what} that fits in {len(self.data)} bytes, found {n}")
        return n

    def model_info(self) -> ModelInfo:
        model = self.model
        subgraph_count = self.count(model.SubgraphsLength(), "subgraphs")
        if subgraph_count == 0:
            raise self.fail("expected at least 1 subgraph, found 0")
        self.check_buffers()
        op_names = self.op_names()
        subgraph = model.Subgraphs(0)
        outputs = self.tensors(subgraph, _ints(subgraph.OutputsAsNumpy()), "output")
        postprocess = self.postprocess_ops(subgraph, op_names)
        metadata = self.metadata()
        has_tflite_metadata = TFLITE_METADATA_NAME in metadata
        return ModelInfo(
            schema_version=model.Version(),
            description=_text(model.Description()),
            subgraph_count=subgraph_count,
            inputs=self.tensors(subgraph, _ints(subgraph.InputsAsNumpy()), "input"),
            outputs=outputs,
            op_counts=self.op_counts(op_names, subgraph_count),
            op_versions=tuple(
                (name, model.OperatorCodes(i).Version()) for i, name in enumerate(op_names)
            ),
            postprocess=postprocess,
            output_roles=tuple(_role(postprocess, t.index) for t in outputs),
            signatures=self.signatures(subgraph_count),
            metadata_names=tuple(metadata),
            has_tflite_metadata=has_tflite_metadata,
            associated_files=_zip_names(self.data) if has_tflite_metadata else (),
            min_runtime_version=_min_runtime_version(metadata),
        )

    def op_names(self) -> tuple[str, ...]:
        n = self.count(self.model.OperatorCodesLength(), "operator codes")
        return tuple(_op_name(self.model.OperatorCodes(i)) for i in range(n))

    def operators(self, subgraph: Any, op_names: tuple[str, ...]) -> list[tuple[int, Any, str]]:
        found = []
        for j in range(self.count(subgraph.OperatorsLength(), "operators")):
            op = subgraph.Operators(j)
            code = op.OpcodeIndex()
            if not 0 <= code < len(op_names):
                raise self.fail(f"operator {j} uses operator code {code}, expected < {len(op_names)}")
            found.append((j, op, op_names[code]))
        return found

    def op_counts(self, op_names: tuple[str, ...], subgraph_count: int) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for s in range(subgraph_count):
            counts.update(name for _, _, name in self.operators(self.model.Subgraphs(s), op_names))
        return dict(sorted(counts.items()))

    def tensor(self, subgraph: Any, index: int, what: str) -> Any:
        n = self.count(subgraph.TensorsLength(), "tensors")
        if not 0 <= index < n:
            raise self.fail(f"{what} refers to tensor {index}, expected 0..{n - 1}")
        return subgraph.Tensors(index)

    def tensors(self, subgraph: Any, indices: tuple[int, ...], what: str) -> tuple[TensorInfo, ...]:
        return tuple(
            _tensor_info(position, index, self.tensor(subgraph, index, f"{what} {position}"))
            for position, index in enumerate(indices)
        )

    def postprocess_ops(self, subgraph: Any, op_names: tuple[str, ...]) -> tuple[PostprocessOp, ...]:
        found = []
        for j, op, name in self.operators(subgraph, op_names):
            if name != POSTPROCESS_OP_NAME:
                continue
            outputs = _ints(op.OutputsAsNumpy())
            for port, index in enumerate(outputs):
                self.tensor(subgraph, index, f"{POSTPROCESS_OP} output port {port}")
            found.append(
                PostprocessOp(
                    operator_index=j,
                    inputs=_ints(op.InputsAsNumpy()),
                    outputs=outputs,
                    options=_postprocess_options(_raw_bytes(op.CustomOptionsAsNumpy())),
                )
            )
        return tuple(found)

    def signatures(self, subgraph_count: int) -> tuple[SignatureInfo, ...]:
        found = []
        for i in range(self.count(self.model.SignatureDefsLength(), "signature defs")):
            sig = self.model.SignatureDefs(i)
            if not 0 <= sig.SubgraphIndex() < subgraph_count:
                raise self.fail(f"signature {i} refers to subgraph {sig.SubgraphIndex()}, expected < {subgraph_count}")
            found.append(
                SignatureInfo(
                    key=_text(sig.SignatureKey()),
                    subgraph_index=sig.SubgraphIndex(),
                    inputs=self.tensor_map(sig.Inputs, sig.InputsLength()),
                    outputs=self.tensor_map(sig.Outputs, sig.OutputsLength()),
                )
            )
        return tuple(found)

    def tensor_map(self, getter: Any, length: int) -> dict[str, int]:
        entries = (getter(k) for k in range(self.count(length, "signature tensors")))
        return {_text(entry.Name()): entry.TensorIndex() for entry in entries}

    def metadata(self) -> dict[str, bytes]:
        """Metadata entries by name -> the bytes of the buffer they point to."""
        found: dict[str, bytes] = {}
        n_buffers = self.count(self.model.BuffersLength(), "buffers")
        for i in range(self.count(self.model.MetadataLength(), "metadata entries")):
            entry = self.model.Metadata(i)
            name, index = _text(entry.Name()), entry.Buffer()
            if not 0 <= index < n_buffers:
                raise self.fail(f"metadata {name!r} refers to buffer {index}, expected < {n_buffers}")
            found[name] = self.buffer_bytes(index)
        return found

    def check_buffers(self) -> None:
        for i in range(self.count(self.model.BuffersLength(), "buffers")):
            self.buffer_extent(i)

    def buffer_extent(self, index: int) -> tuple[int, int]:
        """(start, end) of buffer ``index``'s bytes, checked to lie inside the file."""
        tab = self.model.Buffers(index)._tab
        start, size = 0, 0
        data_field = tab.Offset(_BUFFER_DATA_SLOT)
        if data_field:
            start, size = tab.Vector(data_field), tab.VectorLen(data_field)
        offset_field, size_field = tab.Offset(_BUFFER_OFFSET_SLOT), tab.Offset(_BUFFER_SIZE_SLOT)
        if not size and offset_field and size_field:
            start = tab.Get(Uint64Flags, tab.Pos + offset_field)
            size = tab.Get(Uint64Flags, tab.Pos + size_field)
        if start + size > len(self.data):
            raise self.fail(
                f"buffer {index} needs bytes {start}..{start + size}, the file has {len(self.data)} "
                "(truncated?)"
            )
        return start, start + size

    def buffer_bytes(self, index: int) -> bytes:
        start, end = self.buffer_extent(index)
        return self.data[start:end]


def _op_name(code: Any) -> str:
    builtin = max(code.DeprecatedBuiltinCode(), code.BuiltinCode())
    if builtin != schema.BuiltinOperator.CUSTOM:
        return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
    custom = _text(code.CustomCode())
    if custom.startswith(FLEX_PREFIX):
        return f"FLEX:{custom[len(FLEX_PREFIX):]}"
    return f"CUSTOM:{custom}"


def _tensor_info(position: int, index: int, tensor: Any) -> TensorInfo:
    signature = _ints(tensor.ShapeSignatureAsNumpy())
    return TensorInfo(
        position=position,
        index=index,
        name=_text(tensor.Name()),
        shape=signature if signature else _ints(tensor.ShapeAsNumpy()),
        dtype=_DTYPE_NAMES.get(tensor.Type(), f"type_{tensor.Type()}"),
        quantization=_quantization(tensor.Quantization()),
    )


def _quantization(params: Any) -> Quantization | None:
    if params is None:
        return None
    scales = tuple(float(s) for s in _array(params.ScaleAsNumpy()))
    if not scales:
        return None
    return Quantization(
        scales=scales,
        zero_points=_ints(params.ZeroPointAsNumpy()),
        quantized_dimension=params.QuantizedDimension(),
    )


def _postprocess_options(raw: bytes) -> PostprocessOptions:
    decoded = flexbuffers.Loads(raw) if raw else {}
    if not isinstance(decoded, dict):
        raise ValueError(f"{POSTPROCESS_OP} custom options are not a flexbuffer map")
    known: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in decoded.items():
        if key in _POSTPROCESS_FLOAT_KEYS:
            known[key] = _short_float(value)
        elif key in _POSTPROCESS_INT_KEYS:
            known[key] = int(value)
        elif key == "use_regular_nms":
            known[key] = bool(value)
        else:
            other[str(key)] = _jsonable(value)
    return PostprocessOptions(**known, other=other)


def _short_float(value: Any) -> float:
    """A float32 value as its shortest float32 repr (0.6000000238 -> 0.6), else unchanged."""
    value = float(value)
    if not abs(value) <= _FLOAT32_MAX:
        return value
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def _role(postprocess: tuple[PostprocessOp, ...], tensor_index: int) -> OutputRole | None:
    for op in postprocess:
        role = op.role_of(tensor_index)
        if role is not None:
            return role
    return None


def _min_runtime_version(metadata: dict[str, bytes]) -> str | None:
    raw = metadata.get(MIN_RUNTIME_VERSION_NAME)
    if raw is None:
        return None
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace") or None


def _zip_names(data: bytes) -> tuple[str, ...]:
    """Associated files: the metadata populator appends them to the model as a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return tuple(archive.namelist())
    except Exception:  # noqa: BLE001 — no (valid) zip appended means no associated files
        return ()


def _array(value: Any) -> np.ndarray:
    """The generated ``...AsNumpy`` accessors return 0 when the vector is absent."""
    return value if isinstance(value, np.ndarray) else np.zeros(0, dtype=np.int64)


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in _array(value))


def _raw_bytes(value: Any) -> bytes:
    return _array(value).astype(np.uint8).tobytes()


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, np.generic):
        return value.item()
    return value
