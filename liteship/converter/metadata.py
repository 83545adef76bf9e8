"""TFLite metadata with tflite-support's object-detector writer, then read back and verified.

The writer (``object_detector.MetadataWriter.create_for_inference``) names the outputs
``location``, ``category``, ``score``, ``number of detections`` (the names the Task
Library looks up), attaches ``labelmap.txt`` to the category tensor as
TENSOR_VALUE_LABELS and records the input normalization. It binds the four output
metadata entries by ascending tensor index (the postprocess op's port order), whatever
the order of the output list; :func:`verify` proves the binding on the written model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship import tflsupport
from liteship.errors import MetadataProblem
from liteship.tflite_inspect import inspect_model
from liteship.tflite_metadata import read_metadata_view
from liteship.types import Normalization, OutputRole

LABEL_FILE = "labelmap.txt"


@dataclass(frozen=True)
class MetadataSummary:
    output_names: tuple[str, ...]  # metadata names, in output-list order
    associated_files: tuple[str, ...]
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    label_count: int
    description: str = ""  # the model description (carries the letterbox instructions when any)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "output_names": list(self.output_names),
            "associated_files": list(self.associated_files),
            "norm_mean": list(self.norm_mean),
            "norm_std": list(self.norm_std),
            "label_count": self.label_count,
        }


def metadata_normalization(normalization: Normalization) -> tuple[list[float], list[float]]:
    """(mean, std) as NormalizationOptions lists: one value each when every channel agrees,
    else one per channel for both (the writer and MediaPipe need mean and std of one length)."""
    mean, std = list(normalization.mean), list(normalization.std)
    if len(set(mean)) == 1 and len(set(std)) == 1:
        return mean[:1], std[:1]
    channels = max(len(mean), len(std))
    return (mean * channels)[:channels] if len(mean) == 1 else mean, (std * channels)[:channels] if len(std) == 1 else std


def write_metadata(model: bytes, normalization: Normalization, labels_txt: str, resize_note: str | None = None) -> bytes:
    """Model bytes -> model bytes with object-detector metadata and labelmap.txt.

    ``resize_note``: how the app must resize images (a letterboxed model), appended to the
    model and input descriptions apps and Netron show.
    """
    writer_mod = tflsupport.object_detector_writer()
    with tempfile.TemporaryDirectory(prefix="liteship-md-") as tmp:
        label_path = Path(tmp) / LABEL_FILE  # the associated file's name is this basename
        label_path.write_text(labels_txt, encoding="utf-8")
        try:
            mean, std = metadata_normalization(normalization)
            if resize_note is None:
                writer = writer_mod.MetadataWriter.create_for_inference(bytearray(model), mean, std, [str(label_path)])
            else:
                writer = _writer_with_note(writer_mod, bytearray(model), mean, std, str(label_path), resize_note)
            return bytes(writer.populate())
        except Exception as exc:  # the writer raises ValueError / RuntimeError / flatbuffer errors
            raise MetadataProblem(f"tflite-support could not write metadata: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _writer_with_note(writer_mod: Any, model: bytearray, mean: list[float], std: list[float], labels: str, note: str) -> Any:
    """What ``create_for_inference`` builds, with ``note`` added to the model and input
    descriptions: that method takes no descriptions, so its few metadata objects are made
    here the same way and handed to ``create_from_metadata_info``."""
    info = writer_mod.metadata_info
    default_input = writer_mod._INPUT_DESCRIPTION
    general = info.GeneralMd(name=writer_mod._MODEL_NAME, description=f"{writer_mod._MODEL_DESCRIPTION} Input: {note}.")
    input_md = info.InputImageTensorMd(
        name=writer_mod._INPUT_NAME, description=f"{default_input} {note[0].upper()}{note[1:]}.",
        norm_mean=mean, norm_std=std, color_space_type=writer_mod._metadata_fb.ColorSpaceType.RGB,
        tensor_type=writer_mod.writer_utils.get_input_tensor_types(model)[0])
    category = info.CategoryTensorMd(
        name=writer_mod._OUTPUT_CATRGORY_NAME, description=writer_mod._OUTPUT_CATEGORY_DESCRIPTION,
        label_files=[info.LabelFileMd(file_path=labels)])
    score = info.ClassificationTensorMd(name=writer_mod._OUTPUT_SCORE_NAME, description=writer_mod._OUTPUT_SCORE_DESCRIPTION)
    return writer_mod.MetadataWriter.create_from_metadata_info(
        model, general_md=general, input_md=input_md, output_category_md=category, output_score_md=score)


def read_metadata(model: bytes) -> MetadataSummary:
    """The written metadata, read back with the one metadata reader (:mod:`liteship.tflite_metadata`)."""
    view = read_metadata_view(model)
    if not view.readable:
        found = view.error or "no TFLITE_METADATA entry"
        raise MetadataProblem(f"cannot read metadata back: expected a TFLITE_METADATA entry, found {found}")
    mean, std = view.normalization or ((), ())
    return MetadataSummary(
        output_names=view.output_names,
        associated_files=view.packed_files,
        norm_mean=mean,
        norm_std=std,
        label_count=view.packed_lines(LABEL_FILE) or 0,
        description=view.description,
    )


def verify(model: bytes, normalization: Normalization, expected_labels: int) -> MetadataSummary:
    """Read the metadata back; every output's name must match the role its tensor plays."""
    summary = read_metadata(model)
    info = inspect_model(model)
    roles = [r.value if isinstance(r, OutputRole) else None for r in info.output_roles]
    problems = []
    if list(summary.output_names) != roles:
        problems.append(f"output metadata names {list(summary.output_names)} do not match the output roles {roles}")
    if LABEL_FILE not in summary.associated_files:
        problems.append(f"{LABEL_FILE} is not attached (found {list(summary.associated_files)})")
    if summary.label_count != expected_labels:
        problems.append(f"{LABEL_FILE} has {summary.label_count} lines, expected {expected_labels}")
    want_mean, want_std = metadata_normalization(normalization)
    if [round(v, 4) for v in summary.norm_mean] != [round(v, 4) for v in want_mean] or [
        round(v, 4) for v in summary.norm_std
    ] != [round(v, 4) for v in want_std]:
        problems.append(f"normalization mean/std {summary.norm_mean}/{summary.norm_std}, expected {want_mean}/{want_std}")
    if problems:
        raise MetadataProblem("metadata verification failed: " + "; ".join(problems))
    return summary
