"""int8 of a model with a per-channel normalization takes the raw pixels an app feeds.

On a TF1 ``tflite_graph.pb`` (input c) given the ImageNet normalization (EfficientDet's):
the graph with the normalization in front computes what the original computes on
normalized images, and the int8 model liteship converts from it reads raw uint8 pixels as
``(p - mean) / std`` per channel -- where the converter's own int8 (calibrated on normalized
images, one per-tensor input quantization) cannot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.converter import convert, normfold, pixel_input
from liteship.converter.export import inspect_frozen_graph
from liteship.tflite_inspect import inspect_model
from liteship.types import FrozenGraphOptions, Normalization, Variant
from tests.fixtures.tf1_graph import TF1_DEFAULTS, build_tflite_graph_pb, raw_outputs

pytestmark = pytest.mark.tf

H = W = 96
IMAGENET = Normalization(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))


@pytest.fixture(scope="module")
def tf1_pb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tflite_graph_pb(tmp_path_factory.mktemp("pixel") / "tflite_graph.pb", height=H, width=W, seed=3)


def _pixels(seed: int, count: int = 1) -> np.ndarray:
    """Photo-like uint8 images: smooth colour fields over the whole 0-255 range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W] / max(H, W)
    out = []
    for _ in range(count):
        a, b, c = rng.uniform(-4, 4, (3, 3))
        image = 127.5 + 127.5 * np.sin(a[:, None, None] * x + b[:, None, None] * y + c[:, None, None])
        out.append(np.clip(np.rint(image.transpose(1, 2, 0)), 0, 255).astype(np.uint8))
    return np.stack(out)


def _normalized(pixels: np.ndarray) -> np.ndarray:
    mean, std = IMAGENET.channel_arrays()
    return ((pixels.astype(np.float32) - mean) / std).astype(np.float32)


def _raw(graph_def_bytes: bytes, image: np.ndarray) -> list[np.ndarray]:
    """The graph's raw heads (box encodings, class predictions) computed by TensorFlow."""
    return raw_outputs(graph_def_bytes, image)[:2]


def _exported(tf1_pb: Path) -> Any:
    return inspect_frozen_graph(tf1_pb, FrozenGraphOptions(height=H, width=W), IMAGENET, "cli")


def test_the_pixel_graph_computes_on_pixels_what_the_graph_computes_on_normalized_images(tf1_pb: Path) -> None:
    pixels = _pixels(0)
    original = _raw(tf1_pb.read_bytes(), _normalized(pixels))
    folded = _raw(pixel_input.pixel_graph_def(tf1_pb.read_bytes(), TF1_DEFAULTS["input_name"], IMAGENET),
                  pixels.astype(np.float32))
    for a, b in zip(original, folded):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * float(np.abs(a).max()))


def _invoke(model: bytes, image: np.ndarray) -> tuple[Any, dict[int, Any]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.uint8
    interpreter.set_tensor(detail["index"], image)
    interpreter.invoke()
    return interpreter, {d["index"]: d for d in interpreter.get_tensor_details()}


def _real(interpreter: Any, tensors: dict[int, Any], index: int) -> np.ndarray:
    value = interpreter.get_tensor(index).astype(np.float32)
    scale, zero = tensors[index]["quantization"]
    return value if not scale else (value - zero) * np.float32(scale)


def _heads(model: bytes, image: np.ndarray) -> list[np.ndarray]:
    """The two postprocess inputs, as real numbers, with ``image`` in the uint8 input."""
    interpreter, tensors = _invoke(model, image)
    return [_real(interpreter, tensors, i) for i in inspect_model(model).postprocess[0].inputs[:2]]


def _quantized(model: bytes, normalized: np.ndarray) -> np.ndarray:
    (scale, zero), = [inspect_model(model).inputs[0].quantization.per_tensor]
    return np.clip(np.rint(normalized / scale) + zero, 0, 255).astype(np.uint8)


def _first_int8_tensor(model: bytes) -> int:
    """The output of the QUANTIZE op that reads the uint8 input."""
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    (op,) = [op for op in sg.operators if op.inputs is not None and sg.inputs[0] in list(op.inputs)]
    return int(op.outputs[0])


def _psnr(reference: np.ndarray, value: np.ndarray) -> float:
    rmse = float(np.sqrt(np.mean((reference - value) ** 2)))
    return float(20 * np.log10(float(reference.max() - reference.min()) / max(rmse, 1e-12)))


def test_int8_reads_raw_pixels_as_the_per_channel_normalization_says(tf1_pb: Path) -> None:
    exported = _exported(tf1_pb)
    assert pixel_input.needed(exported)
    calibration = _pixels(1, 16)

    def representative():  # normalized like the model, as liteship's calibration gives them
        return ([_normalized(image[None])] for image in calibration)

    model = convert.convert_variant(exported, Variant.INT8, representative).model
    info = inspect_model(model)
    assert info.op_counts.get("CUSTOM:TFLite_Detection_PostProcess") == 1 and not info.flex_ops
    assert info.inputs[0].name == TF1_DEFAULTS["input_name"] and info.inputs[0].dtype == "uint8"
    assert info.inputs[0].quantization.per_tensor == (1.0, 0)

    # the converter's own int8 of the original graph, calibrated on the same normalized images:
    # its uint8 input is the normalized image quantized per tensor
    unfolded = dataclasses.replace(exported, normalization=normfold.FOLDED_NORMALIZATION)
    assert not pixel_input.needed(unfolded)
    plain = convert.convert_variant(unfolded, Variant.INT8, representative).model
    assert inspect_model(plain).inputs[0].quantization.per_tensor != (1.0, 0)

    graph = tf1_pb.read_bytes()
    ours, ideal, misread = [], [], []
    for image in _pixels(2, 4):
        pixels, normalized = image[None], _normalized(image[None])
        # the pixels reach the network whole: the requantized input is the pixel to within 1/2 step
        interpreter, tensors = _invoke(model, pixels)
        first = _first_int8_tensor(model)
        step = float(tensors[first]["quantization"][0])
        assert np.abs(_real(interpreter, tensors, first) - pixels).max() <= step / 2 + 1e-4
        reference = _raw(graph, normalized)
        ours.append([_psnr(r, v) for r, v in zip(reference, _heads(model, pixels))])
        # what no app can feed: the plain model given the normalized image, quantized per tensor
        ideal.append([_psnr(r, v) for r, v in zip(reference, _heads(plain, _quantized(plain, normalized)))])
        misread.append([_psnr(r, v) for r, v in zip(reference, _heads(plain, pixels))])  # what apps feed it
    ours_db, ideal_db, misread_db = (np.median(x, axis=0) for x in (ours, ideal, misread))
    # raw pixels into our int8 are as good as the ideal input into the plain int8 (both 8-bit noise
    # only); raw pixels into the plain int8 are measurably worse (every channel read off)
    assert np.all(ours_db >= ideal_db - 1.0), (ours_db, ideal_db)
    assert np.all(misread_db <= ideal_db - 2.0), (misread_db, ideal_db)
