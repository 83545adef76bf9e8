"""Export: the three accepted inputs become one TFLite-convertible source.

(a) pipeline.config + checkpoint -> the OD API's own TFLite exporter logic
    (``export_tflite_graph_lib_tf2.SSDModule``: ``predict`` + score conversion + anchors +
    the ``TFLite_Detection_PostProcess`` composite) saved as a SavedModel, PLUS a
    ``reference`` SavedModel with the model's own preprocess / raw heads / postprocess,
    aligned with the exported op's NMS settings: the exported SavedModel's detection
    outputs are dummies, so numbers for parity must come from the detection model itself.
(b) a SavedModel already written by ``export_tflite_graph_tf2.py`` -> checked and used as is.
(c) a TF1 ``tflite_graph.pb`` from ``export_tflite_ssd_graph.py`` -> checked and used as is.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from liteship import atomic, odapi
from liteship.converter import extractor_norm, graph_reference, preflight
from liteship.converter.letterbox import ResizeSpec
from liteship.converter.saving import save_options
from liteship.errors import ExportProblem, ModelInputProblem
from liteship.types import DEFAULT_NORMALIZATION, POSTPROCESS_OP, ExportOptions, FrozenGraphOptions, InputKind, Normalization



@dataclass(frozen=True)
class ExportResult:
    kind: InputKind
    #: SavedModel dir (a, b) or tflite_graph.pb (c): what the converter reads
    source: Path
    input_shape: tuple[int, int, int, int]
    normalization: Normalization
    #: where the normalization came from: feature_extractor | config | cli | default
    normalization_source: str
    num_classes: int
    max_detections: int
    use_regular_nms: bool | None
    score_threshold: float | None
    iou_threshold: float | None
    #: SavedModel with `preprocess`, `heads`, `detect` signatures + anchors.npy (input a only)
    reference_dir: Path | None = None
    frozen_graph: FrozenGraphOptions | None = None
    checkpoint: str | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the OD API feature extractor class the graph was built with, when known
    feature_extractor: str | None = None
    #: what that feature extractor's preprocess does: the input the model was trained on.
    #: ``normalization`` may differ when the user overrode it (--norm-mean/--norm-std)
    model_normalization: Normalization | None = None
    #: the graph carries FakeQuant ranges (a TF1 QAT model): int8 comes from them, no calibration
    quantization_aware: bool = False
    #: how the app must resize photos to the input (input a; None: unknown, stretch assumed)
    resize: ResizeSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        d["kind"] = self.kind.value
        d["resize"] = self.resize.to_dict() if self.resize is not None else None
        return d


def with_thresholds(config: Any, options: ExportOptions) -> Any:
    """A copy of the pipeline config with the user's NMS score/IoU thresholds (None = keep)."""
    cfg = copy.deepcopy(config)
    nms = cfg.model.ssd.post_processing.batch_non_max_suppression
    if options.score_threshold is not None:
        nms.score_threshold = options.score_threshold
    if options.iou_threshold is not None:
        nms.iou_threshold = options.iou_threshold
    return cfg


def aligned_config(config: Any, options: ExportOptions) -> Any:
    """A copy of the pipeline config whose postprocess matches the exported TFLite op.

    The OD API's own ``postprocess`` then computes what TFLite_Detection_PostProcess
    computes: fast NMS = class-agnostic with one class per box; regular NMS = per-class
    NMS (``detections_per_class`` 100, the op's default) then the top ``max_detections``.
    Boxes stay in the network input's frame (``change_coordinate_frame`` off), like the op's;
    the reference's ``detect`` also leaves them unclipped (:class:`_ReferenceModule`).
    """
    cfg = with_thresholds(config, options)
    nms = cfg.model.ssd.post_processing.batch_non_max_suppression
    nms.change_coordinate_frame = False
    nms.max_total_detections = options.max_detections
    if options.use_regular_nms:
        nms.use_class_agnostic_nms = False
        nms.max_detections_per_class = 100
    else:
        nms.use_class_agnostic_nms = True
        nms.max_classes_per_detection = 1
        nms.max_detections_per_class = options.max_detections
    return cfg


def derive_normalization(
    model: Any, height: int, width: int, channels: int, given: Normalization | None = None
) -> tuple[Normalization, str]:
    """Read mean/std off the model's own ``preprocess`` (it must be affine per channel).

    Returns (normalization, source). When the preprocess is not affine, ``given``
    (--norm-mean/--norm-std) is used if there is one, else the export is refused.
    """
    import tensorflow as tf

    def pre(value: float) -> np.ndarray:
        out, _ = model.preprocess(tf.fill([1, height, width, channels], value))
        return out.numpy().reshape(-1, out.shape[-1]).mean(axis=0, dtype=np.float64)  # float32 sums drift on ResNet's +-128

    norm = extractor_norm.fit_affine(pre)
    if norm is not None:
        return norm, "feature_extractor"
    if given is not None:
        return given, "cli"
    raise ExportProblem(
        "the feature extractor's preprocess is not an affine (x - mean) / std map; "
        "TFLite metadata cannot describe it — pass --norm-mean/--norm-std explicitly"
    )


class _ReferenceModule:
    """Built lazily (needs TF): the model's own preprocess / heads / postprocess."""

    @staticmethod
    def build(model: Any, config: Any, height: int, width: int, channels: int) -> Any:
        import tensorflow as tf

        post_processing_builder = odapi.module("builders.post_processing_builder")
        _, score_fn = post_processing_builder.build(config.model.ssd.post_processing)

        # One trace of the model's predict, called by both heads and detect (tracing a zoo
        # model is most of an export's time). autograph=False: the OD API's model code is
        # written for graph mode, and converting it to AutoGraph took about a third of the
        # export; the reference's outputs are bit-identical either way (checked on
        # EfficientDet, the family with the most Python in its model code).
        predict = tf.function(lambda preprocessed: model.predict(preprocessed, None), autograph=False)

        class ReferenceModule(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            @tf.function(input_signature=[tf.TensorSpec([1, None, None, channels], tf.float32, name="image")],
                         autograph=False)
            def preprocess(self, image: Any) -> dict[str, Any]:
                out, shapes = self.model.preprocess(image)
                return {"preprocessed": out, "true_image_shape": shapes}

            @tf.function(input_signature=[tf.TensorSpec([1, height, width, channels], tf.float32, name="preprocessed")],
                         autograph=False)
            def heads(self, preprocessed: Any) -> dict[str, Any]:
                pred = predict(preprocessed)
                return {
                    "box_encodings": pred["box_encodings"],
                    "class_predictions": score_fn(pred["class_predictions_with_background"]),
                }

            @tf.function(input_signature=[tf.TensorSpec([1, height, width, channels], tf.float32, name="preprocessed")],
                         autograph=False)
            def detect(self, preprocessed: Any) -> dict[str, Any]:
                shapes = tf.constant([[height, width, channels]], tf.int32)
                # TFLite_Detection_PostProcess neither clips boxes to the image nor drops the ones
                # outside it; the OD API's NMS does both when given a clip window. Without one
                # (batch_multiclass_non_max_suppression then clips to the boxes' own extent: a
                # no-op) the reference keeps the op's box convention and parity compares like
                # with like. Only while this function is traced.
                nms = self.model._non_max_suppression_fn

                def unclipped_nms(*args: Any, clip_window: Any = None, **kwargs: Any) -> Any:
                    return nms(*args, **kwargs)

                self.model._non_max_suppression_fn = unclipped_nms
                try:
                    det = self.model.postprocess(predict(preprocessed), shapes)  # predict ignores shapes
                finally:
                    self.model._non_max_suppression_fn = nms
                return {
                    "boxes": det["detection_boxes"],
                    "classes": det["detection_classes"],
                    "scores": det["detection_scores"],
                    "num_detections": det["num_detections"],
                }

        return ReferenceModule()


def _without_keras_layer_traces() -> contextlib.AbstractContextManager[Any]:
    """``tf.saved_model.save`` of a module holding a Keras 2 model also traces and saves every
    layer's call functions (for reloading as Keras objects; Keras' own ``save_traces``).
    Nothing here reloads Keras objects: the converter reads the serving signature, the
    reference its three signatures. Without the traces the export takes about half the
    time, the SavedModel is ~35 % smaller, each conversion loads it about twice as fast,
    and the converted models are byte-identical (checked on the demo for all four variants).
    """
    try:
        from tf_keras.src.saving.legacy.saved_model import utils as keras_saving
    except ImportError:  # another tf-keras layout: keep the traces (slower, same models)
        return contextlib.nullcontext()
    return keras_saving.keras_option_scope(
        save_traces=False, in_tf_saved_model_scope=keras_saving.in_tf_saved_model_scope()
    )


def export_from_checkpoint(
    config_path: Path,
    checkpoint_dir: Path,
    workdir: Path,
    options: ExportOptions,
    checkpoint: str | None = None,
    config: Any | None = None,
) -> ExportResult:
    """Input (a). Writes ``workdir/saved_model`` and ``workdir/reference``, each atomically."""
    return export_staged(config_path, checkpoint_dir, workdir, options, checkpoint, config).finish()


class StagedExport:
    """Input (a) in two steps. After :func:`export_staged`, ``workdir/saved_model`` (what the
    converter reads) is complete; :meth:`finish` then writes the desktop reference
    (``workdir/reference``), e.g. while worker processes convert the variants.

    ``preprocess`` is the model's own preprocess -- the very traced function the reference
    saves as its ``preprocess`` signature -- usable before the reference exists.
    """

    def __init__(self, result: ExportResult, preprocess: Any, write_reference: Any) -> None:
        self.result = result
        self.preprocess = preprocess
        self._write_reference = write_reference
        self.done = False

    def finish(self) -> ExportResult:
        if not self.done:
            t0 = time.perf_counter()
            self._write_reference()
            self.done = True
            self.result = replace(self.result, seconds=self.result.seconds + time.perf_counter() - t0)
        return self.result


def _export_failed(exc: Exception) -> ExportProblem:
    if isinstance(exc, ExportProblem):
        return exc
    return ExportProblem(f"the OD API TFLite export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")


def export_staged(
    config_path: Path,
    checkpoint_dir: Path,
    workdir: Path,
    options: ExportOptions,
    checkpoint: str | None = None,
    config: Any | None = None,
    normalization: Normalization | None = None,
) -> StagedExport:
    """Input (a), first step: ``workdir/saved_model`` written atomically (an older ``workdir``
    is replaced); the reference follows with :meth:`StagedExport.finish`.

    ``normalization`` (--norm-mean/--norm-std) is used only when the model's preprocess is
    not affine; otherwise the model's own wins (the pipeline refuses flags contradicting it).
    A ``keep_aspect_ratio_resizer`` model padded to a square is exported at that square: the
    TFLite exporter's module gets a copy of the config with the equivalent fixed input size
    (it reads nothing else from the resizer), the reference keeps the model's own resizer.
    """
    import shutil

    import tensorflow as tf

    t0 = time.perf_counter()
    if config is None:
        config = preflight.read_pipeline_config(config_path)
    facts = preflight.check_config(config, config_path)
    prefix = preflight.resolve_checkpoint(checkpoint_dir, checkpoint)
    cfg = aligned_config(config, options)
    model_builder = odapi.model_builder()
    export_lib = odapi.export_tflite_lib()
    try:
        model = model_builder.build(cfg.model, is_training=False)
    except (ValueError, KeyError) as exc:
        raise preflight.ConfigProblem(f"{config_path}: the OD API cannot build this model: {exc}") from exc
    h, w, c = facts.height, facts.width, facts.channels
    image, shapes = model.preprocess(tf.zeros([1, h, w, c]))
    model.postprocess(model.predict(image, shapes), shapes)  # creates every variable
    preflight.restore_checkpoint(model, prefix, Path(config_path))
    normalization, normalization_source = derive_normalization(model, h, w, c, normalization)
    resize = facts.resize.with_normalization(normalization.mean, normalization.std) if facts.resize else None

    workdir = Path(workdir)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{workdir.name}.", suffix=".partial", dir=workdir.parent))
    atomic.make_public(staging, directory=True)
    try:
        module = export_lib.SSDModule(_fixed_input_config(cfg, facts), model, options.max_detections, options.use_regular_nms)
        # the exporter's own inference_fn, traced without AutoGraph (as the reference is)
        inference = tf.function(functools.partial(type(module).inference_fn.python_function, module), autograph=False)
        concrete = inference.get_concrete_function(tf.TensorSpec(shape=module.input_shape(), dtype=tf.float32, name="input"))
        with _without_keras_layer_traces():
            tf.saved_model.save(module, str(staging / "saved_model"), signatures=concrete, options=save_options())
        ref = _ReferenceModule.build(model, cfg, h, w, c)
        atomic.replace_dir(staging, workdir)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _export_failed(exc) from exc

    def preprocess(rgb: np.ndarray) -> np.ndarray:
        return ref.preprocess(image=tf.constant(rgb[None].astype(np.float32)))["preprocessed"].numpy()

    def write_reference() -> None:
        ref_staging = Path(tempfile.mkdtemp(prefix=".reference.", suffix=".partial", dir=workdir))
        atomic.make_public(ref_staging, directory=True)
        try:
            with _without_keras_layer_traces():
                tf.saved_model.save(
                    ref,
                    str(ref_staging),
                    signatures={"preprocess": ref.preprocess, "heads": ref.heads, "detect": ref.detect},
                    options=save_options(),
                )
            pred = model.predict(image, shapes)
            box_list = odapi.module("core.box_list")
            ycenter, xcenter, ha, wa = box_list.BoxList(pred["anchors"]).get_center_coordinates_and_sizes()
            np.save(ref_staging / "anchors.npy", np.stack([ycenter, xcenter, ha, wa], axis=1).astype(np.float32))
            atomic.write_text(ref_staging / "pipeline.config", _config_text(cfg))
            atomic.replace_dir(ref_staging, workdir / "reference")
        except Exception as exc:
            shutil.rmtree(ref_staging, ignore_errors=True)
            raise _export_failed(exc) from exc

    nms = cfg.model.ssd.post_processing.batch_non_max_suppression
    result = ExportResult(
        kind=InputKind.CHECKPOINT,
        source=workdir / "saved_model",
        input_shape=(1, h, w, c),
        normalization=normalization,
        normalization_source=normalization_source,
        feature_extractor=type(model._feature_extractor).__name__,
        model_normalization=normalization if normalization_source == "feature_extractor" else None,
        num_classes=facts.num_classes,
        max_detections=options.max_detections,
        use_regular_nms=options.use_regular_nms,
        score_threshold=float(nms.score_threshold),
        iou_threshold=float(nms.iou_threshold),
        reference_dir=workdir / "reference",
        checkpoint=prefix,
        seconds=time.perf_counter() - t0,
        resize=resize,
        notes=_resize_notes(resize),
    )
    return StagedExport(result, preprocess, write_reference)


def _fixed_input_config(config: Any, facts: preflight.ModelFacts) -> Any:
    """The config as the OD API TFLite exporter accepts it: ``fixed_shape_resizer`` at the
    model's input size. Only for a letterboxed model does it differ from ``config``."""
    if facts.resize is None or not facts.resize.letterbox:
        return config
    cfg = copy.deepcopy(config)
    resizer = cfg.model.ssd.image_resizer
    grayscale = resizer.keep_aspect_ratio_resizer.convert_to_grayscale
    resizer.fixed_shape_resizer.height = facts.height  # setting the oneof clears keep_aspect_ratio_resizer
    resizer.fixed_shape_resizer.width = facts.width
    resizer.fixed_shape_resizer.convert_to_grayscale = grayscale
    return cfg


def _resize_notes(resize: ResizeSpec | None) -> tuple[str, ...]:
    if resize is None or not resize.letterbox:
        return ()
    from liteship.converter.letterbox import app_instructions

    return (f"the model was trained on letterboxed images (keep_aspect_ratio_resizer, pad_to_max_dimension): "
            f"it is exported at {resize.width}x{resize.height} and the app must {app_instructions(resize)}",)


def _config_text(config: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def _attr_value(value: Any) -> str:
    kind = value.WhichOneof("value")
    v = getattr(value, kind) if kind else None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _postprocess_attrs_from_saved_model(pb: bytes) -> dict[str, str]:
    """The attrs of the function that ``experimental_implements`` TFLite_Detection_PostProcess.

    TF stores ``_implements`` either as a NameAttrList (``func``) or, from older exporters,
    as the text of one (``s``); both are read.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(pb)
    except Exception:  # protobuf DecodeError: not a SavedModel at all
        return {}
    for meta_graph in sm.meta_graphs:
        for fn in meta_graph.graph_def.library.function:
            impl = fn.attr.get("_implements")
            if impl is None:
                continue
            if impl.HasField("func") and impl.func.name == POSTPROCESS_OP:
                return {k: _attr_value(v) for k, v in impl.func.attr.items()}
            if impl.s and POSTPROCESS_OP.encode() in impl.s:
                text = impl.s.decode("utf-8", "replace")
                return {m.group(1): m.group(2) for m in re.finditer(r'key: "(\w+)" value \{ \w: ([\w.\-+]+) \}', text)}
    return {}


def _pick_normalization(
    given: Normalization | None, source: str, found: extractor_norm.ExtractorNormalization | None
) -> tuple[Normalization, str]:
    """The user's normalization wins (a mismatch with ``found`` fails the calibration check);
    otherwise the feature extractor's, otherwise the MobileNet default."""
    if given is not None:
        return given, source
    if found is not None:
        return found.normalization, "feature_extractor"
    return DEFAULT_NORMALIZATION, "default"


def inspect_saved_model(
    saved_model: Path,
    normalization: Normalization | None = None,
    normalization_source: str = "default",
) -> ExportResult:
    """Input (b): a SavedModel written by ``export_tflite_graph_tf2.py``."""
    saved_model = Path(saved_model)
    pb_path = saved_model / "saved_model.pb"
    if not pb_path.is_file():
        raise ModelInputProblem(
            f"{saved_model} is not a SavedModel (no saved_model.pb); pass the `saved_model` folder that export_tflite_graph_tf2.py wrote"
        )
    pb = pb_path.read_bytes()
    attrs = _postprocess_attrs_from_saved_model(pb)
    if not attrs:
        hint = (
            " It looks like an exporter_main_v2.py export (detection_boxes outputs), whose NMS becomes Flex ops;"
            if b"detection_boxes" in pb
            else ""
        )
        raise ModelInputProblem(
            f"{saved_model} has no {POSTPROCESS_OP} composite.{hint} export with "
            "export_tflite_graph_tf2.py, or give liteship --pipeline-config and --checkpoint-dir"
        )
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(saved_model))
        fn = loaded.signatures["serving_default"]
    except Exception as exc:  # SavedModel loader raises many types
        raise ModelInputProblem(f"cannot load SavedModel {saved_model}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    specs = list(fn.structured_input_signature[1].values())
    if len(specs) != 1 or specs[0].shape.rank != 4 or None in specs[0].shape.as_list():
        raise ModelInputProblem(
            f"{saved_model}: expected one fixed-size image input [1,H,W,3], found {[s.shape for s in specs]}"
        )
    shape = tuple(int(d) for d in specs[0].shape.as_list())
    found = extractor_norm.from_graph(pb)
    normalization, normalization_source = _pick_normalization(normalization, normalization_source, found)
    return ExportResult(
        kind=InputKind.SAVED_MODEL,
        source=saved_model,
        input_shape=shape,  # type: ignore[arg-type]
        normalization=normalization,
        normalization_source=normalization_source,
        feature_extractor=found.feature_extractor if found else None,
        model_normalization=found.normalization if found else None,
        num_classes=int(attrs.get("num_classes", "0")),
        max_detections=int(attrs.get("max_detections", "0")),
        use_regular_nms=attrs.get("use_regular_nms") == "true",
        score_threshold=float(attrs["nms_score_threshold"]) if "nms_score_threshold" in attrs else None,
        iou_threshold=float(attrs["nms_iou_threshold"]) if "nms_iou_threshold" in attrs else None,
        notes=("no desktop reference: the exported SavedModel's detection outputs are placeholders; "
               "give --pipeline-config/--checkpoint-dir for numeric parity",),
    )


def inspect_frozen_graph(
    graph_path: Path,
    options: FrozenGraphOptions,
    normalization: Normalization | None = None,
    normalization_source: str = "default",
) -> ExportResult:
    """Input (c): a TF1 ``tflite_graph.pb`` from ``export_tflite_ssd_graph.py``."""
    import tensorflow as tf

    graph_path = Path(graph_path)
    if not graph_path.is_file():
        raise ModelInputProblem(f"frozen graph {graph_path} does not exist; pass the tflite_graph.pb written by export_tflite_ssd_graph.py")
    graph_def = tf.compat.v1.GraphDef()
    data = graph_path.read_bytes()
    if data[4:8] == b"TFL3":
        raise ModelInputProblem(
            f"{graph_path} is already a .tflite model, not a TF1 GraphDef: check it with `liteship lint {graph_path}`, "
            "or pass the tflite_graph.pb that export_tflite_ssd_graph.py wrote"
        )
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelInputProblem(f"{graph_path} is not a binary GraphDef ({type(exc).__name__}); pass tflite_graph.pb, not the .pbtxt") from exc
    nodes = {n.name: n for n in graph_def.node}
    post = [n for n in graph_def.node if n.op == POSTPROCESS_OP]
    if len(post) != 1:
        raise ModelInputProblem(
            f"{graph_path} has {len(post)} {POSTPROCESS_OP} nodes, expected 1: export it with "
            "export_tflite_ssd_graph.py --add_postprocessing_op=true"
        )
    if options.input_name not in nodes:
        placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
        raise ModelInputProblem(
            f"{graph_path} has no input node {options.input_name!r}; placeholders found: {placeholders}; set --input-name"
        )
    options = graph_reference.resolve_input_size(graph_def, options, graph_path)
    wanted = {name.split(":")[0] for name in options.output_names}
    missing = sorted(wanted - set(nodes))
    if missing:
        raise ModelInputProblem(f"{graph_path} has no output node(s) {missing}; set --output-names")
    attr = post[0].attr
    found = extractor_norm.from_graph(data)
    normalization, normalization_source = _pick_normalization(normalization, normalization_source, found)
    return ExportResult(
        kind=InputKind.FROZEN_GRAPH,
        source=graph_path,
        input_shape=(1, options.height, options.width, 3),
        normalization=normalization,
        normalization_source=normalization_source,
        feature_extractor=found.feature_extractor if found else None,
        model_normalization=found.normalization if found else None,
        num_classes=int(attr["num_classes"].i),
        max_detections=int(attr["max_detections"].i),
        use_regular_nms=bool(attr["use_regular_nms"].b) if "use_regular_nms" in attr else False,
        score_threshold=float(attr["nms_score_threshold"].f) if "nms_score_threshold" in attr else None,
        iou_threshold=float(attr["nms_iou_threshold"].f) if "nms_iou_threshold" in attr else None,
        frozen_graph=options,
        notes=("no desktop reference: a frozen graph carries no preprocess/postprocess to compare with",),
    )
