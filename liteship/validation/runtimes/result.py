"""What a real-runtime check measured, and the pure judge that turns it into checks.

Kept free of heavy imports: :mod:`liteship.validation.contracts` names runtimes with
:class:`Runtime`.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from liteship.types import Check, Verdict

#: smallest IoU of a matched box pair that counts as "the same detection"
MIN_IOU = 0.9


@dataclass(frozen=True)
class AgreementTolerance:
    """How close a runtime's detections must be to the desktop run's."""

    #: smallest IoU of any matched pair (None: not checked)
    min_iou: float | None
    min_mean_iou: float
    #: matched pairs / the larger of the two detection counts, ties left out of both
    min_matched: float
    #: matched pairs with the same class / matched pairs
    min_same_class: float
    #: every image must have the same number of detections in both runs, ties left out
    same_count: bool
    #: only detections scoring at least this (in either run) are compared
    min_score: float = 0.0
    #: scores closer than this are a tie (compare.agree; parity's ``score_tie``): an unmatched
    #: detection within it of ``min_score``, of the other run's top-N cut or of an overlapping
    #: unmatched detection of the other run is neither matched nor missed
    score_tie: float = 0.0
    name: str = ""
    #: within the tolerance but outside this: a pass with a warning
    warning: AgreementTolerance | None = None


#: float and full-integer models: every runtime runs the same kernels -- measured bit-identical
#: on the demo's fp32, fp16 and int8 variants in all three runtimes (500 of 500 detections)
EXACT = AgreementTolerance(min_iou=MIN_IOU, min_mean_iou=MIN_IOU, min_matched=1.0, min_same_class=1.0,
                           same_count=True, name="exact")
#: dynamic-range (hybrid) models: float activations quantized on the fly, in kernels that differ
#: between TFLite builds (the Task Library's 2.11-era runtime and MediaPipe's vs LiteRT 2.x):
#: on the demo's dynamic variant, Task Library 486/500 detections matched (mean IoU 0.989),
#: MediaPipe 489/500 (0.995), CompiledModel 500/500 identical; on an untrained random model
#: the Task Library matched 8 of 10. A difference of this kind is numerics, not a consumer that
#: misreads the model, so it is a warning beyond the parity tolerances of the dynamic variant
#: (liteship.validation.gates.TOLERANCES: scores >= 0.3, recall/precision >= 0.85, class
#: agreement >= 0.92, mean IoU >= 0.85); it fails where a misread model lands (most
#: detections unmatched, other classes or boxes: wrong binding, box order or normalization).
HYBRID = AgreementTolerance(
    min_iou=None, min_mean_iou=0.5, min_matched=0.5, min_same_class=0.5, same_count=False, min_score=0.3,
    score_tie=0.08, name="dynamic-range",
    warning=AgreementTolerance(min_iou=None, min_mean_iou=0.85, min_matched=0.85, min_same_class=0.92,
                               same_count=False, min_score=0.3, score_tie=0.08, name="dynamic-range parity"),
)
#: full-integer models (uint8/int8 input: the int8 variant, QAT models): integer kernels are not
#: the same in every TFLite build. Measured on the tests' random EfficientDet-D0 int8 (one
#: photo, N=10): LiteRT 2.3's own XNNPACK and built-in kernels give different scores (top score
#: 0.586 vs 0.598), MediaPipe's build a third set (0.570): scores moved by up to 0.039, boxes
#: by up to IoU 0.91, and the 10th detection at the top-N cut was another box (0.336 vs 0.324).
#: The demo's int8 happened to be bit-identical in all three runtimes. Tie-aware with int8's
#: parity score tie (gates.TOLERANCES[int8].score_tie); it fails where int8's own parity limits
#: (recall/precision 0.80, class agreement 0.85, mean IoU 0.80) would -- a consumer that
#: misreads the model lands far below them -- and warns when the runs are not the same
#: detections once the ties are left out.
INTEGER = AgreementTolerance(
    min_iou=None, min_mean_iou=0.80, min_matched=0.80, min_same_class=0.85, same_count=False, score_tie=0.10,
    name="integer",
    warning=AgreementTolerance(min_iou=None, min_mean_iou=MIN_IOU, min_matched=1.0, min_same_class=1.0,
                               same_count=True, score_tie=0.10, name="integer, same detections"),
)


class Runtime(enum.StrEnum):
    TASK_LIBRARY = "task-library"
    MEDIAPIPE = "mediapipe"
    COMPILED_MODEL = "compiled-model"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def check_prefix(self) -> str:
        return self.value.replace("-", "_")


_LABELS = {
    Runtime.TASK_LIBRARY: "Task Library ObjectDetector",
    Runtime.MEDIAPIPE: "MediaPipe Tasks ObjectDetector",
    Runtime.COMPILED_MODEL: "LiteRT CompiledModel (CPU)",
}


class Outcome(enum.StrEnum):
    OK = "ok"  # loaded and ran on every image
    REFUSED = "refused"  # the runtime refused to load the model (its own message in ``error``)
    FAILED = "failed"  # loaded, then running it failed or gave wrongly sized outputs
    CRASHED = "crashed"  # the runtime killed its process (native abort)
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"  # the runtime cannot start here: not a verdict on the model


@dataclass(frozen=True)
class Agreement:
    """The runtime's detections against liteship's desktop run of the same model and images.

    Pairs are matched greedily by IoU (>= 0.5), highest desktop score first, in pixels of
    the image the runtime saw, after applying the runtime's own pixel rounding to the
    desktop boxes (so equal computations give equal boxes).
    """

    images: int
    desktop: int
    runtime: int
    matched: int
    same_class: int
    min_iou: float | None
    mean_iou: float | None
    max_score_delta: float | None
    #: indices of the images where the two runs found a different number of detections (ties left out)
    count_mismatches: tuple[int, ...] = ()
    #: unmatched detections that are ties (compare.agree), neither matched nor missed
    ties_desktop: int = 0
    ties_runtime: int = 0

    @property
    def compared(self) -> int:
        """The larger of the two detection counts without their ties: what ``matched`` is out of."""
        return max(self.desktop - self.ties_desktop, self.runtime - self.ties_runtime)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "count_mismatches": list(self.count_mismatches)}


@dataclass(frozen=True)
class RuntimeRun:
    runtime: Runtime
    outcome: Outcome
    #: one line for people: what happened
    message: str
    #: the runtime's own error text (load or run), verbatim
    error: str | None = None
    stage: str | None = None  # load | run
    images: int = 0
    agreement: Agreement | None = None
    #: what the agreement was measured for and is judged against
    tolerance: AgreementTolerance = EXACT
    #: why there is no agreement (e.g. the desktop interpreter could not run the model)
    agreement_note: str = ""
    load_s: float | None = None
    run_s: float | None = None
    elapsed_s: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return self.outcome is Outcome.OK

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runtime"], d["outcome"] = str(self.runtime), str(self.outcome)
        d["agreement"] = self.agreement.to_dict() if self.agreement else None
        d["tolerance"] = self.tolerance.name
        return d


def judge(run: RuntimeRun | None, runtime: Runtime) -> list[Check]:
    """``<runtime>.load`` (loads and runs) and ``<runtime>.detections`` (the desktop run's
    detections within the run's tolerance). ``None`` = the check was not asked for."""
    t = run.tolerance if run is not None else EXACT
    load_id, det_id = f"{runtime.check_prefix}.load", f"{runtime.check_prefix}.detections"
    want_load = f"{runtime.label} loads the model and runs it"
    want_det = (f"the desktop run's detections ({t.name}" + (f", scores >= {t.min_score}" if t.min_score else "")
                + (f", score ties {t.score_tie}" if t.score_tie else "")
                + f": matched >= {t.min_matched:.0%}, same class >= "
                f"{t.min_same_class:.0%}, mean IoU >= {t.min_mean_iou}"
                + (f", every IoU >= {t.min_iou}" if t.min_iou is not None else "")
                + (", same count per image" if t.same_count else "") + ")")
    if run is None:  # the user opted out (--no-runtime): not requested, like --no-gpu
        why = "not run (--no-runtime)"
        return [Check(load_id, Verdict.NA, want_load, None, why), Check(det_id, Verdict.NA, want_det, None, why)]
    if run.outcome is Outcome.UNAVAILABLE:
        return [Check(load_id, Verdict.SKIP, want_load, None, run.message),
                Check(det_id, Verdict.SKIP, want_det, None, run.message)]
    if not run.ran:
        fix = (f"{runtime.label} says: {run.error}" if run.error else f"{runtime.label}: {run.message}")
        return [Check(load_id, Verdict.FAIL, want_load, str(run.outcome), run.message, fix),
                Check(det_id, Verdict.NA, want_det, None, "the model did not run")]
    load = Check(load_id, Verdict.PASS, want_load, str(run.outcome), run.message)
    a = run.agreement
    if a is None:
        return [load, Check(det_id, Verdict.SKIP, want_det, None, run.agreement_note or "no desktop run to compare with")]
    found = agreement_summary(a)
    problems = agreement_problems(a, t)
    if problems:
        return [load, Check(det_id, Verdict.FAIL, want_det, found, "; ".join(problems),
                            f"{runtime.label} computes other detections than LiteRT on the desktop: compare the "
                            "outputs it reads (binding, box order, normalization) with the model")]
    if a.desktop == 0 and a.runtime == 0:
        return [load, Check(det_id, Verdict.PASS, want_det, found,
                            f"warning: no detections on the {a.images} image(s) in either run: nothing compared")]
    soft = agreement_problems(a, t.warning) if t.warning is not None else []
    if soft:
        return [load, Check(det_id, Verdict.PASS, want_det, found,
                            f"warning: {runtime.label}'s {t.name} kernels differ from LiteRT's: " + "; ".join(soft))]
    ties = a.ties_desktop + a.ties_runtime
    excused = f" ({ties} near-tie(s) on either side of a cut not counted)" if ties else ""
    return [load, Check(det_id, Verdict.PASS, want_det, found,
                        f"{a.runtime} detections on {a.images} image(s) agree{excused}")]


def agreement_problems(a: Agreement, t: AgreementTolerance) -> list[str]:
    """What breaks ``t`` (empty = within it)."""
    problems = []
    most = a.compared
    if t.same_count and a.count_mismatches:
        problems.append(f"{len(a.count_mismatches)} of {a.images} images have a different number of detections "
                        f"(first: image {a.count_mismatches[0]})")
    if most and a.matched / most < t.min_matched:
        ties = (f", {a.ties_desktop + a.ties_runtime} near-tie(s) not counted"
                if a.ties_desktop + a.ties_runtime else "")
        problems.append(f"{a.matched} of {most} detections matched (< {t.min_matched:.0%}{ties})")
    if a.matched and a.same_class / a.matched < t.min_same_class:
        problems.append(f"{a.matched - a.same_class} of {a.matched} matched detections have another class")
    if t.min_iou is not None and a.min_iou is not None and a.min_iou < t.min_iou:
        problems.append(f"smallest IoU {a.min_iou:.3f} < {t.min_iou}")
    if a.mean_iou is not None and a.mean_iou < t.min_mean_iou:
        problems.append(f"mean IoU {a.mean_iou:.3f} < {t.min_mean_iou}")
    return problems


def agreement_summary(a: Agreement) -> dict[str, Any]:
    return {"images": a.images, "desktop": a.desktop, "runtime": a.runtime, "matched": a.matched,
            "same_class": a.same_class, "min_iou": None if a.min_iou is None else round(a.min_iou, 4),
            "mean_iou": None if a.mean_iou is None else round(a.mean_iou, 4),
            "max_score_delta": None if a.max_score_delta is None else round(a.max_score_delta, 6),
            "ties_desktop": a.ties_desktop, "ties_runtime": a.ties_runtime}
