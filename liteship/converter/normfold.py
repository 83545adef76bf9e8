"""Fold a per-channel input normalization into a float model, so that it takes 0-255 pixels.

Why: MediaPipe Tasks refuses float models whose NormalizationOptions differ per channel
(``Per-channel image normalization is not available.``, image_preprocessing_graph.cc), which
is every OD API ResNet-FPN SSD (``x - [123.68, 116.779, 103.939]``) and EfficientDet
(ImageNet mean/std). With ``(x - mean) / std`` computed inside the graph the model's input is
the raw pixel value, and its metadata states one uniform normalization (mean 0, std 1) that
every consumer can apply.

How: the model's input tensor stays the input (same index, so the signature def still
holds) and now receives 0-255 values; two builtin ops are put in front of the graph --
``SUB`` (per-channel mean, skipped when all zero) then ``DIV`` (per-channel std, skipped when
all one) -- writing a new float tensor that every operator which read the input reads
instead. ``SUB``/``DIV`` rather than folding into the first convolution: with SAME padding a
convolution pads the *normalized* image with zeros, which no change of its weights
reproduces at the borders. The model is re-serialised with tflite-support's schema object
API, as the metadata writer does anyway.

Only for float32 inputs (fp32, fp16, dynamic-range variants); a quantized input is
calibrated in normalized space and stays as it is.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from tensorflow_lite_support.metadata import schema_py_generated as schema

from liteship.errors import ConversionProblem
from liteship.tflite_inspect import inspect_model
from liteship.types import Normalization

#: what the metadata of a folded model states: the model normalizes inside
FOLDED_NORMALIZATION = Normalization(mean=(0.0,), std=(1.0,))


def is_per_channel(normalization: Normalization) -> bool:
    return len(set(normalization.mean)) > 1 or len(set(normalization.std)) > 1


def fold_normalization(data: bytes, normalization: Normalization) -> bytes:
    """``data`` with ``(x - mean) / std`` computed inside; its input then takes 0-255 values."""
    info = inspect_model(data)
    if len(info.inputs) != 1 or info.inputs[0].dtype != "float32" or len(info.inputs[0].shape) != 4:
        raise ConversionProblem(
            "cannot fold the normalization into the model: expected one float32 [1,H,W,C] input, found "
            f"{[(t.dtype, list(t.shape)) for t in info.inputs]}")
    channels = info.inputs[0].shape[3]
    mean, std = (_per_channel(v, channels, name) for v, name in ((normalization.mean, "mean"), (normalization.std, "std")))
    if np.any(std == 0):
        raise ConversionProblem(f"cannot fold the normalization: std {std.tolist()} has a 0")
    do_sub, do_div = bool(np.any(mean != 0)), bool(np.any(std != 1))
    if not (do_sub or do_div):
        return data
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    sg = model.subgraphs[0]
    image = sg.inputs[0]
    source = sg.tensors[image]
    normalized = _add_tensor(sg, _name(source) + "/normalized", source)
    for op in sg.operators:  # everything that read the (normalized) input reads the new tensor
        op.inputs = [normalized if i == image else i for i in (op.inputs if op.inputs is not None else [])]
    ops = []
    current = image
    if do_sub:
        out = normalized if not do_div else _add_tensor(sg, _name(source) + "/centered", source)
        ops.append(_binary(model, schema.BuiltinOperator.SUB, schema.BuiltinOptions.SubOptions, schema.SubOptionsT(),
                           current, _constant(model, sg, _name(source) + "/mean", mean), out))
        current = out
    if do_div:
        ops.append(_binary(model, schema.BuiltinOperator.DIV, schema.BuiltinOptions.DivOptions, schema.DivOptionsT(),
                           current, _constant(model, sg, _name(source) + "/std", std), normalized))
    sg.operators = ops + list(sg.operators)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    result = bytes(builder.Output())
    _check(info, inspect_model(result), len(ops))
    return result


def _per_channel(values: tuple[float, ...], channels: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.size == 1:
        return np.repeat(array, channels)
    if array.size != channels:
        raise ConversionProblem(f"cannot fold the normalization: {what} has {array.size} values for {channels} channels")
    return array


def _name(tensor: schema.TensorT) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else (name or "input")


def _add_tensor(sg: schema.SubGraphT, name: str, like: schema.TensorT) -> int:
    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.buffer = name, schema.TensorType.FLOAT32, 0
    tensor.shape = list(like.shape) if like.shape is not None else None
    tensor.shapeSignature = list(like.shapeSignature) if like.shapeSignature is not None else None
    tensor.hasRank = like.hasRank
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _constant(model: schema.ModelT, sg: schema.SubGraphT, name: str, values: np.ndarray) -> int:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(values.astype("<f4").tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.shape = name, schema.TensorType.FLOAT32, [int(values.size)]
    tensor.buffer = len(model.buffers) - 1
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _binary(model: schema.ModelT, builtin: int, options_type: int, options: object, a: int, b: int, out: int) -> schema.OperatorT:
    code_index = next((k for k, code in enumerate(model.operatorCodes)
                       if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == 1), None)
    if code_index is None:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(code)
        code_index = len(model.operatorCodes) - 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = code_index, [a, b], [out]
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def _check(before: object, after: object, added: int) -> None:
    """Same inputs, outputs and signatures; ``added`` more operators."""
    same = (after.inputs, after.outputs, after.signatures) == (before.inputs, before.outputs, before.signatures)  # type: ignore[attr-defined]
    grown = sum(after.op_counts.values()) == sum(before.op_counts.values()) + added  # type: ignore[attr-defined]
    if not (same and grown):
        raise ConversionProblem("folding the normalization changed more than the operators in front of the graph")
