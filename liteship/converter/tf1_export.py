"""Input (d): a TF1 training folder (TF1 ``pipeline.config`` with a slim feature extractor +
``model.ckpt-N``), exported in-process on TF 2.21 by the OD API's own TF1 TFLite exporter.

``object_detection.export_tflite_ssd_graph_lib.export_tflite_graph`` (what
``export_tflite_ssd_graph.py`` runs) is called unchanged, in ``tf.compat.v1`` graph mode,
through :mod:`liteship.compat.tf1`. It writes ``tflite_graph.pb``, which then goes on
exactly like input (c); the desktop reference is built from that graph's own raw heads
(:mod:`liteship.converter.graph_reference`).

TF1 or TF2 is decided from the config's feature-extractor type (the OD API registers the
slim ones only for TF1, the ``*_keras`` ones only for TF2) and checked against the
checkpoint's format (name-based TF1 ``Saver`` checkpoint vs object-based TF2 checkpoint).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship import atomic, odapi
from liteship.compat import tf1
from liteship.converter import extractor_norm, graph_reference, preflight
from liteship.converter.export import with_thresholds
from liteship.errors import CheckpointProblem, ConfigProblem, ExportProblem
from liteship.types import ExportOptions, FrozenGraphOptions, InputKind, Normalization

#: the key every object-based (TF2, ``tf.train.Checkpoint``) checkpoint has
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def feature_extractor_type(config: Any) -> str:
    return str(config.model.ssd.feature_extractor.type) if config.model.WhichOneof("model") == "ssd" else ""


def is_tf1_config(config: Any) -> bool:
    """True when the config's SSD feature extractor is one the OD API builds only under TF1."""
    kind = feature_extractor_type(config)
    if not kind or kind in odapi.model_builder().SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP:
        return False
    return kind in tf1.feature_extractor_types()


def is_quantization_aware(config: Any) -> bool:
    return config.HasField("graph_rewriter") and config.graph_rewriter.HasField("quantization")


def checkpoint_format(prefix: str) -> str | None:
    """``tf2`` (object-based, ``model_main_tf2.py``), ``tf1`` (name-based, ``model_main.py``),
    None when unreadable (the restore step names that problem)."""
    import tensorflow as tf

    try:
        keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except Exception:  # noqa: BLE001 - DataLossError, NotFoundError, ...
        return None
    return "tf2" if _OBJECT_GRAPH_KEY in keys else "tf1"


def check(config: Any, config_path: Path, prefix: str) -> Tf1Facts | None:
    """Input (a) or (d)? The TF1 pre-flight for a TF1 config (None for a TF2 one); either
    way a checkpoint of the other TF version is refused, saying so."""
    check_checkpoint_format(config, config_path, prefix)
    return preflight_tf1(config, config_path, prefix) if is_tf1_config(config) else None


def check_checkpoint_format(config: Any, config_path: Path, prefix: str) -> str | None:
    """The checkpoint's format, refused when it is not the config's TF version (both ways)."""
    fmt = checkpoint_format(prefix)
    kind = feature_extractor_type(config)
    tf1_model = is_tf1_config(config)
    if fmt == "tf1" and not tf1_model:
        twin = kind.removesuffix("_keras")
        suggestion = (f"use the TF1 config it was trained with (feature_extractor type `{twin}`, no `_keras`): "
                      "liteship exports TF1 checkpoints itself" if twin in tf1.feature_extractor_types()
                      else "use the TF1 pipeline.config it was trained with")
        raise CheckpointProblem(
            f"checkpoint {prefix} is a TF1 checkpoint (name-based, written by TF1 model_main.py / tf.train.Saver), "
            f"but {config_path} builds a TF2 model (feature_extractor `{kind}`): a TF1 checkpoint loaded into a "
            f"TF2 model restores nothing; {suggestion}"
        )
    if fmt == "tf2" and tf1_model:
        raise CheckpointProblem(
            f"checkpoint {prefix} is a TF2 checkpoint (object-based, written by model_main_tf2.py), but {config_path} "
            f"names the TF1 feature extractor `{kind}`: a TF2 checkpoint loaded into a TF1 model restores nothing; use the "
            f"TF2 pipeline.config it was trained with (e.g. feature_extractor type `{kind}_keras`)"
        )
    return fmt


@dataclass(frozen=True)
class Tf1Facts:
    """What the TF1 pre-flight learned (built the graph, compared it with the checkpoint)."""

    feature_extractor: str  # the OD API class
    normalization: Normalization
    quantized: bool
    variables: int


def _refusals(config: Any, config_path: Path) -> None:
    """TF1-specific reasons the export cannot run on TF 2 (beyond preflight.check_config)."""
    fe = config.model.ssd.feature_extractor
    if fe.HasField("fpn") or fe.type.endswith("_fpn"):
        raise ConfigProblem(
            f"{config_path}: the TF1 FPN feature extractor `{fe.type}` exports through exporter.rewrite_nn_resize_op, "
            "which needs tf.contrib's graph matcher (gone in TF 2); retrain with the TF2 config "
            f"(`{fe.type}_keras`, model_main_tf2.py), or export with TF 1.15 and give liteship --frozen-graph tflite_graph.pb"
        )
    if config.HasField("graph_rewriter") and not is_quantization_aware(config):
        raise ConfigProblem(f"{config_path}: graph_rewriter without a quantization block is not supported")
    if is_quantization_aware(config):
        q = config.graph_rewriter.quantization
        if q.weight_bits != 8 or q.activation_bits != 8:
            raise ConfigProblem(
                f"{config_path}: graph_rewriter.quantization has weight_bits {q.weight_bits}, activation_bits "
                f"{q.activation_bits}; TFLite int8 needs 8 and 8"
            )


def _build_graph(config: Any, config_path: Path, height: int, width: int, channels: int) -> tuple[Any, Any]:
    """The graph ``export_tflite_graph`` builds before freezing (model, global step, rewrite)."""
    import tensorflow as tf

    model_builder = tf1.model_builder()
    graph = tf.Graph()
    with graph.as_default(), tf1.tf1_behaviour():
        image = tf.compat.v1.placeholder(tf.float32, [1, height, width, channels], name="normalized_input_image_tensor")
        try:
            model = model_builder.build(config.model, is_training=False)
            model.predict(image, true_image_shapes=None)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigProblem(f"{config_path}: the OD API cannot build this TF1 model: {_first_line(exc)}") from exc
        tf.compat.v1.train.get_or_create_global_step()
        if is_quantization_aware(config):
            tf1.graph_rewriter_builder().build(config.graph_rewriter, is_training=False)()
    return graph, model


def preflight_tf1(config: Any, config_path: Path, prefix: str) -> Tf1Facts:
    """Refusals, then the TF1 graph built from the config, its variables compared with the
    checkpoint's (names and shapes: what ``Saver.restore`` would fail on, said up front)."""
    import tensorflow as tf

    facts = preflight.check_config(config, config_path)
    _refusals(config, config_path)
    graph, model = _build_graph(config, config_path, facts.height, facts.width, facts.channels)
    with graph.as_default():
        wanted = {v.op.name: tuple(v.shape.as_list()) for v in tf.compat.v1.global_variables()}
    try:
        stored = {k: tuple(v) for k, v in tf.train.load_checkpoint(prefix).get_variable_to_shape_map().items()}
    except Exception as exc:  # noqa: BLE001 - DataLossError ("not an sstable"), NotFoundError, ...
        raise CheckpointProblem(f"checkpoint {prefix} is unreadable ({_first_line(exc)}); copy it again") from exc
    missing = sorted(set(wanted) - set(stored))
    wrong = sorted(k for k in set(wanted) & set(stored) if wanted[k] != stored[k])
    hint = (f"likely cause: {config_path} is not the config this checkpoint was trained with "
            "(check feature_extractor type, depth_multiplier, num_classes, box_predictor, graph_rewriter)")
    if wrong:
        shown = "; ".join(f"{k}: checkpoint {list(stored[k])}, model {list(wanted[k])}" for k in wrong[:3])
        raise CheckpointProblem(
            f"checkpoint {prefix} does not fit the TF1 model built from the config: {len(wrong)} variables have "
            f"another shape ({shown}); {hint}"
        )
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise CheckpointProblem(
            f"checkpoint {prefix} does not fit the TF1 model built from the config: {len(missing)} of its "
            f"{len(wanted)} variables are not in the checkpoint ({shown}); {hint}"
        )
    return Tf1Facts(
        feature_extractor=type(model._feature_extractor).__name__,
        normalization=_normalization(model._feature_extractor),
        quantized=is_quantization_aware(config),
        variables=len(wanted),
    )


def _normalization(feature_extractor: Any) -> Normalization:
    """Mean/std read off the TF1 feature extractor's own ``preprocess`` (stateless math)."""
    import tensorflow as tf

    def pre(value: float) -> np.ndarray:
        return np.asarray(feature_extractor.preprocess(tf.fill([1, 4, 4, 3], value))).reshape(-1, 3).mean(axis=0)

    norm = extractor_norm.fit_affine(pre)
    if norm is None:
        raise ExportProblem(
            f"the feature extractor {type(feature_extractor).__name__}'s preprocess is not an affine (x - mean) / std "
            "map; TFLite metadata cannot describe it"
        )
    return norm


def write_tflite_graph(config: Any, prefix: str, directory: Path, options: ExportOptions,
                       input_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """``directory/tflite_graph.pb`` written by the OD API's ``export_tflite_graph`` (TF1 graph
    mode), with ``max_classes_per_detection`` 1 and ``detections_per_class`` 100 (the
    exporter's defaults); its thresholds are the config's."""
    import tensorflow as tf

    lib = tf1.export_lib()
    try:
        with tf.Graph().as_default(), tf1.tf1_behaviour():
            lib.export_tflite_graph(
                config, prefix, str(directory), add_postprocessing_op=True,
                max_detections=options.max_detections, max_classes_per_detection=1,
                detections_per_class=100, use_regular_nms=options.use_regular_nms,
            )
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as exc:
        raise CheckpointProblem(f"checkpoint {prefix} does not restore into the TF1 model: {_first_line(exc)}") from exc
    (Path(directory) / "tflite_graph.pbtxt").unlink(missing_ok=True)  # 3x the size of the .pb; nothing reads it
    pb = Path(directory) / "tflite_graph.pb"
    if is_quantization_aware(config):  # what contrib's eval-graph rewrite did, on the frozen graph
        from liteship.compat import quantize

        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(pb.read_bytes())
        ranges = quantize.checkpoint_ranges(prefix, graph_def)
        rewritten = quantize.apply(graph_def, ranges, "normalized_input_image_tensor", input_range)
        pb.write_bytes(rewritten.SerializeToString(deterministic=True))
    return pb


def export_tf1(
    config: Any,
    config_path: Path,
    prefix: str,
    workdir: Path,
    options: ExportOptions,
    facts: Tf1Facts,
) -> Any:
    """Writes ``workdir/tflite_graph.pb`` (the OD API TF1 exporter's output) and
    ``workdir/reference`` (from that graph), atomically; returns the ExportResult."""
    import tensorflow as tf

    from liteship.converter.export import ExportResult

    t0 = time.perf_counter()
    model_facts = preflight.check_config(config, config_path)
    cfg = with_thresholds(config, options)
    workdir = Path(workdir)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{workdir.name}.", suffix=".partial", dir=workdir.parent))
    atomic.make_public(staging, directory=True)
    shape = (1, model_facts.height, model_facts.width, model_facts.channels)
    try:
        write_tflite_graph(cfg, prefix, staging, options, facts.normalization.range())
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString((staging / "tflite_graph.pb").read_bytes())
        graph_reference.write_reference(
            graph_def, staging / "reference", "normalized_input_image_tensor", shape, facts.normalization,
            image_resizer=cfg.model.ssd.image_resizer,
        )
        atomic.write_text(staging / "reference" / "pipeline.config", _config_text(cfg))
        atomic.replace_dir(staging, workdir)
    except (CheckpointProblem, ExportProblem, ConfigProblem):
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportProblem(f"the OD API TF1 TFLite export failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    settings = graph_reference.settings_of(graph_def)
    return ExportResult(
        kind=InputKind.TF1_CHECKPOINT,
        source=workdir / "tflite_graph.pb",
        input_shape=shape,
        normalization=facts.normalization,
        normalization_source="feature_extractor",
        feature_extractor=facts.feature_extractor,
        model_normalization=facts.normalization,
        num_classes=settings.num_classes,
        max_detections=settings.max_detections,
        use_regular_nms=settings.use_regular_nms,
        score_threshold=settings.score_threshold,
        iou_threshold=settings.iou_threshold,
        reference_dir=workdir / "reference",
        frozen_graph=FrozenGraphOptions(height=shape[1], width=shape[2]),
        checkpoint=prefix,
        seconds=time.perf_counter() - t0,
        quantization_aware=facts.quantized,
    )


def _config_text(config: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    text = re.sub(r"\s+", " ", text.splitlines()[0]) if text else type(exc).__name__
    return text[:300]
