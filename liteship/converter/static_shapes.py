"""Give the four ``TFLite_Detection_PostProcess`` outputs their real static shapes.

Why: the TFLite converter stores the op's outputs with ``shape = []`` (and ``has_rank``
true: "a scalar"), because a custom op's output shapes are only known once its ``Prepare``
runs. The classic Interpreter does not mind (``Prepare`` resizes the tensors), but LiteRT
2.x ``CompiledModel`` sizes its output buffers from the stored shapes: 4-byte buffers, then
the op writes ``[1,N,4]`` floats into them (heap corruption, ``Custom allocation is too small
for tensor idx: N``; upstream google-ai-edge/LiteRT#9518). Storing the shapes the op's
``Prepare`` computes fixes it (source: tensorflow/lite/kernels/detection_postprocess.cc):

* boxes ``[1, N, 4]``, classes ``[1, N]``, scores ``[1, N]``, count ``[1]``,
* ``N = max_detections * max_classes_per_detection`` (its custom options).

How (in the spirit of :mod:`liteship.converter.reorder`: no re-serialisation, every byte of
the original file stays where it was): a flatbuffer table cannot grow in place, so for each
of the four tensors a copy of its ``Tensor`` table with ``shape`` and ``shape_signature``
set is appended to the end of the file, and the tensor's entry in subgraph 0's ``tensors``
vector (an unsigned offset, which may point forward) is redirected to it. Tensor indices do
not change, so the output list, the operators, the signature defs and any metadata stay
valid. The old tables remain as unreferenced bytes (a few dozen).

Appending only works while nothing else is appended to the file: the associated files of
TFLite metadata are a zip at the end, so a model that already has them is refused (write the
static shapes before the metadata, as ``liteship run`` does).
"""

from __future__ import annotations

import struct

import flatbuffers
from flatbuffers import number_types as N
from tensorflow_lite_support.metadata import schema_py_generated as schema

from liteship.errors import ConversionProblem
from liteship.tflite_inspect import ModelInfo, PostprocessOp, inspect_model
from liteship.types import POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, OutputRole

#: ``table SubGraph { tensors; inputs; outputs; ... }``: tensors is field 0 (vtable slot 4)
_SUBGRAPH_TENSORS_SLOT = 4
#: fields of ``table Tensor`` that tflite-support's schema (TensorT) knows: shape .. variant_tensors
_TENSOR_KNOWN_FIELDS = 10
#: appended tables start on this boundary (more than any scalar in a Tensor table needs)
_ALIGN = 16
_UOFFSET = struct.Struct("<I")


def postprocess_output_shapes(op: PostprocessOp) -> dict[OutputRole, tuple[int, ...]]:
    """The shapes ``TFLite_Detection_PostProcess``'s ``Prepare`` gives its four outputs."""
    options = op.options
    if options.max_detections is None or options.max_detections < 1:
        raise ConversionProblem(
            f"cannot store the {POSTPROCESS_OP} output shapes: expected max_detections >= 1 in its "
            f"options, found {options.max_detections}"
        )
    # the kernel reads a missing key as 0; the OD API exporters always write it (1 by default)
    per_detection = options.max_classes_per_detection or 1
    n = options.max_detections * per_detection
    return {
        OutputRole.BOXES: (1, n, 4),
        OutputRole.CLASSES: (1, n),
        OutputRole.SCORES: (1, n),
        OutputRole.COUNT: (1,),
    }


def static_output_shapes(data: bytes) -> bytes:
    """Return ``data`` with the postprocess outputs' ``shape`` and ``shape_signature`` set.

    Idempotent: a model whose four tensors already carry exactly these shapes comes back
    unchanged. Raises TFLiteFileProblem for bytes that are not a TFLite model and
    ConversionProblem when the shapes cannot be stored.
    """
    info = inspect_model(data)
    op = _single_postprocess_op(info)
    wanted = postprocess_output_shapes(op)
    model = schema.Model.GetRootAs(data, 0)
    subgraph = model.Subgraphs(0)
    todo: list[tuple[int, tuple[int, ...]]] = []
    for role, shape in wanted.items():
        index = op.tensor_for(role)
        tensor = subgraph.Tensors(index)
        if _ints(tensor.ShapeAsNumpy()) != shape or _ints(tensor.ShapeSignatureAsNumpy()) != shape:
            todo.append((index, shape))
    if not todo:
        return data
    if info.associated_files:
        raise ConversionProblem(
            "cannot store the postprocess output shapes of a model with associated files "
            f"({', '.join(info.associated_files)}): they are a zip appended to the model, and the "
            "new shapes must be appended too",
            hint="store the static shapes before writing metadata",
        )
    result = _redirect_tensors(data, subgraph, todo)
    _check_rewrite(info, result, dict(todo))
    return result


def _single_postprocess_op(info: ModelInfo) -> PostprocessOp:
    if len(info.postprocess) != 1:
        raise ConversionProblem(
            f"cannot store the postprocess output shapes: expected 1 {POSTPROCESS_OP} op in "
            f"subgraph 0, found {len(info.postprocess)}"
        )
    op = info.postprocess[0]
    if len(op.outputs) != len(POSTPROCESS_PORT_ORDER):
        raise ConversionProblem(
            f"cannot store the postprocess output shapes: expected {len(POSTPROCESS_PORT_ORDER)} "
            f"{POSTPROCESS_OP} outputs, found {len(op.outputs)}"
        )
    return op


def _redirect_tensors(data: bytes, subgraph: schema.SubGraph, todo: list[tuple[int, tuple[int, ...]]]) -> bytes:
    tab = subgraph._tab
    field = tab.Offset(_SUBGRAPH_TENSORS_SLOT)
    if not field:
        raise ConversionProblem("cannot locate subgraph 0's tensors vector in the flatbuffer")
    vector_start = tab.Vector(field)
    out = bytearray(data)
    for index, shape in todo:
        out.extend(b"\0" * (-len(out) % _ALIGN))
        blob, root = _tensor_table(subgraph.Tensors(index), shape)
        table_at = len(out) + root
        out.extend(blob)
        entry_at = vector_start + index * _UOFFSET.size
        _UOFFSET.pack_into(out, entry_at, table_at - entry_at)
    return bytes(out)


def _tensor_table(tensor: schema.Tensor, shape: tuple[int, ...]) -> tuple[bytes, int]:
    """A finished flatbuffer holding a copy of ``tensor`` with the new shapes; (bytes, offset
    of the table in them). Its internal offsets are relative, so it can be placed anywhere."""
    fields = _field_count(tensor._tab)
    extra = [slot for slot in range(_TENSOR_KNOWN_FIELDS, fields) if tensor._tab.Offset(4 + 2 * slot)]
    if extra:
        raise ConversionProblem(
            f"cannot copy tensor {tensor.Name()!r}: it sets Tensor fields {extra} that this schema "
            "does not know (a newer converter); storing its shape would drop them"
        )
    copy = schema.TensorT.InitFromObj(tensor)
    copy.shape = list(shape)
    copy.shapeSignature = list(shape)
    builder = flatbuffers.Builder(256)
    builder.Finish(copy.Pack(builder))
    blob = bytes(builder.Output())
    if len(blob) % _ALIGN:  # Finish pads to the widest scalar; keep what follows aligned too
        blob += b"\0" * (-len(blob) % _ALIGN)
    return blob, _UOFFSET.unpack_from(blob, 0)[0]


def _field_count(tab: flatbuffers.table.Table) -> int:
    vtable = tab.Pos - tab.Get(N.SOffsetTFlags, tab.Pos)
    return (tab.Get(N.VOffsetTFlags, vtable) - 4) // 2


def _check_rewrite(before: ModelInfo, after_data: bytes, shapes: dict[int, tuple[int, ...]]) -> None:
    """The rewritten tensors must carry the new shapes, and nothing the inspector sees but
    the output shapes may differ from before."""
    after = inspect_model(after_data)
    subgraph = schema.Model.GetRootAs(after_data, 0).Subgraphs(0)
    found = {i: (_ints(subgraph.Tensors(i).ShapeAsNumpy()), _ints(subgraph.Tensors(i).ShapeSignatureAsNumpy()))
             for i in shapes}
    wrong = {i: f for i, f in found.items() if f != (shapes[i], shapes[i])}
    if wrong:
        raise ConversionProblem(f"storing the postprocess output shapes failed: expected {shapes}, found {wrong}")

    def outputs(info: ModelInfo) -> list[tuple[int, str, str]]:
        return [(t.index, t.name, t.dtype) for t in info.outputs]

    if (outputs(after), after.inputs, after.postprocess, after.signatures, after.op_counts) != (
        outputs(before),
        before.inputs,
        before.postprocess,
        before.signatures,
        before.op_counts,
    ):
        raise ConversionProblem("storing the postprocess output shapes changed more than those shapes")


def _ints(value: object) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if hasattr(value, "__iter__") else ()
