"""mAP of a .tflite against ground truth, the way an app runs it (one image at a time).

Normalization for float inputs comes from the model's own metadata (what the Task Library
uses); images are decoded in the orientation the boxes refer to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from liteship.validation.detect import TFLiteDetector
from liteship.validation.groundtruth import load_ground_truth
from liteship.validation.metrics import MapResult, coco_map


def _normalization(model: bytes) -> tuple[list[float], list[float]]:
    """mean/std from the metadata (1 value, or one per channel), else (x - 127.5) / 127.5."""
    from liteship.converter.metadata import read_metadata
    from liteship.errors import MetadataProblem

    try:
        md = read_metadata(model)
    except MetadataProblem:
        return [127.5], [127.5]
    mean = [float(v) for v in md.norm_mean] if md.norm_mean else [127.5]
    std = [float(v) for v in md.norm_std] if md.norm_std else [127.5]
    return mean, std


def evaluate_map(model_path: Path, ground_truth: Path, class_names: Sequence[str], num_threads: int = 2) -> MapResult:
    model = Path(model_path).read_bytes()
    mean, std = _normalization(model)
    detector = TFLiteDetector(model, num_threads=num_threads, mean=mean, std=std)
    gt = load_ground_truth(ground_truth, class_names)
    detections = {g.filename: detector.detect(g.load_rgb()) for g in gt}
    return coco_map(gt, detections, list(class_names))


def reference_map(reference_dir: Path, ground_truth: Path, class_names: Sequence[str]) -> MapResult:
    """mAP of the desktop reference (the OD API model's own preprocess/postprocess)."""
    import numpy as np

    from liteship.validation.detect import Detections
    from liteship.validation.parity import _Reference

    ref = _Reference(reference_dir)
    gt = load_ground_truth(ground_truth, class_names)
    detections = {}
    for g in gt:
        rgb = g.load_rgb()
        h, w = rgb.shape[:2]
        _, _, d = ref.run(rgb)
        b = d["boxes"]  # normalized (ymin, xmin, ymax, xmax): the fixed resizer stretches
        boxes = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1).clip(0, [w, h, w, h])
        detections[g.filename] = Detections(boxes.astype(np.float32), d["classes"], d["scores"].astype(np.float32))
    return coco_map(gt, detections, list(class_names))
