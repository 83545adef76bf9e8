"""Every variant run the way an app runs it, and the desktop reference, over the validation
images, in one pass: each image is decoded once and goes through every model.

It measures what mAP, the sanity gates and the HTML overlays need -- detections per image,
how many NaN/Inf values each output held, how many detections reached ``min_score`` -- and
judges nothing (:mod:`liteship.validation.judge` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.converter.letterbox import ResizeSpec, boxes_to_pixels
from liteship.types import DEFAULT_NORMALIZATION, Normalization, OutputRole
from liteship.validation.detect import Detections, TFLiteDetector

#: name of the reference in :class:`ModelRun` results
REFERENCE = "reference"


@dataclass(frozen=True)
class ValidationImage:
    filename: str
    load_rgb: Callable[[], np.ndarray]
    #: ground-truth boxes (GroundTruthBox) when the image comes from ground truth
    gt_boxes: tuple[Any, ...] | None = None


@dataclass
class ModelRun:
    """What one model did on the validation images."""

    name: str
    images: int = 0
    min_score: float = 0.3
    #: detections with score >= ``min_score``, over all images
    detections_above: int = 0
    #: output (tensor name) -> NaN/Inf values seen in its valid rows, over all images
    non_finite: dict[str, int] = field(default_factory=dict)
    #: output -> the first image where it held one
    first_non_finite: dict[str, str] = field(default_factory=dict)
    #: image filename -> detections (pixel boxes)
    detections: dict[str, Detections] = field(default_factory=dict)

    def add(self, filename: str, dets: Detections, health: dict[str, int]) -> None:
        self.images += 1
        self.detections[filename] = dets
        self.detections_above += int((dets.scores >= self.min_score).sum())
        for tensor, bad in health.items():
            self.non_finite[tensor] = self.non_finite.get(tensor, 0) + bad
            if bad and tensor not in self.first_non_finite:
                self.first_non_finite[tensor] = filename

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "min_score": self.min_score, "detections_above": self.detections_above,
                "non_finite": dict(self.non_finite), "first_non_finite": dict(self.first_non_finite)}


def metadata_normalization(model: bytes) -> Normalization:
    """The input normalization the model's metadata states (what apps apply), else the default."""
    from liteship.converter.metadata import read_metadata
    from liteship.errors import MetadataProblem

    try:
        md = read_metadata(model)
    except MetadataProblem:
        return DEFAULT_NORMALIZATION
    if not md.norm_mean or not md.norm_std:
        return DEFAULT_NORMALIZATION
    return Normalization(tuple(float(m) for m in md.norm_mean), tuple(float(s) for s in md.norm_std))


def detector_for(model: bytes, num_threads: int = 2, raw_nms: Any = None, resize: ResizeSpec | None = None) -> Any:
    """The model's app run: the postprocess op's outputs, or (the 2-output ``gpu`` variant,
    with ``raw_nms``: :class:`~liteship.validation.runtimes.raw_ssd.Nms`) its heads decoded
    and suppressed as an app that decodes them itself does. ``resize``: a letterboxed model's
    spec (the detector letterboxes as the app must)."""
    if raw_nms is not None:
        from liteship.tflite_inspect import inspect_model

        if not inspect_model(model).postprocess:
            from liteship.validation.runtimes.raw_ssd import RawSsdDetector

            return RawSsdDetector(model, raw_nms, num_threads=num_threads)
    norm = metadata_normalization(model)
    return TFLiteDetector(model, num_threads=num_threads, mean=norm.mean, std=norm.std, resize=resize)


class _ReferenceDetector:
    """The reference with the detector's interface: pixel boxes, health of heads and outputs."""

    def __init__(self, reference_dir: Path, resize: ResizeSpec | None = None) -> None:
        from liteship.validation.reference import Reference

        self._ref = Reference(reference_dir)
        self._resize = resize if resize is not None and resize.letterbox else None

    def detect_checked(self, rgb: np.ndarray) -> tuple[Detections, dict[str, int]]:
        r = self._ref.run_full(rgb)
        heads, d = r.heads, r.detections
        h, w = rgb.shape[:2]
        health = {f"heads/{k}": int((~np.isfinite(v)).sum()) for k, v in heads.items()}
        boxes, classes, scores = d["boxes"], d["classes"], d["scores"]
        finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        health["detections/boxes"] = int((~np.isfinite(boxes).all(axis=1)).sum())
        health["detections/scores"] = int((~np.isfinite(scores)).sum())
        boxes, classes, scores = boxes[finite], classes[finite], scores[finite]
        if self._resize is not None:  # normalized to the padded square; the model's own resized size
            boxes = boxes_to_pixels(boxes, self._resize, h, w, r.true_image_shape)
        else:  # normalized (ymin, xmin, ymax, xmax), stretched like the fixed resizer
            boxes = boxes * np.asarray([h, w, h, w], np.float64)
        pixel = np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3], boxes[:, 2]], axis=1)
        pixel = pixel.clip(0, [w, h, w, h]) if len(pixel) else pixel.reshape(0, 4)
        return Detections(pixel.astype(np.float32), classes, scores.astype(np.float32)), health


def _role_health(detector: TFLiteDetector, health: dict[OutputRole, int]) -> dict[str, int]:
    return {f"{role.value} ({detector.output_name(role)})": bad for role, bad in health.items()}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run_models(
    models: dict[str, bytes],
    reference_dir: Path | None,
    images: Iterable[ValidationImage],
    *,
    min_score: float = 0.3,
    keep_images: int = 0,
    workers: int | None = None,
    raw_nms: Any = None,
    resize: ResizeSpec | None = None,
) -> tuple[dict[str, ModelRun], list[tuple[ValidationImage, np.ndarray]]]:
    """Run every model (and the reference, under :data:`REFERENCE`) on every image;
    ``raw_nms``: how models without the postprocess op are decoded (:func:`detector_for`).

    Returns the runs and the first ``keep_images`` images with their decoded pixels (for the
    report's overlays). The images are split among ``workers`` threads (default: the usable
    cores), each with its own single-threaded interpreters and one shared reference: the
    interpreter, TensorFlow and Pillow's decoder release the GIL, and on small models one
    interpreter with several threads spends most of an invoke synchronising them. The
    results are merged in image order, so they do not depend on ``workers``. ``resize``: a
    letterboxed model's spec: the variants letterbox each photo as the app must, the
    reference uses the model's own keep-aspect preprocess.
    """
    images = list(images)
    workers = max(1, min(usable_cores() if workers is None else workers, len(images)))
    reference = _ReferenceDetector(reference_dir, resize) if reference_dir is not None else None
    names = [*models, *([REFERENCE] if reference is not None else [])]
    runs = {name: ModelRun(name, min_score=min_score) for name in names}

    def share(indices: Sequence[int]) -> list[tuple[int, np.ndarray | None, dict[str, Any]]]:
        threads = 2 if workers == 1 else 1
        detectors: dict[str, Any] = {name: detector_for(model, threads, raw_nms=raw_nms, resize=resize) for name, model in models.items()}
        if reference is not None:
            detectors[REFERENCE] = reference
        done = []
        for i in indices:
            rgb = images[i].load_rgb()
            found = {}
            for name, detector in detectors.items():
                dets, health = detector.detect_checked(rgb)
                if isinstance(detector, TFLiteDetector):
                    health = _role_health(detector, health)
                found[name] = (dets, health)
            done.append((i, rgb if i < keep_images else None, found))
        return done

    if workers == 1:
        results = share(range(len(images)))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="liteship-validate") as pool:
            parts = list(pool.map(share, [range(w, len(images), workers) for w in range(workers)]))
        results = sorted((r for part in parts for r in part), key=lambda r: r[0])
    kept: list[tuple[ValidationImage, np.ndarray]] = []
    for i, rgb, found in results:
        if rgb is not None:
            kept.append((images[i], rgb))
        for name, (dets, health) in found.items():
            runs[name].add(images[i].filename, dets, health)
    return runs, kept


def images_from_ground_truth(gt: Sequence[Any]) -> list[ValidationImage]:
    return [ValidationImage(g.filename, g.load_rgb, tuple(g.boxes)) for g in gt]


def images_from_folder(paths: Sequence[Path]) -> list[ValidationImage]:
    import functools

    from liteship.converter import calibration

    return [ValidationImage(p.name, functools.partial(calibration.load_rgb, p)) for p in paths]
