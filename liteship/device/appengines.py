"""The emulated app's ``compiled`` and ``mediapipe`` engines, each run in a child process.

Twins of the Java app's ``CompiledModelSession`` and ``MediaPipeSession``. The runtimes run
in a child (``liteship.child``) because they can take the process down with them:
CompiledModel corrupts its heap on models whose postprocess outputs are stored with shape
``[]`` (LiteRT#9518), and a crash must become an error in the result, never a dead app.

What the app does per engine:

* ``compiled``: ``CompiledModel.from_file`` with the requested accelerator; ``gpu`` that
  cannot start falls back to ``cpu`` and the result says so (``accelerator_used`` and
  ``fallback_reason``: the runtime's own words); buffers created by signature name, then
  ``get_output_tensor_details`` (the runtime's names and tensor indices, like the Java app's
  ``getOutputTensorType``), ``run_by_name``, outputs read back. An error or a crash of the
  runtime becomes ``status: error`` quoting what the runtime printed.
* ``mediapipe``: ``ObjectDetector`` with ``score_threshold``/``max_results`` of the request;
  images only (it takes images and exposes no tensors): ``kind: tensor`` inputs are
  ``not_applicable``. Boxes come back in pixels and are normalized by the image size.

The child prints ``LITESHIP-PHASE <name>`` lines to stderr between steps, so the runtime's
own log lines (``ERROR: Custom allocation is too small for tensor idx: 3``) are quoted with
the step they belong to.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liteship import child
from liteship.device.protocol import DTYPES, tensor_dict

if TYPE_CHECKING:
    from liteship.device.apprunner import AppModel

MARKER = "LITESHIP_APP_ENGINE"
PHASE = "LITESHIP-PHASE"
CHILD_TIMEOUT_S = 600.0
MEDIAPIPE_IMAGES_ONLY = "MediaPipe Tasks takes images and exposes no tensors: tensor inputs do not apply"

#: log lines of a native runtime that carry its own words about a failure
_RUNTIME_WORDS = re.compile(r"(ERROR|Error|error:|Failed|failed|abort|corrupt|double free|free\(\)|"
                            r"malloc|Check failed|not supported|No adapters)")
_NOISE = re.compile(r"^\s*(INFO|I0000|W0000|WARNING: \[(npu|compiler))")
#: absl's log prefix ("E0000 00:00:1796141445.662088    8046 "): a time and a thread id, not words
_ABSL_PREFIX = re.compile(r"^[EF]\d{4} [\d:.]+\s+\d+ ")


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def runtime_words(stderr: str, phase: str | None = None, limit: int = 4) -> list[str]:
    """The runtime's error lines from a child's stderr (of one ``phase`` when given)."""
    lines = stderr.splitlines()
    if phase is not None:
        start = [i for i, ln in enumerate(lines) if ln.strip() == f"{PHASE} {phase}"]
        if not start:
            return []
        end = next((i for i in range(start[-1] + 1, len(lines)) if lines[i].startswith(PHASE)), len(lines))
        lines = lines[start[-1] + 1:end]
    out: list[str] = []
    for ln in lines:
        text = ln.strip()
        if not text or text.startswith(("===", "└", "Traceback", "File ", "^")) or _NOISE.match(text):
            continue
        text = _ABSL_PREFIX.sub("", text)
        if _RUNTIME_WORDS.search(text) and text[:300] not in out:
            out.append(text[:300])
    return out[:limit]


def one_line(text: str) -> str:
    """A runtime's multi-line message (``ERROR: [...]\\n└ ERROR: ...``) on one line."""
    return " / ".join(part.strip(" └") for part in str(text).splitlines() if part.strip(" └"))


def _quote(message: str, words: list[str]) -> str:
    extra = [w for w in words if w not in message]
    return message + (f"; the runtime logged: {' | '.join(extra)}" if extra else "")


def run(engine: str, accelerator: str, app: "AppModel", model_path: Path, folder: Path,
        request: dict[str, Any]) -> dict[str, Any]:
    """One ``delegate_result`` of the engines form for ``engine`` on ``accelerator``."""
    if engine == "compiled":
        return _compiled(accelerator, app, model_path, folder, request)
    if engine == "mediapipe":
        return _mediapipe(accelerator, app, model_path, folder, request)
    raise ValueError(f"unknown engine {engine!r}")


def _entry(engine: str, accelerator: str, runtime: str) -> dict[str, Any]:
    return {"delegate": accelerator, "engine": engine, "runtime": runtime, "status": "ok",
            "warmup_ms": [], "latency_ms": [], "outputs": []}


def _crashed(entry: dict[str, Any], outcome: child.ChildResult, what: str) -> dict[str, Any]:
    words = runtime_words(outcome.stderr)
    entry.update(status="error", error={
        "stage": "run", "type": f"process {outcome.outcome}",
        "message": _quote(f"the {what} {outcome.describe()}", words)})
    for key in ("warmup_ms", "latency_ms", "outputs"):
        entry.pop(key, None)
    return entry


def _launch(entry: dict[str, Any], job: dict[str, Any], tmp: Path, child_fn: str,
            what: str) -> tuple[dict[str, Any] | None, child.ChildResult]:
    """Run one engine's child (``child_fn`` of this module) on ``job`` (written to ``tmp``).

    Returns its payload with the run-level facts applied to ``entry``, or None when the
    child crashed or reported an error: ``entry`` then says so and is the engine's answer."""
    job_file = tmp / "job.json"
    job_file.write_text(json.dumps(job))
    outcome = child.run_python(f"from liteship.device.appengines import {child_fn}; {child_fn}()",
                               [str(job_file)], timeout_s=CHILD_TIMEOUT_S, marker=MARKER)
    payload = outcome.payload
    if payload is None:
        _crashed(entry, outcome, what)
        return None, outcome
    if "error" in payload:
        for key in ("warmup_ms", "latency_ms", "outputs"):
            entry.pop(key)
        entry.update(status="error", error=_error_from(payload, outcome.stderr))
        return None, outcome
    _apply_run_level(entry, payload, outcome.stderr)
    return payload, outcome


def _apply_run_level(entry: dict[str, Any], payload: dict[str, Any], stderr: str) -> None:
    entry["accelerator_used"] = payload.get("accelerator_used", entry["delegate"])
    if payload.get("fallback_reason"):
        entry["fallback_reason"] = _quote(payload["fallback_reason"], runtime_words(stderr, "create-" + entry["delegate"]))
    entry["warmup_ms"] = payload.get("warmup_ms", [])
    entry["latency_ms"] = payload.get("latency_ms", [])


def _error_from(payload: dict[str, Any], stderr: str) -> dict[str, str]:
    err = dict(payload["error"])
    err["message"] = _quote(err["message"], runtime_words(stderr, payload.get("phase")))[:4000]
    return err


# ---------------------------------------------------------------------------- compiled


def _compiled(accelerator: str, app: "AppModel", model_path: Path, folder: Path,
              request: dict[str, Any]) -> dict[str, Any]:
    from liteship.device.apprunner import StageError

    entry = _entry("compiled", accelerator, f"ai-edge-litert {package_version('ai-edge-litert')} CompiledModel")
    threshold = float(request.get("score_threshold", 0.0))
    max_results = int(request.get("max_results", 100))
    want_tensors = bool(request.get("return_tensors", True))
    prepared: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="liteship-app-compiled-") as tmp:
        jobs = []
        for k, item in enumerate(request["inputs"]):
            try:
                tensor = app.input_tensor(folder, item)
            except StageError as exc:
                prepared[item["id"]] = {"input_id": item["id"], "error": exc.to_dict()}
                continue
            raw = Path(tmp) / f"in-{k}.bin"
            raw.write_bytes(tensor.tobytes())
            jobs.append({"id": item["id"], "file": str(raw), "dtype": str(tensor.dtype)})
        job = {"model": str(model_path), "accelerator": accelerator, "threads": request["threads"],
               "warmup": request["warmup"], "iterations": request["iterations"], "inputs": jobs,
               "first": request["inputs"][0]["id"] if request["inputs"] else None}
        payload, outcome = _launch(entry, job, Path(tmp), "compiled_child", "CompiledModel run (child process)")
    if payload is None:
        return entry
    answered = {r["id"]: r for r in payload["inputs"]}
    position_of = {t.index: t.position for t in app.outputs}
    for item in request["inputs"]:
        if item["id"] in prepared:
            entry["outputs"].append(prepared[item["id"]])
            continue
        got = answered.get(item["id"], {"error": {"stage": "run", "type": "missing", "message": "no answer"}})
        if "error" in got:
            entry["outputs"].append({"input_id": item["id"], "error": _error_from(got, outcome.stderr)})
            continue
        values: list[np.ndarray | None] = [None] * len(app.outputs)
        tensors = []
        for t in got["outputs"]:
            value = np.frombuffer(base64.b64decode(t["b64"]), DTYPES[t["dtype"]]).reshape(t["shape"])
            tensors.append((position_of.get(t["index"], len(tensors)), t, value))
            if t["index"] in position_of:
                values[position_of[t["index"]]] = value
        out: dict[str, Any] = {"input_id": item["id"], "latency_ms": got["latency_ms"]}
        if want_tensors:
            out["tensors"] = [tensor_dict(t["name"], t["index"], v) for _, t, v in sorted(tensors, key=lambda x: x[0])]
        try:
            if any(v is None for v in values):
                raise ValueError("the CompiledModel returned no output for tensor(s) "
                                 f"{[t.index for t, v in zip(app.outputs, values) if v is None]}")
            out["detections"] = app.decode([v for v in values if v is not None], threshold, max_results)
        except Exception as exc:  # noqa: BLE001
            out["error"] = StageError.wrap("run", exc).to_dict()
        entry["outputs"].append(out)
    return entry


def _phase(name: str) -> None:
    sys.stderr.write(f"\n{PHASE} {name}\n")
    sys.stderr.flush()


def _fail(stage: str, exc: BaseException, phase: str) -> dict[str, Any]:
    return {"error": {"stage": stage, "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                      "message": one_line(str(exc)) or type(exc).__name__}, "phase": phase}


def compiled_child() -> None:
    """Child process: the app's CompiledModel flow on a job file (argv[1])."""
    job = json.loads(Path(sys.argv[1]).read_text())
    from ai_edge_litert.compiled_model import CompiledModel, CpuOptions, HardwareAccelerator, Options

    def create(accel: Any) -> Any:
        return CompiledModel.from_file(job["model"], options=Options(
            hardware_accelerators=accel, cpu_options=CpuOptions(num_threads=job["threads"])))

    payload: dict[str, Any] = {"accelerator_used": job["accelerator"]}
    _phase(f"create-{job['accelerator']}")
    try:
        model = create(HardwareAccelerator.GPU if job["accelerator"] == "gpu" else HardwareAccelerator.CPU)
    except Exception as exc:  # noqa: BLE001 - the runtime's refusal, reported
        if job["accelerator"] != "gpu":
            child.emit(MARKER, **_fail("load", exc, f"create-{job['accelerator']}"))
            return
        payload.update(accelerator_used="cpu", fallback_reason=f"the GPU accelerator could not compile the model: "
                                                               f"{one_line(str(exc)) or type(exc).__name__}")
        _phase("create-cpu")
        try:
            model = create(HardwareAccelerator.CPU)
        except Exception as exc2:  # noqa: BLE001
            child.emit(MARKER, **_fail("load", exc2, "create-cpu"))
            return
    _phase("buffers")
    try:
        signatures = model.get_signature_list()
        key = next(iter(signatures))
        inputs = {n: model.create_input_buffer_by_name(key, n) for n in signatures[key]["inputs"]}
        outputs = {n: model.create_output_buffer_by_name(key, n) for n in signatures[key]["outputs"]}
        if len(inputs) != 1:
            raise ValueError(f"the model's signature has {len(inputs)} inputs; an SSD detector has one")
        (input_buffer,) = inputs.values()
        # the runtime's names, tensor indices and shapes of the outputs, asked before the first run
        # (like the Java app's getOutputTensorType): on outputs stored as [] the run then refuses with
        # the runtime's own "Custom allocation is too small" instead of writing past 4-byte buffers
        details = model.get_output_tensor_details(key)
    except Exception as exc:  # noqa: BLE001
        child.emit(MARKER, **_fail("load", exc, "buffers"))
        return
    answers = []
    for item in job["inputs"]:
        phase = f"run {item['id']}"
        _phase(phase)
        try:
            tensor = np.frombuffer(Path(item["file"]).read_bytes(), np.dtype(item["dtype"]))

            def once() -> float:
                input_buffer.write(tensor)
                t0 = time.perf_counter()
                model.run_by_name(key, inputs, outputs)
                return (time.perf_counter() - t0) * 1000.0

            if item["id"] == job["first"]:
                payload["warmup_ms"] = [round(once(), 4) for _ in range(job["warmup"])]
                payload["latency_ms"] = [round(once(), 4) for _ in range(job["iterations"])]
                latency = payload["latency_ms"][0]
            else:
                latency = round(once(), 4)
            values = {}
            for name, buffer in outputs.items():
                spec = buffer.get_tensor_details()
                shape = [int(x) for x in spec["shape"]]
                dtype = np.dtype(spec["dtype"])
                value = np.asarray(buffer.read(int(np.prod(shape)) if shape else 1, dtype), dtype).reshape(shape)
                values[name] = value
            answers.append({"id": item["id"], "latency_ms": latency, "outputs": [
                {"name": details[n]["name"], "index": int(details[n]["index"]), "dtype": str(v.dtype),
                 "shape": list(v.shape), "b64": base64.b64encode(v.astype(v.dtype.newbyteorder("<")).tobytes()).decode()}
                for n, v in values.items()]})
        except Exception as exc:  # noqa: BLE001 - the runtime's own error, on this input
            if not answers:  # the first run failed: the model does not run with these buffers at all
                child.emit(MARKER, **_fail("run", exc, phase))
                return
            answers.append({"id": item["id"], **_fail("run", exc, phase)})
    payload["inputs"] = answers
    child.emit(MARKER, **payload)


# ---------------------------------------------------------------------------- mediapipe


def _mediapipe(accelerator: str, app: "AppModel", model_path: Path, folder: Path,
               request: dict[str, Any]) -> dict[str, Any]:
    from liteship.device.apprunner import StageError

    entry = _entry("mediapipe", accelerator, f"mediapipe {package_version('mediapipe')} ObjectDetector")
    images = [item for item in request["inputs"] if item["kind"] == "image"]
    job = {"model": str(model_path), "accelerator": accelerator, "warmup": request["warmup"],
           "iterations": request["iterations"], "score_threshold": float(request.get("score_threshold", 0.0)),
           "max_results": int(request.get("max_results", 100)),
           "first": images[0]["id"] if images else None,
           "inputs": [{"id": i["id"], "file": str(folder / i["file"])} for i in images]}
    with tempfile.TemporaryDirectory(prefix="liteship-app-mediapipe-") as tmp:
        payload, outcome = _launch(entry, job, Path(tmp), "mediapipe_child", "MediaPipe ObjectDetector (child process)")
    if payload is None:
        return entry
    answered = {r["id"]: r for r in payload["inputs"]}
    labels = app.facts.labels
    for item in request["inputs"]:
        if item["kind"] != "image":
            entry["outputs"].append({"input_id": item["id"], "not_applicable": MEDIAPIPE_IMAGES_ONLY})
            continue
        got = answered.get(item["id"], {"error": {"stage": "run", "type": "missing", "message": "no answer"}})
        if "error" in got:
            entry["outputs"].append({"input_id": item["id"], "error": _error_from(got, outcome.stderr)})
            continue
        width, height = got["width"], got["height"]
        dets = []
        try:
            for d in got["detections"]:
                # Category.index is unset when the model has labels: the name is the class (as in the app)
                index = d["index"] if d["index"] is not None and d["index"] >= 0 else (
                    labels.index(d["name"]) if d["name"] in labels else None)
                if index is None:
                    raise ValueError(f"MediaPipe returned the category {d['name']!r}, which is not in the model's labels")
                dets.append({"box": [d["y"] / height, d["x"] / width, (d["y"] + d["h"]) / height,
                                     (d["x"] + d["w"]) / width],
                             "class_index": int(index), "label": d["name"] or None, "score": float(d["score"])})
            entry["outputs"].append({"input_id": item["id"], "latency_ms": got["latency_ms"], "detections": dets})
        except Exception as exc:  # noqa: BLE001
            entry["outputs"].append({"input_id": item["id"], "error": StageError.wrap("run", exc).to_dict()})
    return entry


def mediapipe_child() -> None:
    """Child process: the app's MediaPipe ObjectDetector flow on a job file (argv[1])."""
    job = json.loads(Path(sys.argv[1]).read_text())
    sys.modules["tensorflow"] = None  # type: ignore[assignment] # mediapipe imports it only for docs (+5 s)
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from liteship.converter.calibration import load_rgb

    def create(delegate: Any) -> Any:
        return vision.ObjectDetector.create_from_options(vision.ObjectDetectorOptions(
            base_options=BaseOptions(model_asset_path=job["model"], delegate=delegate),
            score_threshold=job["score_threshold"], max_results=job["max_results"]))

    payload: dict[str, Any] = {"accelerator_used": job["accelerator"]}
    _phase(f"create-{job['accelerator']}")
    try:
        detector = create(BaseOptions.Delegate.GPU if job["accelerator"] == "gpu" else BaseOptions.Delegate.CPU)
    except Exception as exc:  # noqa: BLE001
        if job["accelerator"] != "gpu":
            child.emit(MARKER, **_fail("load", exc, f"create-{job['accelerator']}"))
            return
        payload.update(accelerator_used="cpu",
                       fallback_reason=f"the MediaPipe GPU delegate could not start: {one_line(str(exc))[:1500]}")
        _phase("create-cpu")
        try:
            detector = create(BaseOptions.Delegate.CPU)
        except Exception as exc2:  # noqa: BLE001
            child.emit(MARKER, **_fail("load", exc2, "create-cpu"))
            return
    answers = []
    for item in job["inputs"]:
        phase = f"run {item['id']}"
        _phase(phase)
        try:
            rgb = np.ascontiguousarray(load_rgb(Path(item["file"])))
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)

            def once() -> tuple[float, Any]:
                t0 = time.perf_counter()
                found = detector.detect(image)
                return (time.perf_counter() - t0) * 1000.0, found

            if item["id"] == job["first"]:
                payload["warmup_ms"] = [round(once()[0], 4) for _ in range(job["warmup"])]
                timed = [once() for _ in range(job["iterations"])]
                payload["latency_ms"] = [round(ms, 4) for ms, _ in timed]
                latency, found = round(timed[0][0], 4), timed[0][1]
            else:
                ms, found = once()
                latency = round(ms, 4)
            dets = []
            for d in found.detections:
                box, cat = d.bounding_box, d.categories[0]
                dets.append({"x": box.origin_x, "y": box.origin_y, "w": box.width, "h": box.height,
                             "index": cat.index, "name": cat.category_name or "", "score": cat.score})
            answers.append({"id": item["id"], "latency_ms": latency, "width": int(rgb.shape[1]),
                            "height": int(rgb.shape[0]), "detections": dets})
        except Exception as exc:  # noqa: BLE001
            answers.append({"id": item["id"], **_fail("run", exc, phase)})
    payload["inputs"] = answers
    child.emit(MARKER, **payload)
    detector.close()
