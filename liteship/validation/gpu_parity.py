"""Parity of the ``gpu`` variant with the desktop reference, in the consumers that load it.

Measured per image (the same images as the other variants' parity, each first resized to
the model's input size with Pillow, so that the reference, MediaPipe and CompiledModel
all see the very same pixels):

* **MediaPipe ObjectDetector** (its own decoding and NMS from ``DETECTOR_METADATA``) vs the
  reference. MediaPipe's NMS for 2-output models is class-agnostic with
  ``min_suppression_threshold`` -- a C++-only option: the Java, Python and C
  ObjectDetector APIs do not expose it, so apps get its default,
  :data:`MEDIAPIPE_NMS_IOU` (``object_detector.h``: ``min_suppression_threshold = 0.3f``;
  ``object_detector_options.proto``: ``[default = 0.3]``). The config's IoU threshold maps
  onto it only when they are equal (``mediapipe.nms_iou`` warns otherwise), so MediaPipe is
  compared with the reference heads decoded and suppressed the way MediaPipe does it
  (:class:`ReferenceNms`: the OD API's own box coder and NMS built from the model's
  pipeline.config, class-agnostic at IoU 0.3, no clip window) and the reference boxes put
  in MediaPipe's result type (whole pixels, truncated: :func:`as_mediapipe_pixels`).
* **CompiledModel on CPU**: its two outputs vs the reference's heads elementwise, and
  liteship's own decode + NMS (:mod:`liteship.validation.raw_heads`, with the anchors and
  scales read from the model's DETECTOR_METADATA, the config's thresholds) vs the
  reference's ``detect``. Wrong anchors or scales in the metadata fail both comparisons.

Results are :class:`~liteship.validation.parity.ParityResult` s judged with
:func:`liteship.validation.parity.judge`, like every variant.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.converter import mediapipe_metadata as mpmd
from liteship.types import Check, GpuPrecision, Variant, Verdict
from liteship.validation import gpu_runtimes, parity, raw_heads

#: what MediaPipe's ObjectDetector applies to models without the postprocess op (above)
MEDIAPIPE_NMS_IOU = 0.3
PARITY_SCORE_THRESHOLD = 0.3


class ReferenceNms:
    """The OD API's own decode + NMS of the reference heads, with another NMS IoU threshold
    (class-agnostic, one class per box: what MediaPipe's ``multiclass_nms = false`` does).

    ``clip``: clip boxes to the image as the model's own postprocess does (its clip window);
    MediaPipe does not clip.
    """

    def __init__(self, reference_dir: Path, iou_threshold: float, max_detections: int, clip: bool = True) -> None:
        import tensorflow as tf

        from liteship import odapi
        from liteship.converter import preflight

        config = preflight.read_pipeline_config(Path(reference_dir) / "pipeline.config")
        ssd = config.model.ssd
        post = copy.deepcopy(ssd.post_processing)
        nms = post.batch_non_max_suppression
        nms.iou_threshold = iou_threshold
        nms.use_class_agnostic_nms = True
        nms.max_classes_per_detection = 1
        nms.max_detections_per_class = max_detections
        nms.max_total_detections = max_detections
        if not clip:  # [0, 0, 1, 1] makes the frame change an identity; without a window there is none
            nms.change_coordinate_frame = False
        self._nms, _ = odapi.module("builders.post_processing_builder").build(post)
        self._coder = odapi.module("builders.box_coder_builder").build(ssd.box_coder)
        box_list = odapi.module("core.box_list")
        yc, xc, h, w = np.load(Path(reference_dir) / "anchors.npy").T
        corners = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1).astype(np.float32)
        self._anchors = box_list.BoxList(tf.constant(corners))
        self._num_classes = int(ssd.num_classes)
        self._clip = tf.constant([[0.0, 0.0, 1.0, 1.0]]) if clip else None
        self._tf = tf

    def __call__(self, heads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = self._tf
        boxes = self._coder.decode(tf.constant(heads["box_encodings"][0]), self._anchors).get()
        scores = tf.constant(heads["class_predictions"][0][:, -self._num_classes:])
        out = self._nms(boxes[None, :, None, :], scores[None], clip_window=self._clip)
        nmsed_boxes, nmsed_scores, nmsed_classes, n = out[0], out[1], out[2], int(out[5][0])
        return {
            "boxes": nmsed_boxes[0, :n].numpy(),
            "classes": nmsed_classes[0, :n].numpy().astype(np.int64),
            "scores": nmsed_scores[0, :n].numpy(),
        }


class _Acc:
    """Running sums of one runtime's comparison (the fields of a ParityResult)."""

    def __init__(self) -> None:
        self.heads: dict[str, list[float]] = {}
        self.ref = self.var = self.matched = self.same_class = 0
        self.iou: list[float] = []
        self.dscore: list[float] = []

    def add_heads(self, name: str, got: np.ndarray, want: np.ndarray) -> None:
        diff = np.abs(np.subtract(np.asarray(got).reshape(want.shape), want, dtype=np.float64))
        s = self.heads.setdefault(name, [0.0, 0.0, 0])
        s[0], s[1], s[2] = max(s[0], float(diff.max())), s[1] + float(diff.mean()), s[2] + 1

    def add_detections(self, ref: dict[str, np.ndarray], var: dict[str, np.ndarray], threshold: float,
                       clip: bool = True) -> None:
        """``clip``: clip the variant's boxes to the image, as the reference's are."""
        ref = parity._above(ref, threshold)
        var = parity._above({**var, "boxes": np.clip(var["boxes"], 0.0, 1.0)} if clip else var, threshold)
        self.ref += len(ref["scores"])
        self.var += len(var["scores"])
        pairs = parity.match(ref, var)
        self.matched += len(pairs)
        self.same_class += sum(int(ref["classes"][i] == var["classes"][j]) for i, j, _ in pairs)
        self.iou += [iou for _, _, iou in pairs]
        self.dscore += [abs(float(ref["scores"][i]) - float(var["scores"][j])) for i, j, _ in pairs]

    def result(self, name: str, images: int, threshold: float) -> parity.ParityResult:
        def summary(values: list[float]) -> dict[str, Any]:
            if not values:
                return {"count": 0, "mean": None, "max": None, "min": None}
            a = np.asarray(values)
            return {"count": int(a.size), "mean": float(a.mean()), "max": float(a.max()), "min": float(a.min())}

        hist, edges = np.histogram(np.asarray(self.iou), bins=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0 + 1e-9])
        return parity.ParityResult(
            variant=name,
            images=images,
            score_threshold=threshold,
            heads={k: ({"max_abs": s[0], "mean_abs": s[1] / max(s[2], 1)} if (s := self.heads.get(k)) else
                       {"max_abs": None, "mean_abs": None}) for k in ("box_encodings", "class_predictions")},
            reference_detections=self.ref,
            variant_detections=self.var,
            matched=self.matched,
            class_agreement=self.same_class / self.matched if self.matched else None,
            recall=self.matched / self.ref if self.ref else None,
            precision=self.matched / self.var if self.var else None,
            iou={**summary(self.iou), "histogram": {"edges": [round(e, 3) for e in edges], "counts": hist.tolist()}},
            score_delta=summary(self.dscore),
        )


@dataclass(frozen=True)
class GpuParity:
    """What was measured; ``None`` results: the runtime did not run (see its ``*_run``)."""

    images: int
    config_iou: float
    mediapipe_iou: float
    #: how MediaPipe's reference was made: the ``detect`` signature, or ReferenceNms at 0.3
    mediapipe_reference: str
    mediapipe: parity.ParityResult | None
    mediapipe_run: dict[str, Any]
    compiled: parity.ParityResult | None
    compiled_run: dict[str, Any]
    map_result: Any = None  # metrics.MapResult from MediaPipe on the ground truth, or None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "nms": {"config_iou": self.config_iou, "mediapipe_iou": self.mediapipe_iou,
                    "mediapipe_reference": self.mediapipe_reference},
            "mediapipe": self.mediapipe.to_dict() if self.mediapipe else None,
            "mediapipe_run": self.mediapipe_run,
            "litert_compiled": self.compiled.to_dict() if self.compiled else None,
            "litert_compiled_run": self.compiled_run,
            "notes": list(self.notes),
        }


def as_mediapipe_pixels(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized (ymin, xmin, ymax, xmax) as MediaPipe reports them, back in [0, 1]:
    ``DetectionTransformationCalculator`` stores xmin and width (ymin, height) as ints,
    converted by truncation and bounded to [0, image size]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def px(v: np.ndarray, size: int) -> np.ndarray:
        return np.clip(np.trunc(v * size), 0, size)

    y0, x0 = px(b[:, 0], height), px(b[:, 1], width)
    hh, ww = px(b[:, 2] - b[:, 0], height), px(b[:, 3] - b[:, 1], width)
    return np.stack([y0 / height, x0 / width, (y0 + hh) / height, (x0 + ww) / width], axis=1).astype(np.float32)


def _resized(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.BILINEAR))


def measure(
    model_path: Path,
    reference_dir: Path,
    images: Iterable[np.ndarray],
    labels: Sequence[str],
    *,
    input_shape: tuple[int, ...],
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
    use_regular_nms: bool = False,
    ground_truth: Sequence[Any] | None = None,
    parity_threshold: float = PARITY_SCORE_THRESHOLD,
) -> GpuParity:
    """Run the reference, MediaPipe and CompiledModel on ``images``; with ``ground_truth``
    (groundtruth records) also MediaPipe's mAP on those images at their own size."""
    _, h, w, _ = input_shape
    ref = parity._Reference(reference_dir)
    rgbs, pres, heads, dets = [], [], [], []
    for rgb in images:
        small = _resized(rgb, h, w)
        pre, hd, d = ref.run(small)
        rgbs.append(small)
        pres.append(pre)
        heads.append(hd)
        dets.append(d)
    n = len(rgbs)
    nms = ReferenceNms(reference_dir, MEDIAPIPE_NMS_IOU, max_detections, clip=False)
    how = f"the OD API's decode + class-agnostic NMS at IoU {MEDIAPIPE_NMS_IOU}, boxes not clipped (as MediaPipe)"
    # the reference's boxes in MediaPipe's result type (whole pixels of the image it was given)
    mp_refs = [{**r, "boxes": as_mediapipe_pixels(r["boxes"], h, w)} for r in (nms(hd) for hd in heads)]
    gt_rgbs = [g.load_rgb() for g in ground_truth] if ground_truth else []
    # one child for the parity images and the mAP images, set up as the app is (the config's
    # score threshold, max_detections results); parity then keeps scores >= parity_threshold on
    # both sides, which greedy NMS makes independent of the lower threshold
    mp_run = gpu_runtimes.run_mediapipe(model_path, rgbs + gt_rgbs, list(labels), score_threshold=score_threshold,
                                        max_results=max_detections)
    mediapipe = None
    mp_ok = mp_run.ran and mp_run.loaded and not mp_run.message
    if mp_ok:
        acc = _Acc()
        for r, v in zip(mp_refs, mp_run.detections[:n]):
            acc.add_detections(r, v, parity_threshold, clip=False)
        mediapipe = acc.result(f"{Variant.GPU.value}/mediapipe", n, parity_threshold)
    cm_run = gpu_runtimes.run_compiled(model_path, np.stack(pres) if pres else np.zeros((0, *input_shape), np.float32))
    compiled = None
    notes: list[str] = []
    if cm_run.ok:
        _, options = mpmd.read_metadata(Path(model_path).read_bytes())
        acc = _Acc()
        loc, score = cm_run.outputs[mpmd.LOCATION_NAME], cm_run.outputs[mpmd.SCORE_NAME]
        num_classes = score.shape[-1]
        for i in range(n):
            acc.add_heads("box_encodings", loc[i], heads[i]["box_encodings"])
            acc.add_heads("class_predictions", score[i], heads[i]["class_predictions"][..., -num_classes:])
            if options is not None:
                mine = raw_heads.detect(loc[i], score[i], options, score_threshold=score_threshold,
                                        iou_threshold=iou_threshold, max_detections=max_detections,
                                        regular_nms=use_regular_nms)
                acc.add_detections(dets[i], mine, parity_threshold)
        if options is None:
            notes.append("no DETECTOR_METADATA in the model: liteship's decode could not run")
        compiled = acc.result(f"{Variant.GPU.value}/litert-compiled", n, parity_threshold)
    map_result = None
    if mp_ok and ground_truth:
        map_result = _map(ground_truth, gt_rgbs, mp_run.detections[n:], labels)
    return GpuParity(
        images=n, config_iou=iou_threshold, mediapipe_iou=MEDIAPIPE_NMS_IOU, mediapipe_reference=how,
        mediapipe=mediapipe, mediapipe_run=gpu_runtimes.as_dict(mp_run),
        compiled=compiled, compiled_run=gpu_runtimes.as_dict(cm_run), map_result=map_result, notes=tuple(notes),
    )


def _map(ground_truth: Sequence[Any], rgbs: list[np.ndarray], dets: list[dict[str, np.ndarray]], labels: Sequence[str]) -> Any:
    from liteship.validation.detect import Detections
    from liteship.validation.metrics import coco_map

    out = {}
    for g, rgb, d in zip(ground_truth, rgbs, dets):
        h, w = rgb.shape[:2]
        b = np.clip(d["boxes"], 0.0, 1.0)
        pixels = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1)
        keep = d["classes"] >= 0
        out[g.filename] = Detections(pixels[keep], d["classes"][keep], d["scores"][keep])
    return coco_map(list(ground_truth), out, list(labels))


# --- judging (pure) -------------------------------------------------------------------------


def tolerance_for(precision: GpuPrecision, tolerances: dict[Variant, parity.Tolerance]) -> parity.Tolerance:
    """``[parity.gpu]`` for fp32 weights; with fp16 weights the looser of it and fp16's."""
    base = tolerances[Variant.GPU]
    if precision is GpuPrecision.FP32:
        return base
    fp16 = tolerances[Variant.FP16]
    values = {}
    for f in dataclasses.fields(parity.Tolerance):
        a, b = getattr(base, f.name), getattr(fp16, f.name)
        values[f.name] = min(a, b) if f.name.startswith("min_") else max(a, b)
    return parity.Tolerance(**values)


def _renamed(checks: list[Check], runtime: str) -> list[Check]:
    return [dataclasses.replace(c, id=c.id.replace("parity.", f"parity.{runtime}.", 1)) for c in checks]


def judge(result: GpuParity, tolerance: parity.Tolerance) -> list[Check]:
    checks: list[Check] = []
    mp = result.mediapipe_run
    want = "ObjectDetector loads the model and detects"
    if not mp["ran"]:
        checks.append(Check("mediapipe.loads", Verdict.SKIP, want, None, mp["message"]))
    elif result.mediapipe is None:
        checks.append(Check("mediapipe.loads", Verdict.FAIL, want, mp["message"], "MediaPipe refused the model",
                            "see the MediaPipe error; `liteship lint` lists the mediapipe contract checks"))
    else:
        checks.append(Check("mediapipe.loads", Verdict.PASS, want, f"mediapipe {mp['version']}"))
        judged = _renamed(parity.judge(result.mediapipe, tolerance), "mediapipe")
        checks += [dataclasses.replace(c, verdict=Verdict.NA, found=None, fix="",
                                       message="MediaPipe does not expose the model's outputs: see parity.compiled.heads")
                   if ".heads." in c.id else c for c in judged]
    same = abs(result.config_iou - result.mediapipe_iou) < 1e-6
    checks.append(Check(
        "mediapipe.nms_iou", Verdict.PASS, f"{result.config_iou} (the config's NMS IoU)", result.mediapipe_iou,
        "" if same else (f"warning: MediaPipe's ObjectDetector suppresses boxes overlapping more than IoU "
                         f"{result.mediapipe_iou} (min_suppression_threshold, not settable from its Java/Python/C "
                         f"APIs), the config uses {result.config_iou}; compared with {result.mediapipe_reference}. "
                         f"To make every consumer agree, export with --iou-threshold {result.mediapipe_iou}"),
    ))
    cm = result.compiled_run
    want = "CompiledModel (CPU) loads and runs the model"
    if not cm["ran"]:
        checks.append(Check("litert_compiled.runs", Verdict.SKIP, want, None, cm["message"]))
    elif result.compiled is None:
        checks.append(Check("litert_compiled.runs", Verdict.FAIL, want, cm["message"], "CompiledModel failed",
                            "see the LiteRT error"))
    else:
        checks.append(Check("litert_compiled.runs", Verdict.PASS, want, f"ai-edge-litert {cm['version']}"))
        checks += _renamed(parity.judge(result.compiled, tolerance), "compiled")
    if cm["ran"]:
        gpu = cm.get("gpu_accelerator", "")
        want = "CompiledModel with the GPU accelerator"
        if gpu == "ok":
            checks.append(Check("litert_compiled.gpu", Verdict.PASS, want, "ok"))
        elif gpu_runtimes.NO_GPU in gpu:
            checks.append(Check("litert_compiled.gpu", Verdict.SKIP, want, None,
                                f"no GPU on this machine (LiteRT: {gpu_runtimes.NO_GPU}); the GPU-delegate analysis "
                                "(gpu_delegate.all_ops) stands for it"))
        else:
            checks.append(Check("litert_compiled.gpu", Verdict.FAIL, want, gpu, "the GPU accelerator refused the model",
                                "see the LiteRT error"))
    return checks


def validate_entry(
    entry: dict[str, Any], out: Path, exported: Any, images: Iterable[np.ndarray], labels: Sequence[str],
    tolerances: dict[Variant, parity.Tolerance], precision: GpuPrecision, ground_truth: Sequence[Any] | None = None,
) -> list[str]:
    """Measure and judge the gpu variant, fill its report entry the way ``run`` fills the
    others' (``parity``, ``checks``, ``map50``/``map``/``map_detail``); returns the ids of
    failed checks."""
    result = measure(
        Path(out) / entry["path"], exported.reference_dir, images, labels,
        input_shape=exported.input_shape, iou_threshold=exported.iou_threshold,
        score_threshold=exported.score_threshold, max_detections=exported.max_detections,
        use_regular_nms=bool(exported.use_regular_nms), ground_truth=ground_truth,
    )
    tolerance = tolerance_for(precision, tolerances)
    checks = judge(result, tolerance)
    # the top-level view matches the other variants': detections as MediaPipe (the consumer
    # this variant is for) finds them, heads as CompiledModel computes them
    top = result.mediapipe.to_dict() if result.mediapipe else (result.compiled.to_dict() if result.compiled else None)
    if top is not None and result.compiled is not None:
        top["heads"] = result.compiled.heads
    entry["parity"] = None if top is None else {**top, "tolerance": dataclasses.asdict(tolerance), "gpu": result.to_dict()}
    entry["checks"] += [c.to_dict() for c in checks]
    if ground_truth:
        r = result.map_result
        entry.update(map50=r.map50 if r else None, map=r.map if r else None, map_detail=r.to_dict() if r else None)
    return [c.id for c in checks if c.verdict == Verdict.FAIL]
