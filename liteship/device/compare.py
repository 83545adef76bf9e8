"""The device's result vs the desktop run of the SAME .tflite on the SAME inputs.

Measure first, judge separately (like ``validation/parity.py``):

* tensor level (inputs of kind ``tensor``: the exact bytes the desktop feeds): every
  output elementwise, max and mean absolute difference, per output role (for the
  postprocess op's per-detection outputs, the first ``count`` rows: the op leaves the
  other slots unset);
* app level (inputs of kind ``image``: the app decodes and preprocesses the image itself):
  detections matched by IoU >= 0.5 with ``parity.match`` (recall, precision, class
  agreement, mean IoU, mean score delta), among detections scoring >= ``score_threshold``;
* latency per delegate from the app's timed invokes (median, p90, min, max, mean).

Each run (engine x accelerator) is compared with the desktop run of the same model through
the SAME engine (:mod:`liteship.device.desktop`: the Interpreter, CompiledModel, MediaPipe's
ObjectDetector). Check ids: ``device.<delegate>.*`` for the interpreter (as before engines
existed), ``device.<engine>.<accelerator>.*`` for ``compiled`` and ``mediapipe``. A run that
fell back to another accelerator is a skipped ``.accelerator`` check naming the reason.

Tolerances are data (:data:`TOLERANCES`, per variant) and every number becomes a check
with its tolerance and verdict (the report's check shape). An emulated result is labelled
:data:`EMULATED_LABEL` in the entry, in every check message, in JUnit and in the HTML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship.device.deploy import DeployOptions, DeviceRun, PreparedInput
from liteship.atomic import json_safe
from liteship.device.desktop import DesktopOutput, DesktopRun, desktop_runs
from liteship.types import Check, Verdict
from liteship.types import OutputRole, Variant

EMULATED_LABEL = "emulated — not on-device evidence"
ON_DEVICE_LABEL = "on-device"
IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class DeviceTolerance:
    """Device vs desktop limits for one variant (documented in docs/device.md).

    Raw outputs of a TFLite_Detection_PostProcess model: ``location`` (normalized box
    coordinates) and ``score`` get numeric tolerances; ``category`` and ``number of
    detections`` are indices and counts: any difference is a different answer (0), the
    app-level IoU matching is the tolerant view of reordered near-ties.
    """

    location_max_abs: float
    location_mean_abs: float
    score_max_abs: float
    score_mean_abs: float
    category_max_abs: float
    count_max_abs: float
    min_recall: float
    min_precision: float
    min_class_agreement: float
    min_mean_iou: float
    max_mean_score_delta: float


#: fp32: XNNPACK on ARM vs x86 reassociates float sums (1e-4 of a [0, 1] box is far below
#: a pixel); fp16: devices may run fp16 arithmetic (GPU, ARMv8.2 XNNPACK): half precision
#: steps; dynamic/int8: integer kernels may round one quantization step differently
#: (1/256 of a [0, 1] output ~ 0.004, a few steps allowed). App level: the device decodes
#: and resizes the image with Android's Bitmap instead of Pillow, so boxes and scores move
#: slightly even for fp32.
TOLERANCES: dict[str, DeviceTolerance] = {
    Variant.FP32.value: DeviceTolerance(1e-4, 1e-5, 1e-4, 1e-5, 0.0, 0.0, 0.95, 0.95, 0.97, 0.95, 0.02),
    Variant.FP16.value: DeviceTolerance(5e-3, 1e-3, 5e-3, 1e-3, 0.0, 0.0, 0.90, 0.90, 0.95, 0.90, 0.03),
    Variant.DYNAMIC.value: DeviceTolerance(0.02, 4e-3, 0.02, 4e-3, 0.0, 0.0, 0.85, 0.85, 0.92, 0.85, 0.05),
    Variant.INT8.value: DeviceTolerance(0.02, 4e-3, 0.02, 4e-3, 0.0, 0.0, 0.85, 0.85, 0.92, 0.85, 0.05),
    # the gpu variant's raw heads: ``location`` are box ENCODINGS (ty, tx: a few units; th, tw: log
    # scale), not [0, 1] boxes, and the GPU computes in half precision (fp16 weights by default), so
    # one ulp of fp16 at |x| ~ 4 is 0.004; ``score`` is in [0, 1] after the in-graph converter.
    # App level: the app's decoder + NMS (IoU 0.3) on the device, liteship's on the desktop.
    Variant.GPU.value: DeviceTolerance(0.05, 5e-3, 0.02, 2e-3, 0.0, 0.0, 0.90, 0.90, 0.95, 0.90, 0.03),
}

_ROLE_LIMITS = {
    OutputRole.BOXES.value: ("location_max_abs", "location_mean_abs"),
    OutputRole.SCORES.value: ("score_max_abs", "score_mean_abs"),
    OutputRole.CLASSES.value: ("category_max_abs", "category_max_abs"),
    OutputRole.COUNT.value: ("count_max_abs", "count_max_abs"),
}


def variant_of(model: Path, input_dtype: str) -> str:
    """The variant whose tolerances apply: the file name when it is one (``models/int8.tflite``),
    else integer input -> int8, float input -> fp32 (the strictest)."""
    stem = Path(model).stem
    if stem in TOLERANCES:
        return stem
    return Variant.INT8.value if input_dtype in ("uint8", "int8") else Variant.FP32.value


def evidence_label(producer_kind: str) -> str:
    return EMULATED_LABEL if producer_kind == "emulated" else ON_DEVICE_LABEL


# ---------------------------------------------------------------------------- measure


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in float64; NaN on one side only is an infinite difference (never hidden)."""
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    diff = np.abs(x - y)
    both_nan = np.isnan(x) & np.isnan(y)
    diff[both_nan] = 0.0
    diff[np.isnan(diff)] = np.inf
    return diff


#: TFLite_Detection_PostProcess outputs with one row per detection slot
_PER_DETECTION = (OutputRole.BOXES.value, OutputRole.CLASSES.value, OutputRole.SCORES.value)


def _valid_rows(tensors: Sequence[Any]) -> int | None:
    """The desktop's detection count: the op leaves the slots past it unset (whatever the
    memory held), so only the first ``count`` rows are compared; a different count on the
    device fails the ``number of detections`` check itself. None: no count output."""
    for t in tensors:
        if t.role == OutputRole.COUNT.value and t.value.size and np.isfinite(t.value.ravel()[0]):
            return max(0, int(np.rint(t.value.ravel()[0])))
    return None


def measure_tensors(desktop: dict[str, DesktopOutput], delegate: dict[str, Any],
                    inputs: Sequence[PreparedInput]) -> dict[str, Any]:
    """Per output role: max_abs / mean_abs over the tensor inputs; mismatches listed.
    Device tensors are matched to the desktop's by tensor index (by position when the
    indices do not match at all)."""
    from liteship.device.protocol import decode_tensor

    by_id = {o["input_id"]: o for o in delegate.get("outputs", [])}
    acc: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    compared = not_applicable = 0
    for item in inputs:
        if item.kind != "tensor":
            continue
        got = by_id.get(item.id)
        if got is not None and "not_applicable" in got:
            not_applicable += 1
            continue
        if got is None or "error" in got:
            problems.append(f"{item.id}: " + (got["error"]["message"] if got else "no output from the device"))
            continue
        device_tensors = got.get("tensors")
        if device_tensors is None:
            problems.append(f"{item.id}: the device returned no tensors")
            continue
        want = desktop[item.id].tensors
        if len(device_tensors) != len(want):
            problems.append(f"{item.id}: {len(device_tensors)} output tensors, the desktop has {len(want)}")
            continue
        theirs_by_index = {t["index"]: t for t in device_tensors}
        pairs = [(w, theirs_by_index.get(w.index)) for w in want]
        if all(t is None for _, t in pairs):
            pairs = list(zip(want, device_tensors))
        compared += 1
        valid = _valid_rows(want)
        for ours_t, theirs in pairs:
            role, ours = ours_t.role, ours_t.value
            entry = acc.setdefault(role, {"max_abs": 0.0, "sum_mean": 0.0, "n": 0, "shape": list(ours.shape)})
            if theirs is None:
                problems.append(f"{item.id}: the device returned no tensor {ours_t.index} ({role!r})")
                entry["max_abs"] = float("inf")
                continue
            value = decode_tensor(theirs)
            if list(value.shape) != list(ours.shape):
                problems.append(f"{item.id}: output {role!r} has shape {list(value.shape)}, desktop {list(ours.shape)}")
                entry["max_abs"] = float("inf")
                continue
            if valid is not None and role in _PER_DETECTION and ours.ndim >= 2:
                ours, value = ours[:, :valid], value[:, :valid]
            diff = _abs_diff(ours, value)
            entry["max_abs"] = max(entry["max_abs"], float(diff.max()) if diff.size else 0.0)
            entry["sum_mean"] += float(diff.mean()) if diff.size else 0.0
            entry["n"] += 1
    outputs = {role: {"max_abs": e["max_abs"], "mean_abs": e["sum_mean"] / e["n"] if e["n"] else None,
                      "shape": e["shape"], "inputs": e["n"]} for role, e in acc.items()}
    return {"inputs": compared, "not_applicable": not_applicable, "outputs": outputs, "problems": problems}


def measure_detections(desktop: dict[str, DesktopOutput], delegate: dict[str, Any],
                       inputs: Sequence[PreparedInput], score_threshold: float) -> dict[str, Any]:
    """IoU-matched detections (parity.match) over the image inputs."""
    from liteship.validation.parity import match

    by_id = {o["input_id"]: o for o in delegate.get("outputs", [])}
    ref_n = dev_n = matched = same = images = 0
    ious: list[float] = []
    dscores: list[float] = []
    problems: list[str] = []
    for item in inputs:
        if item.kind != "image":
            continue
        got = by_id.get(item.id)
        if got is None or "error" in got:
            problems.append(f"{item.id}: " + (got["error"]["message"] if got else "no output from the device"))
            continue
        if "not_applicable" in got:
            continue
        images += 1
        ref = _arrays([d for d in desktop[item.id].detections if d["score"] >= score_threshold])
        dev = _arrays([d for d in got.get("detections", []) if d["score"] >= score_threshold])
        pairs = match(ref, dev, IOU_THRESHOLD)
        ref_n += len(ref["scores"])
        dev_n += len(dev["scores"])
        matched += len(pairs)
        same += sum(int(ref["classes"][i] == dev["classes"][j]) for i, j, _ in pairs)
        ious += [iou for _, _, iou in pairs]
        dscores += [abs(float(ref["scores"][i]) - float(dev["scores"][j])) for i, j, _ in pairs]
    return {
        "images": images,
        "score_threshold": score_threshold,
        "desktop_detections": ref_n,
        "device_detections": dev_n,
        "matched": matched,
        "recall": matched / ref_n if ref_n else None,
        "precision": matched / dev_n if dev_n else None,
        "class_agreement": same / matched if matched else None,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "mean_score_delta": float(np.mean(dscores)) if dscores else None,
        "max_score_delta": float(np.max(dscores)) if dscores else None,
        "problems": problems,
    }


def _arrays(dets: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Boxes clipped to the image ([0, 1]) before matching: what an app draws; the desktop
    detector clips, the device app does not."""
    return {
        "boxes": np.clip(np.asarray([d["box"] for d in dets], np.float64).reshape(-1, 4), 0.0, 1.0),
        "classes": np.asarray([d["class_index"] for d in dets], np.int64),
        "scores": np.asarray([d["score"] for d in dets], np.float64),
    }


def latency(delegate: dict[str, Any]) -> dict[str, Any]:
    """Summary of the app's timed invokes (after warm-up, on the first input)."""
    values = np.asarray(delegate.get("latency_ms") or [], np.float64)
    warm = np.asarray(delegate.get("warmup_ms") or [], np.float64)
    if not values.size:
        return {"count": 0, "median_ms": None, "p90_ms": None, "min_ms": None, "max_ms": None, "mean_ms": None,
                "warmup_mean_ms": float(warm.mean()) if warm.size else None}
    return {
        "count": int(values.size),
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
        "warmup_mean_ms": float(warm.mean()) if warm.size else None,
    }


# ---------------------------------------------------------------------------- judge


def _le(cid: str, value: float | None, limit: float, label: str, fix: str) -> Check:
    if value is None:
        return Check(cid, Verdict.NA, f"<= {limit}", None, f"nothing to compare ({label})")
    ok = value <= limit
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, f"<= {limit}", _round(value), f"({label})",
                 "" if ok else fix)


def _ge(cid: str, value: float | None, limit: float, label: str, fix: str) -> Check:
    if value is None:
        return Check(cid, Verdict.NA, f">= {limit}", None, f"nothing to compare: no detections above the threshold ({label})")
    ok = value >= limit
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, f">= {limit}", _round(value), f"({label})",
                 "" if ok else fix)


def _round(value: float) -> float | str:
    """JSON-safe, 6 significant digits (1e-40 stays visible); inf/NaN become the strings "inf"/"nan"."""
    return float(f"{value:.6g}") if np.isfinite(value) else str(value)


def _slug(role: str) -> str:
    return role.replace(" ", "_")


def check_prefix(engine: str, delegate: str) -> str:
    """``device.<delegate>`` for the interpreter (ids from before engines), else ``device.<engine>.<delegate>``."""
    return f"device.{delegate}" if engine == "interpreter" else f"device.{engine}.{delegate}"


def judge(delegate_name: str, tensors: dict[str, Any], detections: dict[str, Any], lat: dict[str, Any],
          tol: DeviceTolerance, label: str, iterations: int, *, engine: str = "interpreter") -> list[Check]:
    p = check_prefix(engine, delegate_name)
    checks: list[Check] = []
    numeric = "the device computes different numbers from the same input bytes: check the runtime version " \
              "(result producer.runtime) and the delegate"
    for role, stats in sorted(tensors["outputs"].items()):
        max_key, mean_key = _ROLE_LIMITS.get(role, ("location_max_abs", "location_mean_abs"))
        checks.append(_le(f"{p}.tensors.{_slug(role)}.max_abs", stats["max_abs"], getattr(tol, max_key), label, numeric))
        checks.append(_le(f"{p}.tensors.{_slug(role)}.mean_abs", stats["mean_abs"], getattr(tol, mean_key), label, numeric))
    if tensors["problems"]:
        checks.append(Check(f"{p}.tensors.inputs", Verdict.FAIL, "every tensor input answered", tensors["problems"][:5],
                            f"({label})", "see the per-input errors in the device result"))
    if not tensors["inputs"] and not tensors["problems"]:
        why = (f"the {engine} engine exposes no tensors; compared at app level only" if tensors.get("not_applicable")
               else "no tensor input was sent")
        checks.append(Check(f"{p}.tensors", Verdict.NA, "tensor inputs", None, f"{why} ({label})"))
    app = "the app's image pipeline (decode, resize, normalize) differs from the desktop's: compare the " \
          "preprocessing; or the model itself (see the tensor-level checks)"
    checks += [
        _ge(f"{p}.detections.recall", detections["recall"], tol.min_recall, label, app),
        _ge(f"{p}.detections.precision", detections["precision"], tol.min_precision, label, app),
        _ge(f"{p}.detections.class_agreement", detections["class_agreement"], tol.min_class_agreement, label, app),
        _ge(f"{p}.detections.mean_iou", detections["mean_iou"], tol.min_mean_iou, label, app),
        _le(f"{p}.detections.mean_score_delta", detections["mean_score_delta"], tol.max_mean_score_delta, label, app),
    ]
    if detections["problems"]:
        checks.append(Check(f"{p}.detections.inputs", Verdict.FAIL, "every image input answered",
                            detections["problems"][:5], f"({label})", "see the per-input errors in the device result"))
    ok = lat["count"] == iterations
    checks.append(Check(f"{p}.latency.samples", Verdict.PASS if ok else Verdict.FAIL, iterations, lat["count"],
                        f"median {lat['median_ms']} ms, p90 {lat['p90_ms']} ms ({label})",
                        "" if ok else "the app returned fewer timed invokes than requested"))
    return checks


#: the CompiledModel failure of models whose postprocess outputs have no static shapes
STATIC_SHAPES_WORDS = "Custom allocation is too small"


def _status_fix(engine: str, delegate: str, err: dict[str, Any]) -> str:
    if engine == "compiled" and STATIC_SHAPES_WORDS in err.get("message", ""):
        return ("CompiledModel sizes its output buffers from the shapes stored in the model, and the "
                "TFLite_Detection_PostProcess outputs are stored as [] (LiteRT#9518): store their real shapes "
                "([1,N,4], [1,N], [1,N], [1]; N = max detections) in the model, or run it with the interpreter engine")
    return f"the model does not run with the {engine} engine on {delegate} on the device: see error.message"


def engines_of(result: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(dl.get("engine", "interpreter") for dl in result.get("delegates", [])))


def compare_run(run: DeviceRun, model: Path, *, options: DeployOptions, variant: str | None = None,
                score_threshold: float = 0.3, desktop: dict[str, DesktopRun] | None = None) -> dict[str, Any]:
    """The report.json ``devices[]`` entry for one device run (numbers, tolerances, checks).
    ``desktop`` (:func:`desktop.desktop_runs`) is computed here when not given."""
    from liteship.report import sha256
    from liteship.tflite_inspect import inspect_model

    result = run.result
    kind = run.producer_kind
    label = evidence_label(kind)
    data = Path(model).read_bytes()
    entry: dict[str, Any] = {
        "serial": run.serial,
        "transport": run.transport,
        "producer_kind": kind,
        "evidence": label,
        "producer": result["producer"],
        "device": result["device"],
        "run_id": run.run_id,
        "status": "ok",
        "timings_s": run.timings_s,
        "app_installed_now": run.app_installed_now,
        "model": {"path": str(model), "sha256": sha256(data)},
        "inputs": [{"id": i.id, "kind": i.kind, "source": i.source} for i in run.inputs],
        "delegates": [],
        "checks": [],
    }
    if options.warnings:
        entry["warnings"] = list(options.warnings)
    device_sha = (result.get("model") or {}).get("sha256")
    same = device_sha == entry["model"]["sha256"]
    if device_sha is None:
        sha_check = Check("device.model.sha256", Verdict.SKIP, entry["model"]["sha256"], None,
                          f"the app did not report the model's sha256 ({label})")
    else:
        sha_check = Check("device.model.sha256", Verdict.PASS if same else Verdict.FAIL, entry["model"]["sha256"],
                          device_sha, f"({label})", "" if same else "the device ran a different file: rerun the deploy")
    entry["checks"].append(sha_check.to_dict())
    if desktop is None:
        desktop = desktop_runs(data, run.inputs, engines_of(result), threads=options.threads,
                               max_results=options.max_results)
    entry["desktop"] = {name: d.summary() for name, d in desktop.items()}
    info = inspect_model(data)
    input_dtype = info.inputs[0].dtype
    from liteship.device.desktop import raw_form

    # a model of the gpu variant's form gets the gpu tolerances whatever its file is called
    chosen = variant or (Variant.GPU.value if raw_form(data, info) is not None else variant_of(model, input_dtype))
    tol = TOLERANCES[chosen]
    entry["variant"] = chosen
    for dl in result["delegates"]:
        engine = dl.get("engine", "interpreter")
        p = check_prefix(engine, dl["delegate"])
        item: dict[str, Any] = {"engine": engine, "delegate": dl["delegate"], "status": dl["status"],
                                "latency": latency(dl)}
        for key in ("accelerator_used", "fallback_reason", "runtime", "warnings"):
            if key in dl:
                item[key] = dl[key]
        checks: list[Check] = []
        used = dl.get("accelerator_used")
        if used is not None and used != dl["delegate"]:
            checks.append(Check(f"{p}.accelerator", Verdict.SKIP, dl["delegate"], used,
                                f"the {engine} engine fell back from {dl['delegate']} to {used}: "
                                f"{dl.get('fallback_reason', 'no reason given')} ({label}); the numbers below are {used}'s"))
        reference = desktop.get(engine)
        if dl["status"] != "ok":
            err = dl.get("error") or {}
            item["error"] = err
            item["parity"] = None
            verdict = Verdict.SKIP if dl["status"] == "unavailable" else Verdict.FAIL
            checks.append(Check(f"{p}.status", verdict, "ok", dl["status"],
                                f"{err.get('stage', '?')}: {err.get('message', '')} ({label})",
                                "" if verdict == Verdict.SKIP else _status_fix(engine, dl["delegate"], err)))
        elif reference is None or reference.error:
            item["parity"] = None
            why = reference.error if reference is not None else "no desktop run of this engine"
            checks.append(Check(f"{p}.desktop", Verdict.SKIP, f"a desktop {engine} run", None,
                                f"nothing to compare with: {why} ({label})"))
            lat = item["latency"]
            ok = lat["count"] == options.iterations
            checks.append(Check(f"{p}.latency.samples", Verdict.PASS if ok else Verdict.FAIL, options.iterations,
                                lat["count"], f"median {lat['median_ms']} ms ({label})",
                                "" if ok else "the app returned fewer timed invokes than requested"))
        else:
            tensors = measure_tensors(reference.outputs, dl, run.inputs)
            detections = measure_detections(reference.outputs, dl, run.inputs, score_threshold)
            checks += judge(dl["delegate"], tensors, detections, item["latency"], tol, label, options.iterations,
                            engine=engine)
            item["parity"] = json_safe({"tensors": tensors, "detections": detections, "desktop": reference.runtime,
                                        "tolerance": {"variant": chosen, **dataclasses.asdict(tol)}})
        item["checks"] = [c.to_dict() for c in checks]
        entry["delegates"].append(item)
    if any(c["verdict"] == Verdict.FAIL for c in all_checks(entry)):
        entry["status"] = "fail"
    return entry


def error_entry(spec: str, transport: str, exc: Any) -> dict[str, Any]:
    """A device that produced no usable result (connection, auth, storage, app, timeout...)."""
    return {
        "serial": spec,
        "transport": transport or None,
        "producer_kind": None,
        "evidence": None,
        "status": "error",
        "error": {"kind": exc.kind, "exit_code": exc.exit_code, "message": exc.message, "hint": exc.hint},
        "delegates": [],
        "checks": [],
    }


def all_checks(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return list(entry.get("checks", [])) + [c for d in entry.get("delegates", []) for c in d.get("checks", [])]


def failed_checks(entries: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for e in entries:
        for d in e.get("delegates", []):
            out += [f"{e['serial']}:{c['id']}" for c in d.get("checks", []) if c["verdict"] == Verdict.FAIL]
        out += [f"{e['serial']}:{c['id']}" for c in e.get("checks", []) if c["verdict"] == Verdict.FAIL]
    return out
