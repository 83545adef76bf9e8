"""mAP of a .tflite against ground truth, the way an app runs it (one image at a time).

Normalization for float inputs comes from the model's own metadata (what the Task Library
uses); images are decoded in the orientation the boxes refer to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from liteship.converter.letterbox import ResizeSpec, boxes_to_pixels
from liteship.validation.detect import TFLiteDetector
from liteship.validation.groundtruth import load_ground_truth
from liteship.validation.metrics import MapResult, coco_map


def _normalization(model: bytes) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from the metadata, per channel when it has three (ResNet-FPN, EfficientDet)."""
    from liteship.converter.metadata import read_metadata
    from liteship.errors import MetadataProblem

    try:
        md = read_metadata(model)
    except MetadataProblem:
        return (127.5,), (127.5,)
    mean = tuple(float(m) for m in md.norm_mean) or (127.5,)
    std = tuple(float(s) for s in md.norm_std) or (127.5,)
    return mean, std


def evaluate_map(model_path: Path, ground_truth: Path, class_names: Sequence[str], num_threads: int = 2,
                 resize: ResizeSpec | None = None) -> MapResult:
    """``resize``: a letterboxed model's spec (the detector then letterboxes like the app must)."""
    model = Path(model_path).read_bytes()
    mean, std = _normalization(model)
    detector = TFLiteDetector(model, num_threads=num_threads, mean=mean, std=std, resize=resize)
    gt = load_ground_truth(ground_truth, class_names)
    detections = {g.filename: detector.detect(g.load_rgb()) for g in gt}
    return coco_map(gt, detections, list(class_names))


def reference_map(reference_dir: Path, ground_truth: Path, class_names: Sequence[str],
                  resize: ResizeSpec | None = None) -> MapResult:
    """mAP of the desktop reference (the OD API model's own preprocess/postprocess).
    ``resize``: a letterboxed model's spec; boxes then map back with the model's own resized size."""
    import numpy as np

    from liteship.validation.detect import Detections
    from liteship.validation.parity import _Reference

    ref = _Reference(reference_dir)
    gt = load_ground_truth(ground_truth, class_names)
    detections = {}
    for g in gt:
        rgb = g.load_rgb()
        h, w = rgb.shape[:2]
        r = ref.run_full(rgb)
        d = r.detections
        if resize is not None and resize.letterbox:  # normalized to the padded square
            b = boxes_to_pixels(d["boxes"], resize, h, w, r.true_image_shape)
        else:  # normalized (ymin, xmin, ymax, xmax): the fixed resizer stretches
            b = boxes_to_pixels(d["boxes"], ResizeSpec("stretch", h, w), h, w)
        boxes = np.stack([b[:, 1], b[:, 0], b[:, 3], b[:, 2]], axis=1).clip(0, [w, h, w, h])
        detections[g.filename] = Detections(boxes.astype(np.float32), d["classes"], d["scores"].astype(np.float32))
    return coco_map(gt, detections, list(class_names))
