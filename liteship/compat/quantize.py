"""Quantization-aware TF1 models (``graph_rewriter { quantization }``) on TF 2, without tf.contrib.

A TF1 QAT checkpoint holds, beside the weights, the ranges ``tf.contrib.quantize`` learned:
per layer context ``C`` (the scope of the Conv2D / DepthwiseConv2dNative / MatMul op),
``C/weights_quant/{min,max}``, the layer output's ``C/act_quant/{min,max}`` (for a layer
ending in a residual Add: ``C/conv_quant`` before the Add and ``parent(C)/act_quant`` after
it -- contrib's naming). TF1's exporter called ``contrib_quantize.experimental_create_eval_graph``
to wire FakeQuant ops to them; tf.contrib is gone, and its graph editor with it. Here:

* :func:`graph_rewrite_fn` stands in for ``graph_rewriter_builder.build(...)``: it creates
  the range variables (so restore, pre-flight and the fixture's Saver see the checkpoint's
  layout) without wiring them;
* :func:`apply` rewrites the FROZEN graph: batch norms folded into the preceding layer's
  weights (eval mode: moving statistics, as contrib's eval graph folds them), then
  ``FakeQuantWithMinMaxArgs`` with the checkpoint's ranges on the folded weights (narrow
  range) and on each layer output, and on the input (its known normalization range).
  The TFLite converter then makes a fully integer model from those ranges alone.

Layers are found by :func:`layers` over GraphDef nodes only (op types and inputs), once for
the variables and once for the rewrite, so both agree by construction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_LAYER_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul"}
_BIAS_OPS = {"BiasAdd", "Add", "AddV2"}
_BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}
_ACTIVATIONS = {"Relu", "Relu6"}
_PASS = {"Identity", "ReadVariableOp"}
RANGES = ("weights_quant", "act_quant", "conv_quant")


@dataclass(frozen=True)
class Layer:
    context: str
    op: str  # the conv / matmul node
    weights: str  # its weight input node (before Identity / ReadVariableOp)
    bias: str  # the BiasAdd / FusedBatchNorm after it
    bypass: str | None  # a residual Add after the bias
    output: str  # the node whose output is quantized with act_quant

    @property
    def act_context(self) -> str:
        return self.context.rsplit("/", 1)[0] if self.bypass else self.context


def _parent(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


def _clean(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def layers(graph_def: Any) -> list[Layer]:
    nodes = {n.name: n for n in graph_def.node}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in graph_def.node:
        for i in n.input:
            if not i.startswith("^"):
                consumers[_clean(i)].append(n)

    def source(name: str) -> Any:
        node = nodes[_clean(name)]
        while node.op in _PASS and node.input:
            node = nodes[_clean(node.input[0])]
        return node

    def only(name: str, ops: set[str]) -> Any | None:
        """The single consumer of ``name`` (through Identity nodes), if its op is in ``ops``."""
        after = consumers.get(name, [])
        while len(after) == 1 and after[0].op == "Identity" and "Identity" not in ops:
            after = consumers.get(after[0].name, [])
        return after[0] if len(after) == 1 and after[0].op in ops else None

    found = []
    for node in graph_def.node:
        if node.op not in _LAYER_OPS or len(node.input) < 2:
            continue
        weights = source(node.input[1])
        if weights.op not in ("Const", "VarHandleOp", "VariableV2"):
            continue
        bias = only(node.name, _BN_OPS | _BIAS_OPS)
        if bias is None:
            continue
        bypass = only(bias.name, {"Add", "AddV2"})
        if bypass is not None and source(bypass.input[0]).op == "Const" or (
                bypass is not None and source(bypass.input[1]).op == "Const"):
            bypass = None
        act = only((bypass or bias).name, _ACTIVATIONS)
        output = act or bypass or bias
        found.append(Layer(_parent(node.name), node.name, weights.name, bias.name,
                           bypass.name if bypass else None, output.name))
    return found


def range_variables(graph_def: Any) -> list[str]:
    """The checkpoint variables (``<scope>/<kind>/min`` and ``/max``) a QAT model has."""
    names: list[str] = []
    for layer in layers(graph_def):
        scopes = [f"{layer.context}/weights_quant", f"{layer.act_context}/act_quant"]
        if layer.bypass:
            scopes.append(f"{layer.context}/conv_quant")
        names += [f"{s}/{end}" for s in scopes for end in ("min", "max")]
    return list(dict.fromkeys(names))


def graph_rewrite_fn(graph_rewriter_config: Any, is_training: bool) -> Callable[[], None]:
    """``graph_rewriter_builder.build`` for TF 2: the range variables, in the default graph."""

    def rewrite() -> None:
        import tensorflow as tf

        q = graph_rewriter_config.quantization
        if q.weight_bits != 8 or q.activation_bits != 8:
            raise ValueError("Only 8bit quantization is supported")
        graph = tf.compat.v1.get_default_graph()
        for name in range_variables(graph.as_graph_def()):
            initial = -6.0 if name.endswith("/min") else 6.0
            tf.compat.v1.get_variable(name, initializer=tf.constant(initial), trainable=False,
                                      collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                                   tf.compat.v1.GraphKeys.MOVING_AVERAGE_VARIABLES])

    return rewrite


def checkpoint_ranges(prefix: str, graph_def: Any) -> dict[str, tuple[float, float]]:
    """``<scope>/<kind>`` -> (min, max), read from the checkpoint for every range the graph needs."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    out = {}
    for name in range_variables(graph_def):
        if name.endswith("/min"):
            scope = name[: -len("/min")]
            out[scope] = (float(reader.get_tensor(name)), float(reader.get_tensor(scope + "/max")))
    return out


def _const(graph_def: Any, name: str, value: np.ndarray) -> None:
    from tensorflow.python.framework import tensor_util

    node = graph_def.node.add()
    node.name, node.op = name, "Const"
    node.attr["dtype"].type = 1  # DT_FLOAT
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value.astype(np.float32)))


def _fake_quant(graph_def: Any, name: str, source: str, lo: float, hi: float, narrow: bool) -> str:
    node = graph_def.node.add()
    node.name, node.op = name, "FakeQuantWithMinMaxArgs"
    node.input.append(source)
    node.attr["T"].type = 1
    node.attr["min"].f, node.attr["max"].f = min(lo, 0.0), max(hi, 0.0)  # 0 must be representable
    node.attr["num_bits"].i = 8
    node.attr["narrow_range"].b = narrow
    return name


def apply(graph_def: Any, ranges: dict[str, tuple[float, float]], input_name: str,
          input_range: tuple[float, float]) -> Any:
    """The frozen graph with batch norms folded and FakeQuant nodes on weights, layer outputs
    and the input (see the module docstring). ``graph_def`` is not modified."""
    from tensorflow.core.framework import graph_pb2
    from tensorflow.python.framework import tensor_util

    gd = graph_pb2.GraphDef()
    gd.CopyFrom(graph_def)
    nodes = {n.name: n for n in gd.node}

    def value(name: str) -> np.ndarray:
        node = nodes[_clean(name)]
        while node.op in _PASS:
            node = nodes[_clean(node.input[0])]
        return tensor_util.MakeNdarray(node.attr["value"].tensor)

    rewired: dict[str, str] = {}  # node output -> the FakeQuant that replaces it for consumers
    for layer in layers(gd):
        conv, bias = nodes[layer.op], nodes[layer.bias]
        weights = value(conv.input[1])
        if bias.op in _BN_OPS:
            gamma, beta, mean, var = (value(i) for i in bias.input[1:5])
            scale = gamma / np.sqrt(var + bias.attr["epsilon"].f)
            if conv.op == "DepthwiseConv2dNative":
                folded = weights * scale.reshape(weights.shape[2], weights.shape[3])
            else:
                folded = weights * scale
            offset = beta - mean * scale
            _const(gd, f"{layer.context}/folded_bias", offset)
            first = bias.input[0]
            bias.Clear()
            bias.name, bias.op = layer.bias, "BiasAdd"
            bias.input.extend([first, f"{layer.context}/folded_bias"])
            bias.attr["T"].type = 1
            bias.attr["data_format"].s = b"NHWC"
        else:
            folded = weights
        _const(gd, f"{layer.context}/folded_weights", folded)
        lo, hi = ranges.get(f"{layer.context}/weights_quant", (float(folded.min()), float(folded.max())))
        conv.input[1] = _fake_quant(gd, f"{layer.context}/weights_quant/FakeQuant", f"{layer.context}/folded_weights",
                                    lo, hi, narrow=True)
        key = f"{layer.act_context}/act_quant"
        if key in ranges:
            rewired[layer.output] = _fake_quant(gd, f"{key}/FakeQuant", layer.output, *ranges[key], narrow=False)
        if layer.bypass and f"{layer.context}/conv_quant" in ranges:
            rewired[layer.bias] = _fake_quant(gd, f"{layer.context}/conv_quant/FakeQuant", layer.bias,
                                              *ranges[f"{layer.context}/conv_quant"], narrow=False)
    rewired[input_name] = _fake_quant(gd, f"{input_name}/input_quant/FakeQuant", input_name, *input_range, narrow=False)
    quant_nodes = set(rewired.values())
    for node in gd.node:
        if node.name in quant_nodes:
            continue
        for i, inp in enumerate(node.input):
            if not inp.startswith("^") and inp.split(":")[0] in rewired and (":" not in inp or inp.endswith(":0")):
                node.input[i] = rewired[inp.split(":")[0]]
    import tensorflow as tf

    # the original weight constants are now unused; keep what the outputs need
    outputs = [n.name for n in gd.node if n.op == "TFLite_Detection_PostProcess"] or [
        "raw_outputs/box_encodings", "raw_outputs/class_predictions"]
    return tf.compat.v1.graph_util.extract_sub_graph(gd, outputs)


def calibrate_ranges(sess: Any, graph: Any, input_name: str, seed: int = 0, images: int = 8) -> None:
    """Tests: set a model's range variables to the min/max its layers reach on random inputs
    in [-1, 1] -- what QAT training would have learned for them (stands in for training)."""
    import tensorflow as tf

    gd = graph.as_graph_def()
    rng = np.random.default_rng(seed)
    feed = {f"{input_name}:0": rng.uniform(-1, 1, (images, *graph.get_tensor_by_name(f"{input_name}:0").shape[1:]))}
    names: dict[str, str] = {}
    for layer in layers(gd):
        names[f"{layer.act_context}/act_quant"] = f"{layer.output}:0"
        if layer.bypass:
            names[f"{layer.context}/conv_quant"] = f"{layer.bias}:0"
    lo: dict[str, float] = defaultdict(lambda: np.inf)
    hi: dict[str, float] = defaultdict(lambda: -np.inf)
    for i in range(images):
        values = sess.run(names, {k: v[i:i + 1].astype(np.float32) for k, v in feed.items()})
        for key, v in values.items():
            lo[key], hi[key] = min(lo[key], float(v.min())), max(hi[key], float(v.max()))
    with graph.as_default():
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
    for key in names:
        variables[f"{key}/min"].load(lo[key], sess)
        variables[f"{key}/max"].load(hi[key], sess)
    for layer in layers(gd):  # weights: the folded weights' own range is computed at rewrite time
        key = f"{layer.context}/weights_quant"
        folded = apply_fold_preview(sess, graph, layer)
        variables[f"{key}/min"].load(float(folded.min()), sess)
        variables[f"{key}/max"].load(float(folded.max()), sess)


def apply_fold_preview(sess: Any, graph: Any, layer: Layer) -> np.ndarray:
    """The folded weights of ``layer`` from the session's variable values (tests)."""
    w = sess.run(graph.get_operation_by_name(layer.op).inputs[1])
    bias = graph.get_operation_by_name(layer.bias)
    if bias.type not in _BN_OPS:
        return w
    gamma, _, _, var = sess.run(list(bias.inputs[1:5]))
    scale = gamma / np.sqrt(var + bias.get_attr("epsilon"))
    return w * (scale.reshape(w.shape[2], w.shape[3]) if layer.op.endswith("depthwise") or w.shape[3] != scale.size
                else scale)
