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
  in MediaPipe's result type (whole pixels, truncated: :func:`_as_mediapipe_pixels`).
* **CompiledModel on CPU**: its two outputs vs the reference's heads elementwise, and
  liteship's own decode + NMS (:mod:`liteship.validation.raw_heads`, with the anchors and
  scales read from the model's DETECTOR_METADATA, the config's thresholds) vs the
  reference's ``detect``. Wrong anchors or scales in the metadata fail both comparisons.

Results are :class:`~liteship.validation.parity.ParityResult` s judged with
:func:`liteship.validation.judge.parity_checks`, like every variant.
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
from liteship.validation import judge as judging
from liteship.validation import parity, raw_heads
from liteship.validation.gates import TOLERANCES, Tolerance
from liteship.validation.contracts import MEDIAPIPE_RAW_NMS_IOU
from liteship.validation.reference import Reference

#: what MediaPipe's ObjectDetector applies to models without the postprocess op (above)
MEDIAPIPE_NMS_IOU = MEDIAPIPE_RAW_NMS_IOU
PARITY_SCORE_THRESHOLD = 0.3
#: scores closer than this are a tie when matching (the gpu variant's built-in score_tie)
SCORE_TIE = TOLERANCES[Variant.GPU].score_tie


class ReferenceNms:
    """The OD API's own decode + NMS of the reference heads, with another NMS IoU threshold
    (class-agnostic, one class per box: what MediaPipe's ``multiclass_nms = false`` does).

    No clip window, like the reference's ``detect`` (the op's convention: boxes unclipped)
    and MediaPipe.
    """

    def __init__(self, reference_dir: Path, iou_threshold: float, max_detections: int) -> None:
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
        nms.change_coordinate_frame = False  # there is no window to change the frame to
        self._nms, _ = odapi.module("builders.post_processing_builder").build(post)
        self._coder = odapi.module("builders.box_coder_builder").build(ssd.box_coder)
        box_list = odapi.module("core.box_list")
        yc, xc, h, w = np.load(Path(reference_dir) / "anchors.npy").T
        corners = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1).astype(np.float32)
        self._anchors = box_list.BoxList(tf.constant(corners))
        self._num_classes = int(ssd.num_classes)
        self._tf = tf

    def __call__(self, heads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = self._tf
        boxes = self._coder.decode(tf.constant(heads["box_encodings"][0]), self._anchors).get()
        scores = tf.constant(heads["class_predictions"][0][:, -self._num_classes:])
        out = self._nms(boxes[None, :, None, :], scores[None], clip_window=None)
        nmsed_boxes, nmsed_scores, nmsed_classes, n = out[0], out[1], out[2], int(out[5][0])
        return {
            "boxes": nmsed_boxes[0, :n].numpy(),
            "classes": nmsed_classes[0, :n].numpy().astype(np.int64),
            "scores": nmsed_scores[0, :n].numpy(),
        }


class _Acc:
    """One runtime's comparison, in parity's own accumulators (the same statistics, NaN
    handling and tie-aware matching as every variant)."""

    def __init__(self) -> None:
        self.acc = parity.new_accumulator()

    def add_heads(self, name: str, got: np.ndarray, want: np.ndarray) -> None:
        self.acc["heads"][name].add(np.asarray(got).reshape(want.shape), want)

    def add_detections(self, ref: dict[str, np.ndarray], var: dict[str, np.ndarray], threshold: float) -> None:
        """Both unclipped (ymin, xmin, ymax, xmax), relative to the input."""
        self.acc["det"].add(ref, var, threshold, SCORE_TIE, None)

    def result(self, name: str, images: int, threshold: float) -> parity.ParityResult:
        return parity.result_of(name, self.acc, images, threshold, SCORE_TIE)


@dataclass(frozen=True)
class GpuParity:
    """What was measured; ``None`` results: the runtime did not run (see its ``*_run``)."""

    images: int
    config_iou: float
    mediapipe_iou: float
    #: how MediaPipe's reference was made (ReferenceNms at MediaPipe's IoU)
    mediapipe_reference: str
    mediapipe: parity.ParityResult | None
    mediapipe_run: dict[str, Any]
    compiled: parity.ParityResult | None
    compiled_run: dict[str, Any]
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


def _resized(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """The desktop runs' stretch to the input size (Pillow bilinear, as for every variant)."""
    from liteship.validation.runtimes.compare import resize_to_input

    return resize_to_input(rgb, height, width)


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
    parity_threshold: float = PARITY_SCORE_THRESHOLD,
    folded: bool = False,
) -> GpuParity:
    """Run the reference, MediaPipe and CompiledModel on ``images``.
    ``folded``: the model normalizes inside (its input takes the 0-255 pixels)."""
    _, h, w, _ = input_shape
    ref = Reference(reference_dir)
    rgbs, pres, heads, dets = [], [], [], []
    for rgb in images:
        small = _resized(rgb, h, w)
        pre, hd, d = ref.run(small)
        rgbs.append(small)
        pres.append(small[None].astype(np.float32) if folded else pre)
        heads.append(hd)
        dets.append(d)
    n = len(rgbs)
    nms = ReferenceNms(reference_dir, MEDIAPIPE_NMS_IOU, max_detections)
    how = f"the OD API's decode + class-agnostic NMS at IoU {MEDIAPIPE_NMS_IOU}, boxes not clipped (as MediaPipe)"
    # the reference's boxes in MediaPipe's result type (whole pixels of the image it was given)
    mp_refs = [{**r, "boxes": _as_mediapipe_pixels(r["boxes"], h, w)} for r in (nms(hd) for hd in heads)]
    # one run of each runtime child over the parity images
    mp_out, cm_out = _run_consumers(Path(model_path), rgbs,
                                    np.stack(pres) if pres else np.zeros((0, *input_shape), np.float32))
    mp_dets = _mediapipe_detections(mp_out, list(labels), h, w, max_detections)
    mediapipe = None
    if mp_dets is not None:
        acc = _Acc()
        for r, v in zip(mp_refs, mp_dets):
            acc.add_detections(r, v, parity_threshold)
        mediapipe = acc.result(f"{Variant.GPU.value}/mediapipe", n, parity_threshold)
    compiled = None
    notes: list[str] = []
    cm_values = _compiled_outputs(cm_out)
    if cm_values is not None:
        _, options = mpmd.read_metadata(Path(model_path).read_bytes())
        acc = _Acc()
        loc, score = cm_values[mpmd.LOCATION_NAME], cm_values[mpmd.SCORE_NAME]
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
    return GpuParity(
        images=n, config_iou=iou_threshold, mediapipe_iou=MEDIAPIPE_NMS_IOU, mediapipe_reference=how,
        mediapipe=mediapipe, mediapipe_run=_outcome(mp_out), compiled=compiled, compiled_run=_outcome(cm_out),
        notes=tuple(notes),
    )


def _as_mediapipe_pixels(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Relative (ymin, xmin, ymax, xmax) boxes as MediaPipe reports them (whole pixels, its
    truncation and bounds: :func:`liteship.validation.runtimes.compare.to_pixels`), relative again."""
    from liteship.validation.runtimes.compare import to_pixels

    px = [to_pixels(b, width, height, "mediapipe") for b in np.asarray(boxes).reshape(-1, 4)]
    return np.asarray([[y0 / height, x0 / width, y1 / height, x1 / width] for x0, y0, x1, y1 in px],
                      dtype=np.float32).reshape(-1, 4)


def _run_consumers(model_path: Path, images: list[np.ndarray], inputs: np.ndarray) -> tuple[Any, Any]:
    """MediaPipe on ``images`` (uint8 at the input size) and CompiledModel on ``inputs``, with
    the consumers' runtime children (liteship.validation.runtimes), side by side."""
    import concurrent.futures
    import tempfile

    from liteship.validation.runtimes import compiled_model, mediapipe_tasks, runner

    with tempfile.TemporaryDirectory(prefix="liteship-gpu-parity-") as tmp:
        np.save(Path(tmp) / "images.npy", np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8))
        np.save(Path(tmp) / "inputs.npy", np.asarray(inputs, np.float32))
        job = runner.Job(model=model_path, images=Path(tmp) / "images.npy", inputs=Path(tmp) / "inputs.npy")
        results: dict[str, Any] = {}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for name, mod in (("mediapipe", mediapipe_tasks), ("compiled", compiled_model)):
                reason = mod.available()
                results[name] = (runner.JobOutcome(None, ended="unavailable", reason=reason) if reason is not None
                                 else pool.submit(mod.run, [job]))
            done = {k: (v.result()[0] if hasattr(v, "result") else v) for k, v in results.items()}
    return done["mediapipe"], done["compiled"]


def _outcome(outcome: Any) -> dict[str, Any]:
    """How a runtime child ended, as report data: ``status`` ok | refused | failed |
    crashed | timeout | unavailable, and the runtime's words."""
    p = outcome.payload
    if p is None:
        return {"status": outcome.ended or "crashed", "message": outcome.reason,
                "error": " | ".join(outcome.native_errors()) or None}
    error = f"{p.get('kind', 'Error')}: {p['error']}" if p.get("error") else None
    return {"status": p.get("status"), "message": p.get("stage") or "", "error": error,
            "load_s": p.get("load_s"), "run_s": p.get("run_s")}


def _mediapipe_detections(outcome: Any, labels: list[str], h: int, w: int, limit: int) -> list[dict[str, np.ndarray]] | None:
    """Per image: MediaPipe's detections, best first, the first ``limit`` (the child asks for
    all of them; greedy NMS makes the first ``limit`` what ``max_results=limit`` returns)."""
    p = outcome.payload
    if p is None or p.get("status") != "ok":
        return None
    out = []
    for image in p["detections"]:
        rows = sorted(image, key=lambda d: -float(d[5]))[:limit]
        boxes = [[y0 / h, x0 / w, y1 / h, x1 / w] for x0, y0, x1, y1, _, _ in rows]
        classes = [labels.index(name) if name in labels else (int(name) if str(name).isdigit() else -1)
                   for *_, name, _ in rows]
        out.append({"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "classes": np.asarray(classes, np.int64),
                    "scores": np.asarray([r[5] for r in rows], np.float32)})
    return out


def _compiled_outputs(outcome: Any) -> dict[str, np.ndarray] | None:
    """CompiledModel's buffers per output name: [images, *shape]."""
    p = outcome.payload
    if p is None or p.get("status") != "ok":
        return None
    names, shapes = p["output_names"], [d["shape"] for d in p["buffers"]]
    return {name: np.stack([np.asarray(img[k], np.float32).reshape(shapes[k]) for img in p["outputs"]])
            if p["outputs"] else np.zeros((0, *shapes[k]), np.float32) for k, name in enumerate(names)}


# --- judging (pure) -------------------------------------------------------------------------


def tolerance_for(precision: GpuPrecision, tolerances: dict[Variant, Tolerance]) -> Tolerance:
    """``[parity.gpu]`` for fp32 weights; with fp16 weights the looser of it and fp16's."""
    base = tolerances[Variant.GPU]
    if precision is GpuPrecision.FP32:
        return base
    fp16 = tolerances[Variant.FP16]
    values = {}
    for f in dataclasses.fields(Tolerance):
        a, b = getattr(base, f.name), getattr(fp16, f.name)
        if a is None or b is None:  # an absent cap is the looser one
            values[f.name] = None
        else:
            values[f.name] = min(a, b) if "min_" in f.name else max(a, b)  # min_recall, *_min_psnr_db
    return Tolerance(**values)


def _renamed(checks: list[Check], runtime: str) -> list[Check]:
    return [dataclasses.replace(c, id=c.id.replace("parity.", f"parity.{runtime}.", 1)) for c in checks]


def judge(result: GpuParity, tolerance: Tolerance) -> list[Check]:
    checks: list[Check] = []
    checks += _runtime_checks("parity.mediapipe.loads", "MediaPipe ObjectDetector loads the model and detects",
                              result.mediapipe_run, result.mediapipe is not None)
    if result.mediapipe is not None:
        judged = _renamed(judging.parity_checks(result.mediapipe, tolerance), "mediapipe")
        checks += [dataclasses.replace(c, verdict=Verdict.NA, found=None, fix="",
                                       message="MediaPipe does not expose the model's outputs: see parity.compiled.heads")
                   if ".heads." in c.id else c for c in judged]
    same = abs(result.config_iou - result.mediapipe_iou) < 1e-6
    checks.append(Check(
        "parity.mediapipe.nms_iou", Verdict.PASS, f"{result.config_iou} (the config's NMS IoU)", result.mediapipe_iou,
        "" if same else (f"warning: MediaPipe's ObjectDetector suppresses boxes overlapping more than IoU "
                         f"{result.mediapipe_iou} (min_suppression_threshold, not settable from its Java/Python/C "
                         f"APIs), the config uses {result.config_iou}; compared with {result.mediapipe_reference}. "
                         f"To make every consumer agree, export with --iou-threshold {result.mediapipe_iou}"),
    ))
    checks += _runtime_checks("parity.compiled.runs", "CompiledModel (CPU) loads and runs the model",
                              result.compiled_run, result.compiled is not None)
    if result.compiled is not None:
        checks += _renamed(judging.parity_checks(result.compiled, tolerance), "compiled")
    return checks


def _runtime_checks(cid: str, want: str, run: dict[str, Any], measured: bool) -> list[Check]:
    if run["status"] == "unavailable":
        return [Check(cid, Verdict.SKIP, want, None, f"cannot start here: {run['message']}")]
    if not measured:
        return [Check(cid, Verdict.FAIL, want, run["status"], run.get("error") or run["message"],
                      "see the runtime's error; `liteship lint --contract mediapipe` lists MediaPipe's own checks")]
    return [Check(cid, Verdict.PASS, want, "ok")]


def validate_entry(
    entry: dict[str, Any], out: Path, exported: Any, images: Iterable[np.ndarray], labels: Sequence[str],
    tolerances: dict[Variant, Tolerance], precision: GpuPrecision,
) -> GpuParity:
    """Measure and judge the gpu variant's parity, fill its report entry the way ``run`` fills
    the others' (``parity``, ``checks``); its mAP and sanity come from the app run like theirs."""
    result = measure(
        Path(out) / entry["path"], exported.reference_dir, images, labels,
        input_shape=exported.input_shape, iou_threshold=exported.iou_threshold,
        score_threshold=exported.score_threshold, max_detections=exported.max_detections,
        use_regular_nms=bool(exported.use_regular_nms),
        folded=bool((entry.get("input_normalization") or {}).get("folded_into_graph")),
    )
    tolerance = tolerance_for(precision, tolerances)
    checks = judge(result, tolerance)
    # the top-level view matches the other variants': detections as MediaPipe (the consumer
    # this variant is for) finds them, heads as CompiledModel computes them
    top = result.mediapipe.to_dict() if result.mediapipe else (result.compiled.to_dict() if result.compiled else None)
    if top is not None and result.compiled is not None:
        top["heads"] = result.compiled.to_dict()["heads"]
    entry["parity"] = None if top is None else {**top, "tolerance": dataclasses.asdict(tolerance), "gpu": result.to_dict()}
    entry["checks"] += [c.to_dict() for c in checks]
    return result
