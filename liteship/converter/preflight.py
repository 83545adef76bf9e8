"""Pre-flight checks on pipeline.config, label map and checkpoint, before heavy work.

Everything here either returns facts about the model or raises one typed error whose
message names the problem and the field or file to change. The checkpoint restore
check needs TensorFlow; the config checks need only the OD API's protos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship import odapi
from liteship.converter.letterbox import LETTERBOX, STRETCH, ResizeSpec
from liteship.errors import CheckpointProblem, ConfigProblem

#: meta-architecture -> why it cannot go through TFLite_Detection_PostProcess
_REFUSED_ARCHS = {
    "faster_rcnn": "Faster R-CNN (and R-FCN, which uses the faster_rcnn block) has a second stage "
    "that the TFLite exporter does not support",
    "center_net": "CenterNet exports without TFLite_Detection_PostProcess (its own decoding), "
    "which liteship's apps and checks do not target",
    "experimental_model": "experimental models have no TFLite export path",
}


@dataclass(frozen=True)
class ModelFacts:
    """What liteship needs to know about an SSD pipeline.config."""

    config_path: Path
    num_classes: int
    height: int
    width: int
    channels: int
    feature_extractor: str
    score_threshold: float
    iou_threshold: float
    score_converter: str
    #: how the app must resize photos: stretch (fixed_shape_resizer) or letterbox
    #: (keep_aspect_ratio_resizer with pad_to_max_dimension, exported at the padded square)
    resize: ResizeSpec | None = None


def read_pipeline_config(path: Path) -> Any:
    """Parse pipeline.config into a ``TrainEvalPipelineConfig`` (typed errors only)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigProblem(f"pipeline config {path} {what}; pass the pipeline.config used for training with --pipeline-config")
    from google.protobuf import text_format

    pipeline_pb2 = odapi.pipeline_pb2()
    config = pipeline_pb2.TrainEvalPipelineConfig()
    try:
        text = path.read_text(encoding="utf-8")
        text_format.Merge(text, config)
    except UnicodeDecodeError as exc:
        raise ConfigProblem(f"{path} is not a text pipeline.config (not UTF-8: {exc.reason})") from exc
    except text_format.ParseError as exc:
        raise ConfigProblem(f"{path}:{exc} — fix the syntax or the field name at that line") from exc
    if not config.HasField("model"):
        raise ConfigProblem(f"{path} has no `model {{ ... }}` block; is this an OD API pipeline.config?")
    return config


def check_config(config: Any, path: Path) -> ModelFacts:
    """SSD + a fixed input size (fixed_shape_resizer, or keep_aspect_ratio_resizer padded to a
    square) + a box coder and NMS the TFLite op can express."""
    arch = config.model.WhichOneof("model")
    if arch != "ssd":
        why = _REFUSED_ARCHS.get(arch or "", f"`{arch}` is not an SSD")
        raise ConfigProblem(
            f"{path}: model is `{arch}`, but only `ssd` models can be exported with "
            f"TFLite_Detection_PostProcess ({why}); train an SSD instead, e.g. from the "
            "ssd_mobilenet_v2_320x320 or ssd_mobilenet_v2_fpnlite_320x320 sample config"
        )
    ssd = config.model.ssd
    resize = _resize_spec(ssd.image_resizer, path)
    grayscale = getattr(ssd.image_resizer, ssd.image_resizer.WhichOneof("image_resizer_oneof")).convert_to_grayscale
    coder = ssd.box_coder.WhichOneof("box_coder_oneof")
    if coder != "faster_rcnn_box_coder":
        raise ConfigProblem(
            f"{path}: model.ssd.box_coder is `{coder}`; TFLite_Detection_PostProcess decodes boxes "
            "like faster_rcnn_box_coder only — use `box_coder { faster_rcnn_box_coder { ... } }`"
        )
    if ssd.num_classes <= 0:
        raise ConfigProblem(f"{path}: model.ssd.num_classes must be positive, found {ssd.num_classes}")
    if not ssd.post_processing.HasField("batch_non_max_suppression"):
        raise ConfigProblem(f"{path}: model.ssd.post_processing needs a batch_non_max_suppression block")
    nms = ssd.post_processing.batch_non_max_suppression
    converter = ssd.post_processing.DESCRIPTOR.fields_by_name["score_converter"].enum_type.values_by_number[
        ssd.post_processing.score_converter
    ].name
    if converter not in ("SIGMOID", "SOFTMAX", "IDENTITY"):
        raise ConfigProblem(f"{path}: score_converter {converter} is not supported; use SIGMOID or SOFTMAX")
    return ModelFacts(
        config_path=Path(path),
        num_classes=int(ssd.num_classes),
        height=resize.height,
        width=resize.width,
        channels=1 if grayscale else 3,
        feature_extractor=ssd.feature_extractor.type,
        score_threshold=float(nms.score_threshold),
        iou_threshold=float(nms.iou_threshold),
        score_converter=converter,
        resize=resize,
    )


def _resize_spec(image_resizer: Any, path: Path) -> ResizeSpec:
    """The fixed TFLite input and how apps must resize photos to it, or a refusal.

    ``keep_aspect_ratio_resizer`` with ``pad_to_max_dimension`` (every EfficientDet zoo
    config) always gives the network a ``max_dimension`` square: the OD API's TFLite exporter
    refuses it, liteship exports that square and records that the app must letterbox.
    Without padding each photo has its own input size, which one TFLite input cannot be.
    """
    resizer = image_resizer.WhichOneof("image_resizer_oneof")
    if resizer == "fixed_shape_resizer":
        fsr = image_resizer.fixed_shape_resizer
        if fsr.height <= 0 or fsr.width <= 0:
            raise ConfigProblem(f"{path}: fixed_shape_resizer needs positive height and width, found {fsr.height}x{fsr.width}")
        return ResizeSpec(STRETCH, int(fsr.height), int(fsr.width))
    if resizer == "keep_aspect_ratio_resizer":
        kar = image_resizer.keep_aspect_ratio_resizer
        if kar.min_dimension <= 0 or kar.max_dimension < kar.min_dimension:
            raise ConfigProblem(
                f"{path}: keep_aspect_ratio_resizer needs 0 < min_dimension <= max_dimension, found "
                f"{kar.min_dimension} and {kar.max_dimension}")
        side = int(kar.max_dimension)
        if not kar.pad_to_max_dimension:
            raise ConfigProblem(
                f"{path}: model.ssd.image_resizer is keep_aspect_ratio_resizer without pad_to_max_dimension: each "
                f"image reaches the network at its own size (shorter side {kar.min_dimension}, longer side up to "
                f"{kar.max_dimension}), and a TFLite model has one fixed input size. Set `pad_to_max_dimension: true` "
                f"(the network then always sees a {side}x{side} letterboxed image, which liteship exports) or use "
                f"`fixed_shape_resizer {{ height: {side} width: {side} }}`, and fine-tune with it"
            )
        pad = tuple(float(v) for v in kar.per_channel_pad_value) or (0.0, 0.0, 0.0)
        return ResizeSpec(LETTERBOX, side, side, int(kar.min_dimension), side, pad)
    name = resizer or "not set"
    raise ConfigProblem(
        f"{path}: model.ssd.image_resizer is `{name}`; TFLite needs one fixed input size: use "
        "`fixed_shape_resizer { height: H width: W }` with the size the model was trained at "
        "(or keep_aspect_ratio_resizer with pad_to_max_dimension: true)"
    )


def resolve_checkpoint(checkpoint_dir: Path, checkpoint: str | None = None) -> str:
    """Checkpoint prefix: the latest in ``checkpoint_dir``, or the one named (``ckpt-7``)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        what = "is a file, not a folder" if checkpoint_dir.exists() else "does not exist"
        raise CheckpointProblem(
            f"checkpoint dir {checkpoint_dir} {what}; pass the model_dir that model_main_tf2.py wrote (it holds `checkpoint` and ckpt-N.index files)"
        )
    if checkpoint:
        prefix = Path(checkpoint)
        if not prefix.is_absolute():
            prefix = checkpoint_dir / prefix
        prefix_str = str(prefix).removesuffix(".index")
        if not Path(prefix_str + ".index").is_file():
            found = sorted(p.stem for p in checkpoint_dir.glob("*.index"))
            raise CheckpointProblem(
                f"checkpoint {checkpoint} not found: no {prefix_str}.index; available: {', '.join(found) or 'none'}"
            )
        return prefix_str
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        indexes = sorted(checkpoint_dir.glob("*.index"))
        if indexes:  # no `checkpoint` state file: take the highest-numbered
            return str(max(indexes, key=lambda p: _ckpt_number(p.stem)).with_suffix(""))
        raise CheckpointProblem(
            f"no checkpoint in {checkpoint_dir}: expected ckpt-N.index/.data files as written by model_main_tf2.py"
        )
    if not Path(latest + ".index").is_file():
        raise CheckpointProblem(
            f"{checkpoint_dir}/checkpoint names {Path(latest).name}, but {latest}.index is missing; "
            "copy the whole checkpoint or name one that exists with --checkpoint"
        )
    return latest


def _ckpt_number(stem: str) -> int:
    tail = stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def restore_checkpoint(model: Any, prefix: str, config_path: Path) -> None:
    """Restore ``prefix`` into ``model`` (variables already created) and prove it matched.

    ``assert_existing_objects_matched`` fails when a model variable has no value in the
    checkpoint ("Unresolved object in checkpoint" / "not bound to checkpointed values"
    in OD API logs): the classic sign of a pipeline.config that is not the one used for
    training.
    """
    import tensorflow as tf

    ckpt = tf.train.Checkpoint(model=model)
    hint = (
        f"likely cause: {config_path} is not the config this checkpoint was trained with "
        "(check feature_extractor type, depth_multiplier, num_classes, box_predictor)"
    )
    try:
        status = ckpt.restore(prefix)
        status.assert_existing_objects_matched()
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError, IndexError) as exc:
        # IndexError: "Read less bytes than requested" from a truncated .data shard
        raise CheckpointProblem(f"checkpoint {prefix} is corrupt or truncated ({_first_line(exc)}); copy it again") from exc
    except tf.errors.NotFoundError as exc:
        raise CheckpointProblem(f"checkpoint {prefix} is incomplete: {_first_line(exc)}") from exc
    except (ValueError, tf.errors.InvalidArgumentError) as exc:
        raise CheckpointProblem(f"checkpoint {prefix} does not fit the model: {_first_line(exc)}; {hint}") from exc
    except tf.errors.OpError as exc:  # e.g. a 0-byte .index: "file is too short to be an sstable"
        raise CheckpointProblem(f"checkpoint {prefix} is unreadable ({_first_line(exc)}); copy it again") from exc
    except AssertionError as exc:
        unmatched = _unmatched_count(str(exc))
        raise CheckpointProblem(
            f"checkpoint {prefix} does not fit the model built from the config: {unmatched} model "
            f"objects have no value in it (unresolved objects); {hint}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _unmatched_count(text: str) -> str:
    import re

    m = re.search(r"Unresolved object in checkpoint|(\d+) Python objects", text)
    count = text.count("Unresolved object") or text.count("<tf.Variable")
    if m and m.group(1):
        return m.group(1)
    return str(count) if count else "some"
