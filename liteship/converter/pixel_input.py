"""A per-channel normalization put into the TensorFlow graph, before int8 conversion.

Why: a full-integer model's uint8 input is one per-tensor affine map, ``value = scale *
(q - zero_point)``, and apps feed it the raw pixels (the Task Library, MediaPipe, the LiteRT
samples and the bundled app all copy camera bytes into it). A per-channel normalization --
every OD API ResNet-FPN (``x - [123.68, 116.779, 103.939]``) and EfficientDet (ImageNet
mean/std) -- cannot be expressed by one such map, so an int8 model calibrated on normalized
images reads every channel of an app's pixels wrongly (EfficientDet-D0 512: off by up to
0.38 normalized units, letterbox recall 0.34). :mod:`liteship.converter.normfold` edits the
float ``.tflite`` after conversion instead, which an int8 model cannot take: its SUB/DIV
would have to be quantized too.

How: the graph the converter reads gets the normalization in front, as a 1x1 depthwise
convolution (weights ``1 / std``, bias ``-mean / std`` per channel), so its input is the
0-255 pixel, and calibration runs on pixels (the representative samples are mapped back
with ``pre * std + mean``). One op, because each int8 op rounds its output once: the
normalized image is then rounded once, as when the converter quantizes a normalized input
itself. MUL then ADD rounds it twice (measured on a TF1 graph: 1.1 dB less PSNR on the heads
than the converter's own int8 fed the ideal input; the convolution is 0.4 dB above it), and
TFLite has no int8 DIV. :func:`pixel_quantized_input` then states the uint8 input as the
raw pixel (scale 1, zero point 0); the converter's own QUANTIZE op from the uint8 input to
the first int8 tensor requantizes, so nothing else changes.

* a SavedModel (inputs a, b): loaded and wrapped in a ``tf.Module`` whose serving function
  normalizes and calls the original signature; the ``TFLite_Detection_PostProcess``
  composite (``experimental_implements``) is kept as a function of the saved graph;
* a frozen ``tflite_graph.pb`` (inputs c, d): DepthwiseConv2dNative + BiasAdd after the
  input placeholder, which keeps its name, and every reader of the placeholder reads the normalized tensor.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from liteship.converter.normfold import FOLDED_NORMALIZATION, is_per_channel
from liteship.converter.saving import save_options
from liteship.errors import ConversionProblem
from liteship.types import Normalization

#: names of what is added to the graph (the converter keeps none of them as tensor names
#: an app sees: the input keeps its own name)
_PREFIX = "liteship_pixel_input"


def needed(export: Any) -> bool:
    """Does the int8 variant of ``export`` need its normalization in the graph? Yes for a
    per-channel one; a QAT graph (input d) keeps the normalization its fake-quant ranges
    were trained with (per-tensor: :func:`convert._quantization_aware_int8` refuses others)."""
    return not export.quantization_aware and is_per_channel(export.normalization)


def normalization_arrays(norm: Normalization, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel, float32: ``normalized = pixel * scale + offset``."""
    mean, std = (np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (channels,)) for v in (norm.mean, norm.std))
    if np.any(std == 0):
        raise ConversionProblem(f"cannot put the normalization into the graph: std {list(norm.std)} has a 0")
    return (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)


def pixel_export(export: Any, workdir: Path) -> Any:
    """``export`` (an :class:`~liteship.converter.export.ExportResult`) with its graph taking
    0-255 pixels; the new source is written under ``workdir`` (the caller removes it)."""
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if export.frozen_graph is not None:
        source = workdir / "tflite_graph_pixels.pb"
        source.write_bytes(pixel_graph_def(export.source.read_bytes(), export.frozen_graph.input_name,
                                           export.normalization))
    else:
        source = workdir / "saved_model"
        pixel_saved_model(export.source, export.normalization, source)
    # the graph normalizes now, as a folded float model's does: its input is the pixel
    return replace(export, source=source, normalization=FOLDED_NORMALIZATION)


def pixel_samples(representative: Any, norm: Normalization) -> Any:
    """The representative dataset (normalized samples) as 0-255 pixels: ``pre * std + mean``."""
    mean, std = (np.asarray(v, np.float32).reshape(-1) for v in (norm.mean, norm.std))

    def samples() -> Iterator[list[np.ndarray]]:
        for sample in representative():
            yield [(np.asarray(sample[0], np.float32) * std + mean).astype(np.float32)]

    return samples


def pixel_saved_model(saved_model: Path, norm: Normalization, out: Path) -> None:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(saved_model))
        serving = loaded.signatures["serving_default"]
    except (KeyError, OSError, ValueError) as exc:
        raise ConversionProblem(f"cannot read {saved_model} to put the normalization into it: {exc}") from exc
    specs = serving.structured_input_signature[1]
    if len(specs) != 1:
        raise ConversionProblem(f"expected one image input in {saved_model}, found {sorted(specs)}")
    (key, spec), = specs.items()
    scale, offset = normalization_arrays(norm, int(spec.shape[-1]))

    class PixelInput(tf.Module):
        def __init__(self) -> None:
            super().__init__(name=_PREFIX)
            self.inner = loaded  # tracked: its variables are saved with this module

        @tf.function(input_signature=[tf.TensorSpec(spec.shape, tf.float32, name=spec.name or key)])
        def serve(self, pixels: Any) -> Any:
            weights = tf.constant(scale.reshape(1, 1, -1, 1))
            normalized = tf.nn.bias_add(tf.nn.depthwise_conv2d(pixels, weights, [1, 1, 1, 1], "VALID"),
                                        tf.constant(offset))
            return serving(**{key: normalized})

    module = PixelInput()
    tf.saved_model.save(module, str(out), signatures=module.serve.get_concrete_function(), options=save_options())


def pixel_graph_def(data: bytes, input_name: str, norm: Normalization) -> bytes:
    """A binary GraphDef whose placeholder ``input_name`` takes pixels."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    placeholder = next((n for n in graph_def.node if n.name == input_name), None)
    if placeholder is None:
        raise ConversionProblem(f"the graph has no input node {input_name!r} to put the normalization after")
    channels = placeholder.attr["shape"].shape.dim[-1].size if placeholder.attr["shape"].shape.dim else 3
    scale, offset = normalization_arrays(norm, channels if channels > 0 else 3)
    names = {f"{_PREFIX}/{part}" for part in ("scale", "offset", "scaled", "normalized")}  # added below
    for node in graph_def.node:  # every reader of the placeholder reads the normalized tensor
        if node.name in names:
            raise ConversionProblem(f"the graph already has a node {node.name!r}")
        node.input[:] = [f"{_PREFIX}/normalized" if i in (input_name, f"{input_name}:0") else i for i in node.input]
    dtype = tf.float32.as_datatype_enum

    def const(name: str, values: np.ndarray) -> None:
        node = graph_def.node.add(name=f"{_PREFIX}/{name}", op="Const")
        node.attr["dtype"].type = dtype
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values, tf.float32))

    const("scale", scale.reshape(1, 1, -1, 1))
    const("offset", offset)
    scaled = graph_def.node.add(name=f"{_PREFIX}/scaled", op="DepthwiseConv2dNative",
                                input=[input_name, f"{_PREFIX}/scale"])
    scaled.attr["T"].type = dtype
    scaled.attr["strides"].list.i.extend([1, 1, 1, 1])
    scaled.attr["padding"].s = b"VALID"
    scaled.attr["data_format"].s = b"NHWC"
    scaled.attr["dilations"].list.i.extend([1, 1, 1, 1])
    normalized = graph_def.node.add(name=f"{_PREFIX}/normalized", op="BiasAdd",
                                    input=[f"{_PREFIX}/scaled", f"{_PREFIX}/offset"])
    normalized.attr["T"].type = dtype
    normalized.attr["data_format"].s = b"NHWC"
    return graph_def.SerializeToString()


def pixel_quantized_input(model: bytes) -> bytes:
    """The int8 model of a pixel-input graph with its uint8 input stated as the raw pixel
    (scale 1, zero point 0). The converter calibrates the input's range on the images, e.g.
    [3, 251] (scale 0.973): an app's byte would then be read as 0.973 * byte. Only the
    input tensor's parameters change; the QUANTIZE op that follows it (uint8 -> int8, added
    by the converter for ``inference_input_type=uint8``) requantizes to the calibrated
    int8 tensor. An int8 input (no QUANTIZE op in front) is left as calibrated."""
    import flatbuffers
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    if len(sg.inputs) != 1:
        raise ConversionProblem(f"expected one input, found {len(sg.inputs)}")
    image = sg.inputs[0]
    tensor = sg.tensors[image]
    if tensor.type == schema.TensorType.INT8:
        return model
    if tensor.type != schema.TensorType.UINT8:
        raise ConversionProblem(f"expected a uint8 or int8 input after int8 conversion, found tensor type {tensor.type}")
    readers = [op for op in sg.operators if op.inputs is not None and image in list(op.inputs)]
    codes = [max(m.operatorCodes[op.opcodeIndex].builtinCode, m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
             for op in readers]
    if not readers or any(code != schema.BuiltinOperator.QUANTIZE for code in codes):
        raise ConversionProblem("the uint8 input is not read by QUANTIZE ops only; cannot restate its quantization")
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint = [1.0], [0]
    tensor.quantization = quantization
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
