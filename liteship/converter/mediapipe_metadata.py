"""MediaPipe's ``DETECTOR_METADATA`` and the TFLite metadata of the ``gpu`` variant.

MediaPipe Tasks' ObjectDetector accepts a model WITHOUT ``TFLite_Detection_PostProcess``
when it has exactly two outputs found by metadata name, ``location`` (raw box encodings
[1,A,4]) and ``score`` (class scores [1,A,C]), and a custom-metadata entry named
``DETECTOR_METADATA`` holding an ``ObjectDetectorOptions`` flatbuffer (schema
``mediapipe/tasks/metadata/object_detector_metadata_schema.fbs``, file identifier
``V001``): the anchors and the decoding options. MediaPipe then decodes the boxes and runs
NMS itself (``detection_postprocessing_graph.cc``: ``ConfigureOutModelNms...``,
``ConfigureSsdAnchorsCalculator``).

The flatbuffer is built here by hand from that schema: MediaPipe's own Python writer does
not import from the 1.2.2 wheel (``No module named 'mediapipe.tasks.cc'``), and importing
anything of the ``mediapipe`` package pulls in OpenCV, matplotlib and TensorFlow. The
tensor metadata (input normalization, location box properties, score labels) uses
tflite-support's writer objects; only the custom entry is ours.

Consumer rules this module follows (all from MediaPipe's C++):

* ``location`` needs BoundingBoxProperties BOUNDARIES + RATIO (checked even for raw
  outputs), ``index`` 4 values if present;
* labels of a 2-output model are read from the ``score`` tensor as TENSOR_AXIS_LABELS
  (not TENSOR_VALUE_LABELS on a category tensor); label line i names score column i;
* ``TensorsToDetectionsCalculator`` CHECK-fails (aborts the process) unless
  ``num_values_per_keypoint == 2`` and ``num_keypoints * 2 + 4 == num_coords``, and the
  metadata value replaces the calculator's default of 2: both are always written;
* boxes are decoded as YXHW (``ty, tx, th, tw``: the OD API's faster_rcnn_box_coder order)
  against anchors given as (x_center, y_center, width, height);
* scores: the maximum over the C columns is the detection's score and class; there is no
  background skipping, so the background column must not be in the tensor.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship import tflsupport
from liteship.errors import MetadataProblem
from liteship.types import Normalization

METADATA_NAME = "DETECTOR_METADATA"
FILE_IDENTIFIER = b"V001"
#: the schema's semantic version (``// Schema Semantic version: 1.0.0``)
SCHEMA_VERSION = "1.0.0"
LOCATION_NAME = "location"
SCORE_NAME = "score"
LABEL_FILE = "labelmap.txt"
#: the order the decoded boxes would have (ymin, xmin, ymax, xmax as left/top/right/bottom
#: indices), as MediaPipe's and tflite-support's detector writers declare it
BOUNDING_BOX_INDEX = (1, 0, 3, 2)


@dataclass(frozen=True, eq=False)
class DetectorOptions:
    """The content of ``ObjectDetectorOptions`` (schema field names)."""

    #: [A, 4] float32: x_center, y_center, width, height (normalized), one row per box
    anchors: np.ndarray
    num_classes: int
    x_scale: float
    y_scale: float
    w_scale: float
    h_scale: float
    apply_exponential_on_box_size: bool = True
    #: False: the graph applies the score converter itself (scores are probabilities)
    sigmoid_score: bool = False
    num_coords: int = 4
    keypoint_coord_offset: int = 0
    num_keypoints: int = 0
    num_values_per_keypoint: int = 2
    min_parser_version: str = SCHEMA_VERSION

    @property
    def num_boxes(self) -> int:
        return int(self.anchors.shape[0])

    def summary(self) -> dict[str, Any]:
        """JSON-friendly, without the anchors themselves (their count and range instead)."""
        a = self.anchors
        return {
            "num_boxes": self.num_boxes,
            "num_classes": self.num_classes,
            "num_coords": self.num_coords,
            "scales": {"x": self.x_scale, "y": self.y_scale, "w": self.w_scale, "h": self.h_scale},
            "apply_exponential_on_box_size": self.apply_exponential_on_box_size,
            "sigmoid_score": self.sigmoid_score,
            "num_keypoints": self.num_keypoints,
            "num_values_per_keypoint": self.num_values_per_keypoint,
            "anchor_range": [round(float(a.min()), 6), round(float(a.max()), 6)] if a.size else None,
        }


def anchors_from_odapi(center_size: np.ndarray) -> np.ndarray:
    """OD API anchors (``BoxList.get_center_coordinates_and_sizes``: ycenter, xcenter, height,
    width per row; what liteship's reference stores in ``anchors.npy``) -> MediaPipe's
    ``FixedAnchor`` order (x_center, y_center, width, height)."""
    a = np.asarray(center_size, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"anchors must be [A, 4] (ycenter, xcenter, height, width), got shape {a.shape}")
    return np.ascontiguousarray(a[:, [1, 0, 3, 2]])


# --- the ObjectDetectorOptions flatbuffer --------------------------------------------------
# Field slots are the declaration order in object_detector_metadata_schema.fbs.

_ANCHOR = ("x_center", "y_center", "width", "height")
_DECODING_INT = ("num_classes", "num_boxes", "num_coords", "keypoint_coord_offset", "num_keypoints",
                 "num_values_per_keypoint")  # slots 0-5
_DECODING_FLOAT = ("x_scale", "y_scale", "w_scale", "h_scale")  # slots 6-9
_DECODING_BOOL = ("apply_exponential_on_box_size", "sigmoid_score")  # slots 10-11


def encode(options: DetectorOptions) -> bytes:
    """``ObjectDetectorOptions`` flatbuffer (identifier ``V001``) for ``options``.

    Every scalar is written even when it equals the schema default (``ForceDefaults``):
    readers of other schema versions then never depend on a default.
    """
    import flatbuffers

    b = flatbuffers.Builder(1024 + 24 * options.num_boxes)
    b.ForceDefaults(True)
    anchors = np.asarray(options.anchors, dtype=np.float32)
    offsets = []
    for x_center, y_center, width, height in anchors.tolist():
        b.StartObject(4)
        b.PrependFloat32Slot(0, x_center, 0.0)
        b.PrependFloat32Slot(1, y_center, 0.0)
        b.PrependFloat32Slot(2, width, 0.0)
        b.PrependFloat32Slot(3, height, 0.0)
        offsets.append(b.EndObject())
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    anchor_vector = b.EndVector()
    b.StartObject(1)  # FixedAnchorsSchema
    b.PrependUOffsetTRelativeSlot(0, anchor_vector, 0)
    fixed = b.EndObject()
    b.StartObject(1)  # SsdAnchorsOptions
    b.PrependUOffsetTRelativeSlot(0, fixed, 0)
    ssd = b.EndObject()
    b.StartObject(12)  # TensorsDecodingOptions
    values = {"num_boxes": options.num_boxes}
    for slot, name in enumerate(_DECODING_INT):
        b.PrependInt32Slot(slot, int(values.get(name, getattr(options, name, 0))), 0)
    for slot, name in enumerate(_DECODING_FLOAT, start=len(_DECODING_INT)):
        b.PrependFloat32Slot(slot, float(getattr(options, name)), 0.0)
    for slot, name in enumerate(_DECODING_BOOL, start=len(_DECODING_INT) + len(_DECODING_FLOAT)):
        b.PrependBoolSlot(slot, bool(getattr(options, name)), False)
    decoding = b.EndObject()
    version = b.CreateString(options.min_parser_version)
    b.StartObject(3)  # ObjectDetectorOptions
    b.PrependUOffsetTRelativeSlot(0, version, 0)
    b.PrependUOffsetTRelativeSlot(1, ssd, 0)
    b.PrependUOffsetTRelativeSlot(2, decoding, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def decode(buf: bytes) -> DetectorOptions:
    """Read an ``ObjectDetectorOptions`` flatbuffer back; ValueError when it is not one."""
    from flatbuffers import encode as fb_encode
    from flatbuffers import number_types as N
    from flatbuffers import packer
    from flatbuffers.table import Table

    data = bytearray(buf)
    if len(data) < 8 or bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ValueError(f"not an ObjectDetectorOptions flatbuffer: file identifier {bytes(data[4:8])!r}, expected {FILE_IDENTIFIER!r}")
    root = Table(data, fb_encode.Get(packer.uoffset, data, 0))

    def field_pos(t: Table, slot: int) -> int:
        return t.Offset(4 + 2 * slot)

    def sub(t: Table, slot: int) -> Table | None:
        o = field_pos(t, slot)
        return Table(data, t.Indirect(o + t.Pos)) if o else None

    def scalar(t: Table, slot: int, flags: Any, default: Any) -> Any:
        o = field_pos(t, slot)
        return t.Get(flags, o + t.Pos) if o else default

    ssd = sub(root, 1)
    fixed = sub(ssd, 0) if ssd is not None else None
    if fixed is None:
        raise ValueError("ObjectDetectorOptions has no ssd_anchors_options.fixed_anchors_schema")
    o = field_pos(fixed, 0)
    rows: list[list[float]] = []
    if o:
        start, count = fixed.Vector(o), fixed.VectorLen(o)
        for j in range(count):
            anchor = Table(data, fixed.Indirect(start + 4 * j))
            rows.append([scalar(anchor, k, N.Float32Flags, 0.0) for k in range(len(_ANCHOR))])
    dec = sub(root, 2)
    if dec is None:
        raise ValueError("ObjectDetectorOptions has no tensors_decoding_options")
    ints = {name: scalar(dec, slot, N.Int32Flags, 0) for slot, name in enumerate(_DECODING_INT)}
    floats = {name: scalar(dec, slot, N.Float32Flags, 0.0) for slot, name in enumerate(_DECODING_FLOAT, start=6)}
    bools = {name: bool(scalar(dec, slot, N.BoolFlags, False)) for slot, name in enumerate(_DECODING_BOOL, start=10)}
    o = field_pos(root, 0)
    version = root.String(o + root.Pos).decode("utf-8", "replace") if o else ""
    anchors = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    if ints["num_boxes"] != len(anchors):
        raise ValueError(f"num_boxes {ints['num_boxes']} but {len(anchors)} anchors")
    del ints["num_boxes"]
    return DetectorOptions(anchors=anchors, **ints, **floats, **bools, min_parser_version=version)


# --- TFLite metadata ----------------------------------------------------------------------


@dataclass(frozen=True)
class GpuMetadataSummary:
    """What was read back from a written gpu-variant model."""

    output_names: tuple[str, ...]
    associated_files: tuple[str, ...]
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    label_count: int
    labels_type: str
    detector: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_names": list(self.output_names),
            "associated_files": list(self.associated_files),
            "norm_mean": list(self.norm_mean),
            "norm_std": list(self.norm_std),
            "label_count": self.label_count,
            "labels_type": self.labels_type,
            "detector_metadata": self.detector,
        }


def _mean_std(n: Normalization) -> tuple[list[float], list[float]]:
    """One value each when uniform, else as many means as stds (the metadata needs equal counts)."""
    if len(set(n.mean)) == 1 and len(set(n.std)) == 1:
        return [n.mean[0]], [n.std[0]]
    k = max(len(n.mean), len(n.std))
    return [n.mean[i % len(n.mean)] for i in range(k)], [n.std[i % len(n.std)] for i in range(k)]


def write_metadata(
    model: bytes,
    normalization: Normalization,
    labels_txt: str,
    options: DetectorOptions,
    output_names: tuple[str, str] = (LOCATION_NAME, SCORE_NAME),
) -> bytes:
    """Model bytes (outputs in the order of ``output_names``) -> model bytes with object
    detector metadata for the two raw outputs, ``labelmap.txt`` on the score tensor, and
    the ``DETECTOR_METADATA`` entry."""
    md = tflsupport.metadata()
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as mdfb
    from tensorflow_lite_support.metadata import schema_py_generated as tflfb
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info

    if sorted(output_names) != sorted((LOCATION_NAME, SCORE_NAME)):
        raise ValueError(f"output_names must be {LOCATION_NAME!r} and {SCORE_NAME!r} in model order, got {output_names}")
    with tempfile.TemporaryDirectory(prefix="liteship-mpmd-") as tmp:
        label_path = Path(tmp) / LABEL_FILE
        label_path.write_text(labels_txt, encoding="utf-8")
        try:
            general = metadata_info.GeneralMd(
                name="ObjectDetector",
                description="SSD detector without TFLite_Detection_PostProcess: raw box encodings and class "
                            "scores, decoded by MediaPipe Tasks from DETECTOR_METADATA (written by liteship)",
            ).create_metadata()
            image = metadata_info.InputImageTensorMd(
                name="image", description="Input image to be detected.",
                norm_mean=_mean_std(normalization)[0], norm_std=_mean_std(normalization)[1],
                color_space_type=mdfb.ColorSpaceType.RGB, tensor_type=tflfb.TensorType.FLOAT32,
            ).create_metadata()
            location = metadata_info.TensorMd(
                name=LOCATION_NAME,
                description="Raw box encodings (ty, tx, th, tw) per anchor; decode with DETECTOR_METADATA.",
            ).create_metadata()
            box = mdfb.BoundingBoxPropertiesT()
            box.index = list(BOUNDING_BOX_INDEX)
            box.type = mdfb.BoundingBoxType.BOUNDARIES
            box.coordinateType = mdfb.CoordinateType.RATIO
            location.content = mdfb.ContentT()
            location.content.contentPropertiesType = mdfb.ContentProperties.BoundingBoxProperties
            location.content.contentProperties = box
            score = metadata_info.ClassificationTensorMd(
                name=SCORE_NAME, description="Class scores per anchor (score converter applied, no background).",
                label_files=[metadata_info.LabelFileMd(str(label_path))],
                tensor_type=tflfb.TensorType.FLOAT32,
            ).create_metadata()
            custom = mdfb.CustomMetadataT()
            custom.name = METADATA_NAME
            custom.data = np.frombuffer(encode(options), dtype=np.uint8)
            sub = mdfb.SubGraphMetadataT()
            sub.inputTensorMetadata = [image]
            by_name = {LOCATION_NAME: location, SCORE_NAME: score}
            sub.outputTensorMetadata = [by_name[n] for n in output_names]
            sub.customMetadata = [custom]
            general.subgraphMetadata = [sub]
            import flatbuffers

            b = flatbuffers.Builder(0)
            b.Finish(general.Pack(b), md.MetadataPopulator.METADATA_FILE_IDENTIFIER)
            populator = md.MetadataPopulator.with_model_buffer(bytearray(model))
            populator.load_metadata_buffer(b.Output())
            populator.load_associated_files([str(label_path)])
            populator.populate()
            return bytes(populator.get_model_buffer())
        except Exception as exc:  # the populator raises ValueError / RuntimeError / flatbuffer errors
            raise MetadataProblem(f"tflite-support could not write the gpu variant's metadata: "
                                  f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def replace_detector_options(model: bytes, options: DetectorOptions) -> bytes:
    """The same model with its ``DETECTOR_METADATA`` replaced (everything else, packed label
    file included, kept): re-anchoring a written model without converting it again."""
    md = tflsupport.metadata()
    import flatbuffers
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as mdfb

    from liteship.tflite_inspect import TFLITE_METADATA_NAME, metadata_buffers

    try:
        raw = metadata_buffers(model)[TFLITE_METADATA_NAME]
        meta = mdfb.ModelMetadataT.InitFromObj(mdfb.ModelMetadata.GetRootAsModelMetadata(raw, 0))
        custom = mdfb.CustomMetadataT()
        custom.name = METADATA_NAME
        custom.data = np.frombuffer(encode(options), dtype=np.uint8)
        sub = meta.subgraphMetadata[0]
        sub.customMetadata = [c for c in (sub.customMetadata or []) if c.name != METADATA_NAME.encode()
                              and c.name != METADATA_NAME] + [custom]
        b = flatbuffers.Builder(0)
        b.Finish(meta.Pack(b), md.MetadataPopulator.METADATA_FILE_IDENTIFIER)
        populator = md.MetadataPopulator.with_model_buffer(bytearray(model))
        populator.load_metadata_buffer(b.Output())
        populator.populate()
        return bytes(populator.get_model_buffer())
    except Exception as exc:  # flatbuffer / populator errors
        raise MetadataProblem(f"cannot replace {METADATA_NAME}: {type(exc).__name__}: {str(exc)[:300]}") from exc


def read_metadata(model: bytes) -> tuple[GpuMetadataSummary, DetectorOptions | None]:
    """The metadata of a gpu-variant model, read with the one metadata reader
    (:mod:`liteship.tflite_metadata`, no TensorFlow), plus its decoded ``DETECTOR_METADATA``
    (None when absent)."""
    from liteship.tflite_metadata import read_metadata_view

    view = read_metadata_view(model)
    if not view.readable:
        found = view.error or "no TFLITE_METADATA entry"
        raise MetadataProblem(f"cannot read the gpu variant's metadata back: expected a TFLITE_METADATA entry, "
                              f"found {found}")
    score_files = view.output_files.get(view.output_names.index(SCORE_NAME), ()) if SCORE_NAME in view.output_names else ()
    label = score_files[-1] if score_files else None
    try:
        raw = view.custom_data.get(METADATA_NAME)
        detector = decode(raw) if raw is not None else None
    except Exception as exc:
        raise MetadataProblem(f"cannot read the gpu variant's {METADATA_NAME} back: {type(exc).__name__}: "
                              f"{str(exc)[:300]}") from exc
    mean, std = view.normalization or ((), ())
    summary = GpuMetadataSummary(
        output_names=view.output_names, associated_files=view.packed_files, norm_mean=mean, norm_std=std,
        label_count=(label.lines or 0) if label is not None else 0, labels_type=label.type if label is not None else "",
        detector=detector.summary() if detector is not None else {},
    )
    return summary, detector


def verify(model: bytes, normalization: Normalization, expected_labels: int, options: DetectorOptions,
           output_names: tuple[str, str]) -> GpuMetadataSummary:
    """Read the metadata back; it must say what was meant (names in output order, labels on
    the score tensor, normalization, the same DETECTOR_METADATA)."""
    summary, detector = read_metadata(model)
    problems = []
    if summary.output_names != tuple(output_names):
        problems.append(f"output metadata names {list(summary.output_names)}, expected {list(output_names)}")
    if LABEL_FILE not in summary.associated_files or summary.labels_type != "TENSOR_AXIS_LABELS":
        problems.append(f"{LABEL_FILE} must be attached to the score tensor as TENSOR_AXIS_LABELS "
                        f"(found {list(summary.associated_files)}, {summary.labels_type or 'no type'})")
    if summary.label_count != expected_labels:
        problems.append(f"{LABEL_FILE} has {summary.label_count} lines, expected {expected_labels}")
    want = tuple([round(v, 4) for v in values] for values in _mean_std(normalization))
    if ([round(v, 4) for v in summary.norm_mean], [round(v, 4) for v in summary.norm_std]) != want:
        problems.append(f"normalization {summary.norm_mean}/{summary.norm_std}, expected {want[0]}/{want[1]}")
    if detector is None:
        problems.append(f"no {METADATA_NAME} custom metadata")
    elif detector.summary() != options.summary() or not np.array_equal(detector.anchors, options.anchors.astype(np.float32)):
        problems.append(f"{METADATA_NAME} reads back as {detector.summary()}, expected {options.summary()}")
    if problems:
        raise MetadataProblem("gpu variant metadata verification failed: " + "; ".join(problems))
    return summary
