"""mAP of a .tflite against ground truth, the way an app runs it (one image at a time).

Normalization for float inputs comes from the model's own metadata (what the Task Library
uses); images are decoded in the orientation the boxes refer to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from liteship.validation.detect import TFLiteDetector
from liteship.validation.groundtruth import load_ground_truth
from liteship.validation.metrics import MapResult, coco_map


def _normalization(model: bytes) -> tuple[float, float]:
    from liteship.converter.metadata import read_metadata
    from liteship.errors import MetadataProblem

    try:
        md = read_metadata(model)
    except MetadataProblem:
        return 127.5, 127.5
    mean = md.norm_mean[0] if md.norm_mean else 127.5
    std = md.norm_std[0] if md.norm_std else 127.5
    return float(mean), float(std)


def evaluate_map(model_path: Path, ground_truth: Path, class_names: Sequence[str], num_threads: int = 2) -> MapResult:
    """mAP of the model over every ground-truth image. The images are split among
    ``num_threads`` worker threads, each running its own single-threaded interpreter on its
    share (the interpreter releases the GIL in ``invoke``; decoding and resizing in Pillow
    do too): on small models that keeps every core busy, where one interpreter with
    ``num_threads`` threads spends most of a ~1 ms invoke synchronising them."""
    model = Path(model_path).read_bytes()
    mean, std = _normalization(model)
    gt = load_ground_truth(ground_truth, class_names)

    def detect_share(share: Sequence[Any]) -> dict[str, Any]:
        detector = TFLiteDetector(model, num_threads=1, mean=mean, std=std)
        return {g.filename: detector.detect(g.load_rgb()) for g in share}

    detections = _in_threads(gt, detect_share, num_threads)
    return coco_map(gt, detections, list(class_names))


def _in_threads(gt: Sequence[Any], work: Callable[[Sequence[Any]], dict[str, Any]], workers: int) -> dict[str, Any]:
    """``work`` on ``workers`` interleaved shares of ``gt`` in threads; results in gt order."""
    workers = max(1, min(workers, len(gt)))
    if workers == 1:
        found = work(gt)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="liteship-eval") as pool:
            found = {}
            for part in pool.map(work, [gt[w::workers] for w in range(workers)]):
                found.update(part)
    return {g.filename: found[g.filename] for g in gt}


def reference_map(reference_dir: Path, ground_truth: Path, class_names: Sequence[str], num_threads: int = 2) -> MapResult:
    """mAP of the desktop reference (the OD API model's own preprocess/postprocess)."""
    import numpy as np

    from liteship.validation.detect import Detections
    from liteship.validation.parity import _Reference

    ref = _Reference(reference_dir)
    gt = load_ground_truth(ground_truth, class_names)

    def detect_share(share: Sequence[Any]) -> dict[str, Any]:
        detections = {}
        for g in share:
            rgb = g.load_rgb()
            h, w = rgb.shape[:2]
            _, _, d = ref.run(rgb)
            b = d["boxes"]  # normalized (ymin, xmin, ymax, xmax): the fixed resizer stretches
            boxes = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1).clip(0, [w, h, w, h])
            detections[g.filename] = Detections(boxes.astype(np.float32), d["classes"], d["scores"].astype(np.float32))
        return detections

    # TensorFlow functions may be called from several threads; each call uses TF's own pools
    detections = _in_threads(gt, detect_share, num_threads)
    return coco_map(gt, detections, list(class_names))
