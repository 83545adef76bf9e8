"""Put a converted detector's outputs in ``TFLite_Detection_PostProcess`` port order.

Why: converting an OD API TF2 export leaves subgraph 0's outputs as scores, boxes, count,
classes, while TF1 exports, the op's own output ports and the apps that read outputs *by
index* use boxes, classes, scores, count:

* the LiteRT object-detection interpreter sample (output 0 = locations, 1 = classes, ...),
* the legacy TFLite "detect" Android app (``TFLiteObjectDetectionAPIModel``: 0 = locations,
  1 = classes, 2 = scores, 3 = number of detections),

both of which silently misread a converter-ordered model (scores taken as boxes). Apps that
find outputs by metadata name (Task Library) work with either order.

How: only the four int32 entries of subgraph 0's ``outputs`` vector are permuted, in place.
The vector keeps its length, so nothing is re-serialised and every other byte of the file
is unchanged. Signature defs map names to tensor *indices*, not positions, so they stay
valid. TFLite metadata, however, describes outputs by position (``output_tensor_metadata``
follows the subgraph's output list; the Task Library finds "location", "score"... by it), so
reordering must happen before metadata is written: a model that already has metadata and
is not in port order is refused rather than left with mislabelled outputs.
"""

from __future__ import annotations

import struct

from tensorflow_lite_support.metadata import schema_py_generated as schema

from liteship.errors import ConversionProblem
from liteship.tflite_inspect import ModelInfo, PostprocessOp, inspect_model
from liteship.types import POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, OutputOrder

#: ``table SubGraph { tensors; inputs; outputs; ... }``: outputs is field 2, vtable slot 4 + 2*2
_SUBGRAPH_OUTPUTS_SLOT = 8
_INT32 = struct.Struct("<i")


def reorder_outputs(data: bytes, order: OutputOrder) -> bytes:
    """Return ``data`` with subgraph 0's outputs in ``order``.

    ``OutputOrder.CONVERTER`` returns ``data`` unchanged; ``OutputOrder.PORT`` permutes the
    outputs to boxes, classes, scores, count (idempotent: a model already in port order comes
    back unchanged). Raises TFLiteFileProblem for bytes that are not a TFLite model and
    ConversionProblem for a model whose outputs cannot be put in port order.
    """
    if OutputOrder(order) is OutputOrder.CONVERTER:
        return data
    info = inspect_model(data)
    target = port_order_outputs(info)
    current = tuple(t.index for t in info.outputs)
    if current == target:
        return data
    if info.has_tflite_metadata:
        raise ConversionProblem(
            "cannot reorder the outputs of a model that already has TFLite metadata: "
            "the metadata describes outputs by position and would no longer match",
            hint="reorder the outputs before writing metadata",
        )
    result = _rewrite_outputs(data, target)
    _check_rewrite(info, inspect_model(result), target)
    return result


def port_order_outputs(info: ModelInfo) -> tuple[int, ...]:
    """Tensor indices of the postprocess op's boxes, classes, scores, count ports."""
    op = _single_postprocess_op(info)
    current = tuple(t.index for t in info.outputs)
    if len(current) != len(POSTPROCESS_PORT_ORDER):
        raise ConversionProblem(
            f"cannot put the outputs in port order: expected {len(POSTPROCESS_PORT_ORDER)} model "
            f"outputs, found {len(current)} (tensors {list(current)})"
        )
    target = op.outputs[: len(POSTPROCESS_PORT_ORDER)]
    if len(target) != len(POSTPROCESS_PORT_ORDER) or sorted(current) != sorted(target):
        raise ConversionProblem(
            f"cannot put the outputs in port order: expected the model outputs to be the "
            f"{POSTPROCESS_OP} outputs (tensors {list(op.outputs)}), found tensors {list(current)}"
        )
    return tuple(target)


def _single_postprocess_op(info: ModelInfo) -> PostprocessOp:
    if len(info.postprocess) != 1:
        raise ConversionProblem(
            f"cannot put the outputs in port order: expected 1 {POSTPROCESS_OP} op in "
            f"subgraph 0, found {len(info.postprocess)}"
        )
    return info.postprocess[0]


def _outputs_vector_start(data: bytes, length: int) -> int:
    """Absolute byte offset of the first element of subgraph 0's ``outputs`` vector."""
    tab = schema.Model.GetRootAs(data, 0).Subgraphs(0)._tab
    field_offset = tab.Offset(_SUBGRAPH_OUTPUTS_SLOT)
    if not field_offset or tab.VectorLen(field_offset) != length:
        raise ConversionProblem("cannot locate subgraph 0's outputs vector in the flatbuffer")
    return tab.Vector(field_offset)


def _rewrite_outputs(data: bytes, target: tuple[int, ...]) -> bytes:
    start = _outputs_vector_start(data, len(target))
    out = bytearray(data)
    for position, tensor_index in enumerate(target):
        _INT32.pack_into(out, start + position * _INT32.size, tensor_index)
    return bytes(out)


def _check_rewrite(before: ModelInfo, after: ModelInfo, target: tuple[int, ...]) -> None:
    """The rewrite must change the output order and nothing else the inspector sees."""
    if tuple(t.index for t in after.outputs) != target:
        raise ConversionProblem(f"reordering the outputs failed: expected tensors {list(target)}")
    if (after.inputs, after.postprocess, after.signatures, after.op_counts) != (
        before.inputs,
        before.postprocess,
        before.signatures,
        before.op_counts,
    ):
        raise ConversionProblem(
            "reordering the outputs changed more than the output list (the outputs vector is "
            "shared with another part of the flatbuffer)"
        )
