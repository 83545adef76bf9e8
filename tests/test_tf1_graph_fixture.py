"""The TF1 ``tflite_graph.pb`` fixture is what ``export_tflite_ssd_graph.py`` writes, and
TF 2.21's v1 converter turns it into a model with the TFLite_Detection_PostProcess op."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.tf1_graph import TF1_DEFAULTS, build_tflite_graph_pb, raw_outputs

pytestmark = pytest.mark.tf

H, W, NUM_CLASSES, MAX_DET = 96, 96, 3, 10
INPUT = TF1_DEFAULTS["input_name"]
OUTPUTS = list(TF1_DEFAULTS["output_names"])
POST = TF1_DEFAULTS["custom_op"]


@pytest.fixture(scope="module")
def tf1_pb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tf1") / "tflite_graph.pb"
    return build_tflite_graph_pb(path, height=H, width=W, num_classes=NUM_CLASSES, max_detections=MAX_DET, seed=0)


def _converter(pb: Path) -> Any:
    import tensorflow as tf

    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(pb), input_arrays=[INPUT], output_arrays=OUTPUTS, input_shapes={INPUT: [1, H, W, 3]}
    )
    converter.allow_custom_ops = True
    return converter


def _representative():
    rng = np.random.default_rng(1)
    for _ in range(8):
        yield [rng.uniform(-1.0, 1.0, (1, H, W, 3)).astype(np.float32)]


@pytest.fixture(scope="module")
def float_model(tf1_pb: Path) -> bytes:
    return _converter(tf1_pb).convert()


@pytest.fixture(scope="module")
def int8_model(tf1_pb: Path) -> bytes:
    import tensorflow as tf

    converter = _converter(tf1_pb)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    return converter.convert()


def _graph_def(pb: Path) -> Any:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    return graph_def


def _op_codes(model: bytes) -> Counter:
    """Operator counts straight from the flatbuffer: builtin names, ``CUSTOM:<code>``."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    root = schema.Model.GetRootAsModel(model, 0)
    counts: Counter = Counter()
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            code = root.OperatorCodes(graph.Operators(i).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                counts[f"CUSTOM:{code.CustomCode().decode()}"] += 1
            else:
                counts[names[builtin]] += 1
    return counts


def _interpreter(model: bytes, delegates: bool = True) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=model, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    return interpreter


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (1, H, W, 3)).astype(np.float32)


def _run(model: bytes, image: np.ndarray) -> list[np.ndarray]:
    interpreter = _interpreter(model)
    detail = interpreter.get_input_details()[0]
    if detail["dtype"] != np.float32:
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        image = np.clip(np.round(image / scale + zero), info.min, info.max).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _raw_outputs(pb: Path, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """box_encodings [1,N,4], class_predictions [1,N,C+1] (after sigmoid), anchors [N,4],
    computed by TensorFlow from the frozen graph minus the custom op."""
    return tuple(raw_outputs(pb.read_bytes(), image))  # type: ignore[return-value]


def _check_detections(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count: np.ndarray) -> None:
    n = int(count[0])
    assert count[0] == n and 0 < n <= MAX_DET
    assert np.all((scores[0, :n] >= 0.0) & (scores[0, :n] <= 1.0))
    assert np.all(np.diff(scores[0, :n]) <= 1e-6), "fast NMS returns detections by descending score"
    cls = classes[0, :n]
    assert np.array_equal(cls, np.round(cls)) and cls.min() >= 0 and cls.max() < NUM_CLASSES
    b = boxes[0, :n]
    assert np.all(b >= -0.25) and np.all(b <= 1.25), b  # decoded, not clipped: [0,1]-ish
    assert np.all(b[:, 2] >= b[:, 0]) and np.all(b[:, 3] >= b[:, 1])  # ymin, xmin, ymax, xmax


def test_graph_def_has_the_tf1_exporter_interface(tf1_pb: Path) -> None:
    graph_def = _graph_def(tf1_pb)
    nodes = {n.name: n for n in graph_def.node}
    ops = Counter(n.op for n in graph_def.node)
    assert not {"VariableV2", "VarHandleOp", "ReadVariableOp", "AssignVariableOp"} & set(ops), "not frozen"
    assert ops["Placeholder"] == 1 and ops[POST] == 1
    assert "anchors_1" not in nodes and "global_step" not in nodes, "unused nodes stripped"

    placeholder = nodes[INPUT]
    assert placeholder.op == "Placeholder" and placeholder.attr["dtype"].type == 1  # DT_FLOAT
    assert [d.size for d in placeholder.attr["shape"].shape.dim] == [1, H, W, 3]

    from tensorflow.python.framework import tensor_util

    anchors = tensor_util.MakeNdarray(nodes["anchors"].attr["value"].tensor)
    assert nodes["anchors"].op == "Const" and anchors.dtype == np.float32 and anchors.shape[1] == 4
    ycenter, xcenter, height, width = anchors.T  # center-size encoding
    assert np.all((ycenter > 0) & (ycenter < 1) & (xcenter > 0) & (xcenter < 1))
    assert np.all((height > 0) & (width > 0))
    assert nodes["raw_outputs/box_encodings"].op == "Identity"
    assert nodes["raw_outputs/class_predictions"].op == "Identity"

    post = nodes[POST]
    assert post.op == POST
    assert list(post.input) == ["raw_outputs/box_encodings", "raw_outputs/class_predictions", "anchors"]
    attr = post.attr
    assert {k: attr[k].i for k in ("max_detections", "max_classes_per_detection", "num_classes", "detections_per_class")} == {
        "max_detections": MAX_DET, "max_classes_per_detection": 1, "num_classes": NUM_CLASSES, "detections_per_class": 100,
    }
    assert {k: attr[k].f for k in ("y_scale", "x_scale", "h_scale", "w_scale")} == {
        "y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0,
    }
    assert attr["nms_iou_threshold"].f == pytest.approx(0.6) and attr["nms_score_threshold"].f == pytest.approx(1e-8)
    assert attr["use_regular_nms"].b is False
    assert attr["_output_quantized"].b is True and attr["_support_output_type_float_in_quantized_op"].b is True
    assert list(attr["_output_types"].list.type) == [1, 1, 1, 1]  # 4 x DT_FLOAT


def test_float_conversion_has_one_postprocess_op_and_port_order_outputs(float_model: bytes) -> None:
    ops = _op_codes(float_model)
    assert ops[f"CUSTOM:{POST}"] == 1
    assert sum(v for k, v in ops.items() if k.startswith("CUSTOM")) == 1
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "CONCATENATION", "LOGISTIC"} <= set(ops)
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(ops)
    interpreter = _interpreter(float_model, delegates=False)
    assert Counter(o["op_name"] for o in interpreter._get_ops_details())[POST] == 1
    (inp,) = interpreter.get_input_details()
    assert inp["name"] == INPUT and list(inp["shape"]) == [1, H, W, 3] and inp["dtype"] == np.float32
    outs = interpreter.get_output_details()
    assert [o["name"] for o in outs] == OUTPUTS  # boxes, classes, scores, count
    assert [list(o["shape"]) for o in outs] == [[1, MAX_DET, 4], [1, MAX_DET], [1, MAX_DET], [1]]
    assert all(o["dtype"] == np.float32 for o in outs)


def test_float_model_runs_and_matches_the_graphs_raw_outputs(tf1_pb: Path, float_model: bytes) -> None:
    image = _image(0)
    boxes, classes, scores, count = _run(float_model, image)
    _check_detections(boxes, classes, scores, count)

    # The first detection is the best (anchor, class) pair of the TF graph's raw outputs,
    # decoded with the op's scales: anchors, background column and attrs are wired right.
    encodings, class_predictions, anchors = _raw_outputs(tf1_pb, image)
    foreground = class_predictions[0, :, 1:]
    assert np.ptp(foreground) > 0.5 and np.abs(encodings).max() > 0.1, "heads depend on the input"
    anchor, cls = np.unravel_index(np.argmax(foreground), foreground.shape)
    assert scores[0, 0] == pytest.approx(foreground[anchor, cls], abs=1e-5)
    assert classes[0, 0] == cls
    ty, tx, th, tw = encodings[0, anchor]
    ya, xa, ha, wa = anchors[anchor]
    yc, xc = ty / 10.0 * ha + ya, tx / 10.0 * wa + xa
    h, w = np.exp(th / 5.0) * ha, np.exp(tw / 5.0) * wa
    np.testing.assert_allclose(boxes[0, 0], [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], atol=1e-5)


def test_full_int8_conversion_keeps_the_postprocess_op_float(float_model: bytes, int8_model: bytes) -> None:
    """optimizations=[DEFAULT], representative_dataset (float32 in [-1, 1]),
    supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type=uint8, allow_custom_ops:
    converts as is. The backbone and heads are int8; the tensors feeding the custom op are
    dequantized (LOGISTIC runs in float), and its four outputs stay float32."""
    ops = _op_codes(int8_model)
    assert ops[f"CUSTOM:{POST}"] == 1
    assert sum(v for k, v in ops.items() if k.startswith("CUSTOM")) == 1
    assert ops["QUANTIZE"] == 1 and ops["DEQUANTIZE"] >= 1
    interpreter = _interpreter(int8_model, delegates=False)
    (inp,) = interpreter.get_input_details()
    assert inp["dtype"] == np.uint8 and list(inp["shape"]) == [1, H, W, 3]
    scale, zero = inp["quantization"]
    assert scale == pytest.approx(2.0 / 255.0, rel=1e-3) and zero == 128
    outs = interpreter.get_output_details()
    assert [o["name"] for o in outs] == OUTPUTS
    assert [list(o["shape"]) for o in outs] == [[1, MAX_DET, 4], [1, MAX_DET], [1, MAX_DET], [1]]
    assert all(o["dtype"] == np.float32 for o in outs)
    tensors = interpreter.get_tensor_details()
    details = {o["op_name"]: o for o in interpreter._get_ops_details()}
    assert all(tensors[i]["dtype"] == np.float32 for i in details[POST]["inputs"])
    conv_outputs = [tensors[o["outputs"][0]]["dtype"] for o in interpreter._get_ops_details() if o["op_name"] == "CONV_2D"]
    assert conv_outputs and all(d == np.int8 for d in conv_outputs)

    image = _image(0)
    q_boxes, q_classes, q_scores, q_count = _run(int8_model, image)
    _check_detections(q_boxes, q_classes, q_scores, q_count)
    _, _, f_scores, _ = _run(float_model, image)
    assert q_scores[0, 0] == pytest.approx(f_scores[0, 0], abs=0.05)
