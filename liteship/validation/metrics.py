"""COCO-style mAP of a detector's output against ground truth, with pycocotools.

Class index ``i`` (what ``TFLite_Detection_PostProcess`` emits) is label-map id ``i + 1``
and ``class_names[i]``; the COCO category ids are the label-map ids.

Conventions (pycocotools' own, plus how its ``-1`` "undefined" values are reported):

* AP of a class is averaged only over classes that have ground-truth boxes; detections of
  a class without ground truth do not lower the mean (COCO behaviour).
* A class with ground truth and no (matching) detections has AP 0.0; pycocotools
  already reports 0 there. Where pycocotools reports -1 ("no ground truth"), the value is
  undefined and reported as ``None``: the per-class AP of a class without ground truth,
  and every mean when the ground truth has no boxes at all. A -1 for a quantity that
  does have ground truth is normalised to 0.0.
* Images without ground truth take part: their detections are false positives.
* Boxes marked ``difficult`` are given to pycocotools as crowd regions: detections on them
  are neither true nor false positives and they are not counted as boxes to find
  (``num_gt_boxes`` excludes them, ``num_difficult`` counts them).
* Every detection counts (``maxDets`` is at least the largest per-image count, 100 at
  least); the COCO area ranges are not computed (only "all").
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteship.errors import GroundTruthProblem
from liteship.validation.detect import Detections
from liteship.validation.groundtruth import GroundTruth

#: pycocotools' IoU thresholds are 0.50, 0.55, ..., 0.95; these are their positions.
_IOU_50 = 0
_IOU_75 = 5


@dataclass(frozen=True)
class MapResult:
    """``map`` = mAP@[.5:.95], ``map50`` = mAP@.5, ``map75`` = mAP@.75 (None = undefined:
    no ground-truth boxes); ``per_class_ap50`` has every class name as a key (None for a
    class without ground truth)."""

    map: float | None
    map50: float | None
    map75: float | None
    per_class_ap50: dict[str, float | None]
    per_class_gt_boxes: dict[str, int]
    num_images: int
    num_gt_boxes: int
    num_difficult: int
    num_detections: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "map50": self.map50,
            "map75": self.map75,
            "per_class_ap50": dict(self.per_class_ap50),
            "per_class_gt_boxes": dict(self.per_class_gt_boxes),
            "num_images": self.num_images,
            "num_gt_boxes": self.num_gt_boxes,
            "num_difficult": self.num_difficult,
            "num_detections": self.num_detections,
            "notes": list(self.notes),
        }


def coco_map(
    gt: Sequence[GroundTruth], detections: Mapping[str, Detections], class_names: Sequence[str]
) -> MapResult:
    """mAP of ``detections`` (keyed by :attr:`GroundTruth.filename`) against ``gt``.

    An image of ``gt`` missing from ``detections`` has no detections. Raises
    GroundTruthProblem for a ground-truth label not in ``class_names`` and ValueError for
    detections of an image not in ``gt`` or with a class index outside ``class_names``.
    See the module docstring for how undefined values are reported.
    """
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    index_of = {name: i for i, name in enumerate(names)}
    image_ids: dict[str, int] = {}
    for item in gt:
        if item.filename in image_ids:
            raise GroundTruthProblem(f"{item.source}: image {item.filename!r} appears twice in the ground truth")
        image_ids[item.filename] = len(image_ids) + 1
    unknown = sorted(set(detections) - set(image_ids))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise ValueError(f"detections for images that are not in the ground truth: {shown}")

    images = [{"id": image_ids[g.filename], "file_name": g.filename, "width": g.width, "height": g.height} for g in gt]
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    gt_annotations = _gt_annotations(gt, image_ids, index_of, names)
    dt_annotations, max_per_image = _dt_annotations(detections, image_ids, len(names))

    per_class_gt = {name: 0 for name in names}
    difficult = 0
    for ann in gt_annotations:
        if ann["iscrowd"]:
            difficult += 1
        else:
            per_class_gt[names[ann["category_id"] - 1]] += 1
    num_gt = sum(per_class_gt.values())
    notes: list[str] = []
    if num_gt == 0:
        notes.append("the ground truth has no (non-difficult) boxes: mAP is undefined")
    elif not dt_annotations:
        notes.append("the model detected nothing: every AP is 0")

    precision = _precision(images, categories, gt_annotations, dt_annotations, max_per_image)

    def mean_ap(iou_index: int | None) -> float | None:
        values = precision if iou_index is None else precision[iou_index : iou_index + 1]
        return _mean_defined(values, has_gt=num_gt > 0)

    per_class = {
        name: _mean_defined(precision[_IOU_50, :, k], has_gt=per_class_gt[name] > 0) for k, name in enumerate(names)
    }
    return MapResult(
        map=mean_ap(None),
        map50=mean_ap(_IOU_50),
        map75=mean_ap(_IOU_75),
        per_class_ap50=per_class,
        per_class_gt_boxes=per_class_gt,
        num_images=len(images),
        num_gt_boxes=num_gt,
        num_difficult=difficult,
        num_detections=len(dt_annotations),
        notes=tuple(notes),
    )


def _gt_annotations(
    gt: Sequence[GroundTruth], image_ids: dict[str, int], index_of: dict[str, int], names: list[str]
) -> list[dict[str, Any]]:
    annotations = []
    for item in gt:
        for box in item.boxes:
            if box.label not in index_of:
                raise GroundTruthProblem(
                    f"{item.source}: class {box.label!r} of image {item.filename!r} is not in the label list "
                    f"({', '.join(names)})"
                )
            w, h = box.xmax - box.xmin, box.ymax - box.ymin
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_ids[item.filename],
                    "category_id": index_of[box.label] + 1,
                    "bbox": [box.xmin, box.ymin, w, h],
                    "area": w * h,
                    "iscrowd": int(box.difficult),
                }
            )
    return annotations


def _dt_annotations(
    detections: Mapping[str, Detections], image_ids: dict[str, int], num_classes: int
) -> tuple[list[dict[str, Any]], int]:
    annotations = []
    max_per_image = 0
    for filename, found in detections.items():
        if len(found) and (found.classes.min() < 0 or found.classes.max() >= num_classes):
            raise ValueError(
                f"detections of {filename} have class indices {sorted(set(found.classes.tolist()))}, "
                f"expected 0..{num_classes - 1} (one per class name)"
            )
        max_per_image = max(max_per_image, len(found))
        for (xmin, ymin, xmax, ymax), cls, score in zip(found.boxes.tolist(), found.classes.tolist(), found.scores.tolist()):
            w, h = max(xmax - xmin, 0.0), max(ymax - ymin, 0.0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_ids[filename],
                    "category_id": int(cls) + 1,
                    "bbox": [xmin, ymin, w, h],
                    "area": w * h,
                    "score": score,
                    "iscrowd": 0,
                }
            )
    return annotations, max_per_image


def _precision(
    images: list[dict[str, Any]],
    categories: list[dict[str, Any]],
    gt_annotations: list[dict[str, Any]],
    dt_annotations: list[dict[str, Any]],
    max_per_image: int,
) -> np.ndarray:
    """pycocotools' precision array [iou thresholds, recall thresholds, classes] (-1 = no GT)."""
    if not images:
        return np.full((10, 101, len(categories)), -1.0)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _coco(COCO, images, categories, gt_annotations)
        # Built like the ground truth, not with loadRes (which fails on an empty list).
        coco_dt = _coco(COCO, images, categories, dt_annotations)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        params = evaluator.params
        params.imgIds = [image["id"] for image in images]
        params.catIds = [category["id"] for category in categories]
        params.maxDets = [max(100, max_per_image)]
        params.areaRng = [[0.0, 1e10]]
        params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    # [T, R, K, A, M] with a single area range and a single maxDets
    return np.asarray(evaluator.eval["precision"])[:, :, :, 0, 0]


def _coco(coco_class: Any, images: list[dict[str, Any]], categories: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> Any:
    coco = coco_class()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    coco.createIndex()
    return coco


def _mean_defined(values: np.ndarray, *, has_gt: bool) -> float | None:
    """Mean of the defined (> -1) precision values; -1 everywhere -> 0.0 with GT, else None."""
    defined = values[values > -1]
    if defined.size:
        return float(np.mean(defined))
    return 0.0 if has_gt else None
