"""A desktop reference for a TF1 ``tflite_graph.pb`` (inputs c and d), from the graph itself.

Validation reads ``export/reference/``: a SavedModel with three signatures and
``anchors.npy`` (written for input (a) by ``export._ReferenceModule``). For a frozen graph
the same three are made from what the graph holds:

``preprocess(image [1,h,w,3] float 0..255)``
    the OD API ``image_resizer`` of the config (input c: ``fixed_shape_resizer`` at the
    graph's input size, bilinear, as ``export_tflite_ssd_graph.py`` requires) then the
    affine normalization of the feature extractor (read off its own ``preprocess``);
``heads(preprocessed [1,H,W,3])``
    the graph's own ``raw_outputs/box_encodings`` [1,A,4] and
    ``raw_outputs/class_predictions`` [1,A,C+1] (after the score converter) -- exactly the
    two tensors the ``TFLite_Detection_PostProcess`` node consumes, run by TensorFlow;
``detect(preprocessed)``
    those heads decoded with the OD API's ``FasterRcnnBoxCoder`` using the op's own
    ``y/x/h/w_scale`` and the graph's ``anchors`` constant, then the OD API's
    ``batch_multiclass_non_max_suppression`` with the op's settings: fast NMS =
    class-agnostic, one class per box, ``max_detections``; regular NMS = per class with
    ``detections_per_class``, then the top ``max_detections``; the op's score and IoU
    thresholds; the background columns the op skips (``label_offset``) dropped. Like the op,
    boxes are neither clipped to the image nor dropped outside it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship import atomic, odapi
from liteship.converter.saving import save_options
from liteship.errors import ExportProblem, ModelInputProblem, UsageProblem
from liteship.types import DEFAULT_FROZEN_INPUT_SIZE, POSTPROCESS_OP, FrozenGraphOptions, Normalization

BOX_ENCODINGS = "raw_outputs/box_encodings"
CLASS_PREDICTIONS = "raw_outputs/class_predictions"


@dataclass(frozen=True)
class PostprocessSettings:
    """The attrs of a graph's ``TFLite_Detection_PostProcess`` node."""

    num_classes: int
    max_detections: int
    max_classes_per_detection: int
    detections_per_class: int
    use_regular_nms: bool
    score_threshold: float
    iou_threshold: float
    scales: tuple[float, float, float, float]  # y, x, h, w
    #: the node's three inputs: box encodings, class predictions, anchors
    inputs: tuple[str, str, str]


def placeholder_size(graph_def: Any, input_name: str) -> tuple[int, int] | None:
    """(height, width) of the input placeholder's static shape [1,H,W,C]; None when unknown."""
    node = next((n for n in graph_def.node if n.name == input_name), None)
    if node is None or "shape" not in node.attr or node.attr["shape"].shape.unknown_rank:
        return None
    dims = [d.size for d in node.attr["shape"].shape.dim]
    if len(dims) != 4 or dims[1] <= 0 or dims[2] <= 0:
        return None
    return int(dims[1]), int(dims[2])


def resolve_input_size(graph_def: Any, options: FrozenGraphOptions, graph_path: Path) -> FrozenGraphOptions:
    """The input size comes from the graph's placeholder; ``--input-size`` (options.height/
    width) only fills in when it has no static shape (else 300x300). A size that contradicts
    the graph is a usage error."""
    from dataclasses import replace

    static = placeholder_size(graph_def, options.input_name)
    given = (options.height, options.width) if options.height is not None and options.width is not None else None
    if static is not None:
        if given is not None and given != static:
            raise UsageProblem(
                f"--input-size {given[0]}x{given[1]} contradicts {graph_path}: its input {options.input_name!r} is "
                f"[1, {static[0]}, {static[1]}, 3]; drop --input-size (the graph's own size is used)"
            )
        size = static
    else:
        size = given or DEFAULT_FROZEN_INPUT_SIZE
    return replace(options, height=size[0], width=size[1])


def postprocess_node(graph_def: Any) -> Any:
    nodes = [n for n in graph_def.node if n.op == POSTPROCESS_OP]
    if len(nodes) != 1:
        raise ModelInputProblem(
            f"the graph has {len(nodes)} {POSTPROCESS_OP} nodes, expected 1: export it with "
            "export_tflite_ssd_graph.py --add_postprocessing_op=true"
        )
    return nodes[0]


def settings_of(graph_def: Any) -> PostprocessSettings:
    node = postprocess_node(graph_def)
    a = node.attr

    def f(key: str, default: float) -> float:
        return float(a[key].f) if key in a else default

    def i(key: str, default: int) -> int:
        return int(a[key].i) if key in a else default

    if len(node.input) < 3:
        raise ModelInputProblem(f"{POSTPROCESS_OP} has {len(node.input)} inputs, expected 3 (boxes, scores, anchors)")
    return PostprocessSettings(
        num_classes=i("num_classes", 0),
        max_detections=i("max_detections", 10),
        max_classes_per_detection=i("max_classes_per_detection", 1),
        detections_per_class=i("detections_per_class", 100),
        use_regular_nms=bool(a["use_regular_nms"].b) if "use_regular_nms" in a else False,
        score_threshold=f("nms_score_threshold", 0.0),
        iou_threshold=f("nms_iou_threshold", 0.6),
        scales=(f("y_scale", 10.0), f("x_scale", 10.0), f("h_scale", 5.0), f("w_scale", 5.0)),
        inputs=tuple(n.split(":")[0].lstrip("^") for n in node.input[:3]),  # type: ignore[arg-type]
    )


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def anchors_of(graph_def: Any, settings: PostprocessSettings) -> np.ndarray:
    """The center-size anchors [A, 4] (ycenter, xcenter, h, w) the op decodes with: the
    constant feeding its third input (through Identity nodes), else computed by TF."""
    from tensorflow.python.framework import tensor_util

    nodes = {n.name: n for n in graph_def.node}
    name = settings.inputs[2]
    for _ in range(8):
        node = nodes.get(name)
        if node is None:
            break
        if node.op == "Const":
            return tensor_util.MakeNdarray(node.attr["value"].tensor).astype(np.float32).reshape(-1, 4)
        if node.op != "Identity" or not node.input:
            break
        name = node.input[0].split(":")[0]
    import tensorflow as tf

    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            return np.asarray(sess.run(_tensor_name(settings.inputs[2])), np.float32).reshape(-1, 4)


def heads_graph(graph_def: Any, settings: PostprocessSettings) -> Any:
    """The part of the graph the two heads depend on (no postprocess node, no anchors)."""
    import tensorflow as tf

    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(settings.inputs[:2]))


def _resizer(image_resizer: Any) -> Any:
    return odapi.module("builders.image_resizer_builder").build(image_resizer)


def fixed_resizer_config(height: int, width: int) -> Any:
    """``image_resizer { fixed_shape_resizer { height width } }``: what a TF1 TFLite export has."""
    resizer = odapi.module("protos.image_resizer_pb2").ImageResizer()
    resizer.fixed_shape_resizer.height = height
    resizer.fixed_shape_resizer.width = width
    return resizer


def build_module(
    graph_def: Any,
    input_name: str,
    input_shape: tuple[int, int, int, int],
    normalization: Normalization,
    image_resizer: Any | None = None,
) -> tuple[Any, np.ndarray]:
    """The reference ``tf.Module`` (signatures ``preprocess``, ``heads``, ``detect``) and the
    anchors. ``image_resizer``: the config's ImageResizer proto (default: fixed at the input size)."""
    import tensorflow as tf

    settings = settings_of(graph_def)
    anchors = anchors_of(graph_def, settings)
    sub = heads_graph(graph_def, settings)
    _, h, w, c = input_shape
    resize = _resizer(image_resizer if image_resizer is not None else fixed_resizer_config(h, w))
    mean = tf.constant(np.asarray(normalization.mean, np.float32))
    std = tf.constant(np.asarray(normalization.std, np.float32))
    box_coder = odapi.module("box_coders.faster_rcnn_box_coder").FasterRcnnBoxCoder(scale_factors=list(settings.scales))
    box_list = odapi.module("core.box_list")
    nms = odapi.module("core.post_processing").batch_multiclass_non_max_suppression
    yc, xc, ha, wa = anchors.T
    corners = np.stack([yc - ha / 2, xc - wa / 2, yc + ha / 2, xc + wa / 2], axis=1).astype(np.float32)
    returns = [_tensor_name(settings.inputs[0]), _tensor_name(settings.inputs[1])]
    input_tensor = _tensor_name(input_name)
    num_classes = settings.num_classes

    class GraphReferenceModule(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, c], tf.float32, name="image")])
        def preprocess(self, image: Any) -> dict[str, Any]:
            resized, shape = resize(image[0])
            return {"preprocessed": (resized[None] - mean) / std, "true_image_shape": shape[None]}

        @tf.function(input_signature=[tf.TensorSpec([1, h, w, c], tf.float32, name="preprocessed")])
        def heads(self, preprocessed: Any) -> dict[str, Any]:
            boxes, classes = tf.graph_util.import_graph_def(
                sub, input_map={input_tensor: preprocessed}, return_elements=returns, name="graph"
            )
            return {"box_encodings": tf.reshape(boxes, [1, -1, 4]), "class_predictions": classes}

        @tf.function(input_signature=[tf.TensorSpec([1, h, w, c], tf.float32, name="preprocessed")])
        def detect(self, preprocessed: Any) -> dict[str, Any]:
            raw = self.heads(preprocessed)
            decoded = box_coder.decode(raw["box_encodings"][0], box_list.BoxList(tf.constant(corners))).get()
            scores = raw["class_predictions"]
            scores = scores[:, :, scores.shape[-1] - num_classes:]  # the op's label_offset
            regular = settings.use_regular_nms
            boxes, out_scores, out_classes, _, _, count = nms(
                decoded[None, :, None, :],
                scores,
                score_thresh=settings.score_threshold,
                iou_thresh=settings.iou_threshold,
                max_size_per_class=settings.detections_per_class if regular else settings.max_detections,
                max_total_size=settings.max_detections,
                use_class_agnostic_nms=not regular,
                max_classes_per_detection=settings.max_classes_per_detection,
            )
            return {"boxes": boxes, "classes": out_classes, "scores": out_scores,
                    "num_detections": tf.cast(count, tf.float32)}

    return GraphReferenceModule(), anchors


def attach_reference(exported: Any, destination: Path) -> Any:
    """Input (c): the ExportResult with a reference written from its frozen graph."""
    import tensorflow as tf
    from dataclasses import replace

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(exported.source).read_bytes())
    fg = exported.frozen_graph
    norm = exported.model_normalization or exported.normalization
    write_reference(graph_def, destination, fg.input_name, exported.input_shape, norm)
    notes = tuple(n for n in exported.notes if not n.startswith("no desktop reference"))
    return replace(exported, reference_dir=Path(destination), notes=notes)


def write_reference(
    graph_def: Any,
    destination: Path,
    input_name: str,
    input_shape: tuple[int, int, int, int],
    normalization: Normalization,
    image_resizer: Any | None = None,
) -> Path:
    """Write the reference SavedModel + ``anchors.npy`` to ``destination``, atomically."""
    import tensorflow as tf

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent))
    atomic.make_public(staging, directory=True)
    try:
        module, anchors = build_module(graph_def, input_name, input_shape, normalization, image_resizer)
        tf.saved_model.save(
            module, str(staging), signatures={"preprocess": module.preprocess, "heads": module.heads, "detect": module.detect},
            options=save_options(),
        )
        np.save(staging / "anchors.npy", anchors)
        atomic.replace_dir(staging, destination)
    except ModelInputProblem:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportProblem(
            f"could not build the desktop reference from the frozen graph: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}"
        ) from exc
    return destination
