"""The real consumer runtimes: load a model in each, run it, compare with the desktop run.

One module per runtime (:mod:`.task_library`, :mod:`.mediapipe_tasks`,
:mod:`.compiled_model`), each a child process (:mod:`.runner`: a runtime may abort its
process) that serves every model of a call; the shared result type and the judge in
:mod:`.result`; the desktop run and the matching in :mod:`.compare`.

:func:`check` measures (``RuntimeRun`` per model and runtime); :func:`.result.judge` turns a
run into the ``<runtime>.load`` / ``<runtime>.detections`` checks lint reports.
"""

from __future__ import annotations

import concurrent.futures
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship.validation.runtimes import compare, runner
from liteship.validation.runtimes.result import EXACT, HYBRID, INTEGER, MIN_IOU, Agreement, Outcome, Runtime, RuntimeRun, judge

__all__ = ["MIN_IOU", "Agreement", "Outcome", "Runtime", "RuntimeRun", "check", "default_images", "judge"]

#: image size used when the model has no usable [1,H,W,3] input (the runtime refuses it anyway)
_FALLBACK_SIZE = (32, 32)


def _module(runtime: Runtime) -> Any:
    if runtime is Runtime.MEDIAPIPE:
        from liteship.validation.runtimes import mediapipe_tasks as mod
    elif runtime is Runtime.COMPILED_MODEL:
        from liteship.validation.runtimes import compiled_model as mod
    else:
        from liteship.validation.runtimes import task_library as mod
    return mod


def default_images(count: int = 1, seed: int = 11) -> list[np.ndarray]:
    """Seeded synthetic shapes photos (the demo's generator): the lint default."""
    import itertools

    from liteship.demo import synth

    return [np.asarray(s.image.convert("RGB"), dtype=np.uint8)
            for s in itertools.islice(synth.generate(seed, count, "runtime"), count)]


@dataclass
class _Prepared:
    key: str
    data: bytes
    info: Any
    size: tuple[int, int]  # (height, width) the images were resized to
    job: runner.Job
    desktop: compare.DesktopRun | None
    desktop_note: str
    tolerance: Any = EXACT
    meta: Any = None


def check(
    models: Mapping[str, Path],
    runtimes: Iterable[Runtime],
    images: Sequence[np.ndarray] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[Runtime, RuntimeRun]]:
    """Run every model (``key -> .tflite path``) in every runtime, on ``images`` (uint8 RGB,
    any size; default one synthetic photo). Returns ``key -> runtime -> RuntimeRun``."""
    wanted = list(dict.fromkeys(Runtime(r) for r in runtimes))
    images = list(images) if images else default_images()
    results: dict[str, dict[Runtime, RuntimeRun]] = {key: {} for key in models}
    with tempfile.TemporaryDirectory(prefix="liteship-runtimes-") as tmp:
        prepared = [_prepare(key, Path(path), images, Path(tmp) / f"m{i}") for i, (key, path) in enumerate(models.items())]
        runnable = []
        for runtime in wanted:
            reason = _module(runtime).available()
            if reason is not None:
                for p in prepared:
                    results[p.key][runtime] = RuntimeRun(runtime, Outcome.UNAVAILABLE, f"{runtime.label} cannot start: {reason}")
            else:
                runnable.append(runtime)
        if progress is not None and runnable:
            progress(f"running {len(prepared)} model(s) in {', '.join(r.label for r in runnable)}")
        # one child per runtime, side by side (each is mostly waiting on its native runtime)
        with concurrent.futures.ThreadPoolExecutor(max(1, len(runnable))) as pool:
            futures = {r: pool.submit(_module(r).run, [p.job for p in prepared]) for r in runnable}
            for runtime, future in futures.items():
                for p, outcome in zip(prepared, future.result()):
                    results[p.key][runtime] = _to_run(runtime, outcome, p)
    return results


def _prepare(key: str, path: Path, images: Sequence[np.ndarray], work: Path) -> _Prepared:
    from liteship.tflite_inspect import inspect_model
    from liteship.tflite_metadata import read_metadata_view

    work.mkdir(parents=True)
    data = path.read_bytes()
    info = inspect_model(data, source=str(path))
    shape = info.inputs[0].shape if len(info.inputs) == 1 else ()
    usable = len(shape) == 4 and shape[1] > 0 and shape[2] > 0 and shape[3] == 3
    h, w = (shape[1], shape[2]) if usable else _FALLBACK_SIZE
    resized = np.stack([compare.resize_to_input(img, h, w) for img in images])
    np.save(work / "images.npy", resized)
    meta = read_metadata_view(data, info)
    norm = meta.input_normalization()
    mean, std = norm.mean, norm.std
    desktop, note, inputs = None, "", None
    try:
        from liteship.validation.runtimes import raw_ssd

        if raw_ssd.is_raw_ssd(info, meta):  # the 2-output form (gpu variant): no postprocess op to run
            desktop, inputs = raw_ssd.desktop_run(data, info, meta, list(resized), mean, std)
        else:
            desktop = compare.desktop_run(data, list(resized), mean, std, meta.category_labels)
            from liteship.validation.detect import TFLiteDetector

            pre = TFLiteDetector(data, num_threads=1, mean=list(mean), std=list(std))
            inputs = np.stack([pre.preprocess(img) for img in resized])
    except Exception as exc:  # noqa: BLE001 - a model the desktop cannot run: no comparison
        note = f"no desktop run to compare with: {type(exc).__name__}: {str(exc)[:200]}"
    if inputs is None and len(info.inputs) == 1 and all(d > 0 for d in info.inputs[0].shape):
        # the desktop cannot run it: zeros of the input's own shape, so the runtime still gets to say why not
        t = info.inputs[0]
        dtype = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8}.get(t.dtype, np.float32)
        inputs = np.zeros((len(resized), *t.shape), dtype=dtype)
    inputs_path = None
    if inputs is not None:
        inputs_path = work / "inputs.npy"
        np.save(inputs_path, inputs)
    job = runner.Job(model=path, images=work / "images.npy", inputs=inputs_path)
    tolerance = tolerance_for(data, info)
    return _Prepared(key, data, info, (h, w), job, desktop, note, tolerance, meta)


def tolerance_for(data: bytes, info: Any) -> Any:
    """The agreement a runtime other than CompiledModel (the desktop's own LiteRT build) must
    reach on this model: :data:`HYBRID` for dynamic range, :data:`INTEGER` for an integer
    input (full-integer kernels differ between TFLite builds), else :data:`EXACT`."""
    if compare.is_dynamic_range(data):
        return HYBRID
    if len(info.inputs) == 1 and info.inputs[0].dtype in ("uint8", "int8"):
        return INTEGER
    return EXACT


def _max_detections(info: Any) -> int | None:
    """N of the postprocess op (its top-N cut), None without one."""
    return info.postprocess[0].options.max_detections if info.postprocess else None


def _error_text(outcome: runner.JobOutcome) -> str | None:
    """The runtime's words: its exception text, and the native error lines it printed."""
    p = outcome.payload or {}
    raised = f"{p.get('kind', 'Error')}: {p['error']}" if p.get("error") else ""
    # what the native runtime printed says why; the exception often only says that it failed
    parts = [line for line in outcome.native_errors() if line not in raised]
    if raised:
        parts.append(raised)
    return " | ".join(parts) if parts else None


_SMALL_BUFFERS = ("output buffers smaller than what TFLite_Detection_PostProcess writes (heap corruption; LiteRT "
                  "reports 'Custom allocation is too small for tensor idx' / 'Failed to allocate tensors')")


def _to_run(runtime: Runtime, outcome: runner.JobOutcome, p: _Prepared) -> RuntimeRun:
    label = runtime.label
    if outcome.payload is None:
        kind = {"unavailable": Outcome.UNAVAILABLE, "timeout": Outcome.TIMEOUT}.get(outcome.ended or "", Outcome.CRASHED)
        if kind is Outcome.UNAVAILABLE:
            return RuntimeRun(runtime, kind, f"{label} cannot start: {outcome.reason}")
        error = _error_text(outcome) or outcome.reason
        if runtime is Runtime.COMPILED_MODEL and kind is Outcome.CRASHED:
            # the heap corruption may kill the process before LiteRT prints anything: say why from
            # the model's own stored shapes (what CompiledModel sizes its buffers from)
            from liteship.validation.runtimes import compiled_model

            small = compiled_model.stored_too_small(p.info)
            if small:
                error = (f"{error} | {_SMALL_BUFFERS}: " + "; ".join(small))
        what = "did not finish" if kind is Outcome.TIMEOUT else "crashed its process"
        return RuntimeRun(runtime, kind, f"{label} {what} on this model ({outcome.reason})", error=error,
                          elapsed_s=outcome.elapsed_s)
    data = outcome.payload
    status, timing = data.get("status"), dict(load_s=data.get("load_s"), run_s=data.get("run_s"), elapsed_s=outcome.elapsed_s)
    images = len(np.load(p.job.images, mmap_mode="r"))
    if status == "refused":
        error = _error_text(outcome)
        return RuntimeRun(runtime, Outcome.REFUSED, f"{label} refused the model: {error}", error=error, stage="load", **timing)
    if status != "ok":
        error = _error_text(outcome)
        return RuntimeRun(runtime, Outcome.FAILED, f"{label} loaded the model, then failed: {error}", error=error,
                          stage="run", **timing)
    facts: dict[str, Any] = {}
    if runtime is Runtime.COMPILED_MODEL:
        from liteship.validation.runtimes import compiled_model

        facts["buffers"] = data.get("buffers")
        small = compiled_model.too_small_buffers(p.info, data)
        if small:
            error = f"{_SMALL_BUFFERS}: " + "; ".join(small)
            return RuntimeRun(runtime, Outcome.FAILED, f"{label} ran with {error}", error=error, stage="run",
                              images=images, facts=facts, **timing)
    h, w = p.size
    msg = f"loaded in {_ms(data.get('load_s'))}, ran {images} image(s) in {_ms(data.get('run_s'))}"
    if p.desktop is None:
        return RuntimeRun(runtime, Outcome.OK, msg, images=images, agreement_note=p.desktop_note, facts=facts, **timing)
    convention = _module(runtime).CONVENTION
    desktop = [p.desktop.detections(k, w, h, convention) for k in range(images)]
    try:
        if runtime is Runtime.COMPILED_MODEL:
            got = [_compiled_detections(p, data, k, w, h) for k in range(images)]
        else:
            got = _module(runtime).detections(data)
    except (KeyError, ValueError, IndexError, TypeError) as exc:  # outputs liteship cannot map to roles
        return RuntimeRun(runtime, Outcome.OK, msg, images=images, facts=facts, **timing,
                          agreement_note=f"cannot read the runtime's outputs as detections: {type(exc).__name__}: {exc}")
    # CompiledModel runs the desktop's own LiteRT build: identical results, whatever the model
    tolerance = EXACT if runtime is Runtime.COMPILED_MODEL else p.tolerance
    agreement = compare.agree(desktop, got, tolerance.min_score, score_tie=tolerance.score_tie,
                              max_detections=_max_detections(p.info))
    return RuntimeRun(runtime, Outcome.OK, msg, images=images, agreement=agreement, tolerance=tolerance, facts=facts,
                      **timing)


def _compiled_detections(p: _Prepared, payload: dict, image: int, width: int, height: int) -> list[compare.Det]:
    from liteship.validation.detect import decode_outputs
    from liteship.validation.runtimes import compiled_model, raw_ssd

    if raw_ssd.is_raw_ssd(p.info, p.meta):
        boxes, classes, scores = raw_ssd.compiled_detections(p.info, p.meta, payload, image)
    else:
        boxes, classes, scores = decode_outputs(compiled_model.outputs_by_role(p.info, payload, image))
    assert p.desktop is not None
    return [compare.Det(compare.to_pixels(b, width, height, "exact"), p.desktop.label(int(round(float(c)))), float(s))
            for b, c, s in zip(boxes, classes, scores)
            if np.isfinite(b).all() and np.isfinite(c) and np.isfinite(s)]  # NaN rows: the `finite` gate's


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"
