"""mAP of a .tflite (or of the desktop reference) against ground truth, the way an app runs
it: one image at a time, float inputs normalized as the model's own metadata says.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from liteship.validation import app_run
from liteship.validation.groundtruth import load_ground_truth
from liteship.validation.metrics import MapResult, coco_map


def evaluate_map(model_path: Path, ground_truth: Path, class_names: Sequence[str]) -> MapResult:
    gt = load_ground_truth(ground_truth, class_names)
    runs, _ = app_run.run_models({"model": Path(model_path).read_bytes()}, None, app_run.images_from_ground_truth(gt))
    return coco_map(gt, runs["model"].detections, list(class_names))


def reference_map(reference_dir: Path, ground_truth: Path, class_names: Sequence[str]) -> MapResult:
    """mAP of the desktop reference (the OD API model's own preprocess/postprocess)."""
    gt = load_ground_truth(ground_truth, class_names)
    runs, _ = app_run.run_models({}, reference_dir, app_run.images_from_ground_truth(gt))
    return coco_map(gt, runs[app_run.REFERENCE].detections, list(class_names))
