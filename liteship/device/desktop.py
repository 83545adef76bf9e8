"""The desktop run of the same model on the same inputs, per engine: the host's side of the
device comparison.

Deliberately NOT the emulated app's code (``apprunner``/``appengines``): outputs are found
by the ``TFLite_Detection_PostProcess`` op's PORTS (``tflite_inspect``; the app uses the
metadata names), images go through ``validation/detect.py`` (the desktop detector the
parity stage uses) for every engine. A wrong number on the device
side therefore shows up as a difference, never as the same code agreeing with itself.

* ``interpreter``: ai-edge-litert's Interpreter (tensor inputs) and ``TFLiteDetector``
  (image inputs);
* ``compiled``: ai-edge-litert's CompiledModel on the CPU, in a child process (it can
  corrupt the process's memory): ``create_input_buffers``/``create_output_buffers``,
  ``get_output_tensor_details``, ``run_by_index``;
* ``mediapipe``: the desktop MediaPipe ObjectDetector (same C++ graph as tasks-vision), in
  a child process, image inputs only.

A model of the ``gpu`` variant's form (outputs ``location`` [1,A,4] and ``score`` [1,A,C],
MediaPipe's ``DETECTOR_METADATA``, no postprocess op) has no ports: its outputs are found by
the SIGNATURE's names (``gpu_variant.output_names``; the app uses the metadata names), images
are stretched and normalized by ``validation/runtimes/raw_ssd.RawSsdDetector``, and the
CompiledModel's heads are decoded with the model's own DETECTOR_METADATA by
``raw_ssd.detections`` (``validation/raw_heads.py``: anchors, scales, sigmoid, class-agnostic
NMS at MediaPipe's IoU 0.3, at most ``max_results``), the decoder the ``run`` parity uses.

An engine the desktop cannot run (CompiledModel on a model whose postprocess outputs are
stored with shape ``[]``) is a :class:`DesktopRun` with ``error`` set: the comparison then
has nothing to compare against and says so.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from liteship import child
from liteship.device.protocol import DTYPES, read_tensor_file
from liteship.tflite_inspect import ModelInfo, inspect_model
from liteship.tflite_metadata import read_metadata_view
from liteship.types import DEFAULT_NORMALIZATION, OutputRole

MARKER = "LITESHIP_DESKTOP_ENGINE"
CHILD_TIMEOUT_S = 600.0


class Input(Protocol):
    """What the comparison needs of a pushed input (``deploy.PreparedInput``)."""

    id: str
    kind: str
    local: Path
    dtype: str | None
    shape: tuple[int, ...] | None


@dataclass
class DesktopTensor:
    role: str  # the postprocess port's role (OutputRole value), or the tensor name
    index: int
    value: np.ndarray


@dataclass
class DesktopOutput:
    tensors: list[DesktopTensor] = field(default_factory=list)  # tensor inputs, subgraph output order
    detections: list[dict[str, Any]] = field(default_factory=list)  # image inputs, normalized boxes


@dataclass
class DesktopRun:
    engine: str
    runtime: str
    outputs: dict[str, DesktopOutput] = field(default_factory=dict)
    #: why the desktop could not run this engine (the runtime's words), None when it ran
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"engine": self.engine, "runtime": self.runtime, "error": self.error, "inputs": len(self.outputs)}


def normalization(data: bytes, info: ModelInfo) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The model's metadata normalization, else the default."""
    view = read_metadata_view(data, info)
    if view.readable and view.normalization:
        mean, std = view.normalization
        if len(mean) in (1, 3) and len(std) in (1, 3):
            return mean, std
    return tuple(DEFAULT_NORMALIZATION.mean), tuple(DEFAULT_NORMALIZATION.std)


def raw_form(data: bytes, info: ModelInfo | None = None) -> Any:
    """The model's DETECTOR_METADATA options when it has the gpu variant's 2-output form, else None."""
    from liteship.validation.runtimes import raw_ssd

    info = info or inspect_model(data)
    meta = read_metadata_view(data, info)
    return raw_ssd.options_of(meta) if raw_ssd.is_raw_ssd(info, meta) else None


def detector(data: bytes, threads: int = 1, max_results: int = 100) -> Any:
    """``validation/detect.py``'s TFLiteDetector with the model's metadata normalization; for
    the gpu variant's form ``raw_ssd.RawSsdDetector`` (MediaPipe's NMS: IoU 0.3, score >= 0)."""
    info = inspect_model(data)
    if raw_form(data, info) is not None:
        from liteship.validation import contracts
        from liteship.validation.runtimes.raw_ssd import Nms, RawSsdDetector

        return RawSsdDetector(data, Nms(0.0, contracts.MEDIAPIPE_RAW_NMS_IOU, max_results), num_threads=threads)
    from liteship.validation.detect import TFLiteDetector

    mean, std = normalization(data, info)
    return TFLiteDetector(data, num_threads=threads, mean=mean, std=std)


def image_tensor(det: Any, path: Path) -> np.ndarray:
    """An image file as the model's input tensor: decoded (EXIF upright) and preprocessed by detect.py."""
    from liteship.converter.calibration import load_rgb

    return det.preprocess(load_rgb(Path(path)))


def _roles(info: ModelInfo) -> list[str]:
    """Per output: the postprocess port's role; without the op (the gpu variant's form) the
    signature's output name (``location``, ``score``), else the tensor name."""
    if not info.postprocess:
        from liteship.converter.gpu_variant import output_names

        return [name or t.name for name, t in zip(output_names(info), info.outputs)]
    return [role.value if role is not None else t.name for role, t in zip(info.output_roles, info.outputs)]


def desktop_runs(data: bytes, inputs: Sequence[Input], engines: Sequence[str], *, threads: int = 1,
                 max_results: int = 100) -> dict[str, DesktopRun]:
    """One :class:`DesktopRun` per engine (never raises for an engine the desktop cannot run)."""
    info = inspect_model(data)
    det = detector(data, threads=threads, max_results=max_results)
    raw = raw_form(data, info)
    runs: dict[str, DesktopRun] = {}
    with tempfile.TemporaryDirectory(prefix="liteship-desktop-") as tmp:
        model_path = Path(tmp) / "model.tflite"
        model_path.write_bytes(data)
        for engine in dict.fromkeys(engines):
            if engine == "interpreter":
                runs[engine] = _interpreter(data, info, det, inputs, threads)
            elif engine == "compiled":
                runs[engine] = _compiled(model_path, info, det, inputs, threads, Path(tmp), raw_options=raw,
                                         max_results=max_results)
            elif engine == "mediapipe":
                runs[engine] = _mediapipe(model_path, data, info, inputs, max_results)
            else:
                raise ValueError(f"unknown engine {engine!r}")
    return runs


def _normalized(pixel_boxes: np.ndarray, width: int, height: int) -> list[list[float]]:
    """detect.py's pixel (xmin, ymin, xmax, ymax) -> normalized [ymin, xmin, ymax, xmax]."""
    return [[float(b[1]) / height, float(b[0]) / width, float(b[3]) / height, float(b[2]) / width] for b in pixel_boxes]


def _interpreter(data: bytes, info: ModelInfo, det: Any, inputs: Sequence[Input], threads: int) -> DesktopRun:
    from ai_edge_litert.interpreter import Interpreter

    from liteship.converter.calibration import load_rgb
    from liteship.device.apprunner import runtime_version

    run = DesktopRun("interpreter", runtime_version() + " Interpreter (desktop)")
    interpreter = Interpreter(model_content=data, num_threads=threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    roles = _roles(info)
    for item in inputs:
        out = DesktopOutput()
        if item.kind == "tensor":
            assert item.dtype is not None and item.shape is not None
            interpreter.set_tensor(input_index, read_tensor_file(item.local, item.dtype, list(item.shape)))
            interpreter.invoke()
            out.tensors = [DesktopTensor(role, t.index, interpreter.get_tensor(t.index).copy())
                           for role, t in zip(roles, info.outputs)]
        else:
            rgb = load_rgb(item.local)
            found = det.detect(rgb)
            height, width = rgb.shape[:2]
            out.detections = [{"box": box, "class_index": int(c), "score": float(s)}
                              for box, c, s in zip(_normalized(found.boxes, width, height), found.classes, found.scores)]
        run.outputs[item.id] = out
    return run


def decode_ports(values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Detections from the op's outputs by port role: the first ``count`` rows, normalized
    boxes as emitted. (A small twin of detect.py's decoding, which returns clipped pixels;
    the comparison clips both sides alike.)"""
    boxes = values[OutputRole.BOXES.value].astype(np.float32).reshape(-1, 4)
    classes = values[OutputRole.CLASSES.value].astype(np.float32).reshape(-1)
    scores = values[OutputRole.SCORES.value].astype(np.float32).reshape(-1)
    raw = values.get(OutputRole.COUNT.value, np.zeros(0)).reshape(-1)
    n = min(len(boxes), len(classes), len(scores))
    if raw.size and np.isfinite(raw[0]):
        n = max(0, min(n, int(np.rint(raw[0]))))
    return [{"box": [float(v) for v in boxes[k]], "class_index": int(np.rint(classes[k])), "score": float(scores[k])}
            for k in range(n) if np.isfinite(scores[k]) and np.isfinite(classes[k])]


def decode_raw(values: dict[str, np.ndarray], options: Any, max_results: int) -> list[dict[str, Any]]:
    """Detections from the gpu variant's heads by role (``location``, ``score``): decoded with the
    model's DETECTOR_METADATA and suppressed as MediaPipe does (``raw_ssd.detections``);
    normalized, unclipped boxes."""
    from liteship.validation.runtimes.raw_ssd import detections

    boxes, classes, scores = detections(values["location"], values["score"], options, max_detections=max_results)
    return [{"box": [float(v) for v in b], "class_index": int(c), "score": float(s)}
            for b, c, s in zip(boxes, classes, scores) if np.isfinite(s) and np.all(np.isfinite(b))]


def _child_failure(what: str, outcome: child.ChildResult) -> str:
    from liteship.device.appengines import runtime_words

    words = runtime_words(outcome.stderr)
    payload = outcome.payload or {}
    head = payload.get("error") or f"the desktop {what} {outcome.describe()}"
    extra = [w for w in words if w not in head]
    return head + (f"; the runtime logged: {' | '.join(extra)}" if extra else "")


def _compiled(model_path: Path, info: ModelInfo, det: Any, inputs: Sequence[Input], threads: int,
              tmp: Path, *, raw_options: Any = None, max_results: int = 100) -> DesktopRun:
    from liteship.device.appengines import package_version

    run = DesktopRun("compiled", f"ai-edge-litert {package_version('ai-edge-litert')} CompiledModel (desktop, cpu)")
    jobs = []
    for k, item in enumerate(inputs):
        if item.kind == "tensor":
            assert item.dtype is not None and item.shape is not None
            tensor = read_tensor_file(item.local, item.dtype, list(item.shape))
        else:
            tensor = image_tensor(det, item.local)
        raw = tmp / f"compiled-in-{k}.bin"
        raw.write_bytes(tensor.tobytes())
        jobs.append({"id": item.id, "file": str(raw), "dtype": str(tensor.dtype)})
    job_file = tmp / "compiled-job.json"
    job_file.write_text(json.dumps({"model": str(model_path), "threads": threads, "inputs": jobs}))
    outcome = child.run_python("from liteship.device.desktop import compiled_child; compiled_child()",
                               [str(job_file)], timeout_s=CHILD_TIMEOUT_S, marker=MARKER)
    if outcome.payload is None or "error" in outcome.payload:
        run.error = _child_failure("CompiledModel", outcome)
        return run
    roles = dict(zip((t.index for t in info.outputs), _roles(info)))
    order = {t.index: t.position for t in info.outputs}
    kinds = {item.id: item.kind for item in inputs}
    for answer in outcome.payload["inputs"]:
        tensors = sorted((DesktopTensor(roles.get(t["index"], t["name"]), t["index"],
                                        np.frombuffer(base64.b64decode(t["b64"]), DTYPES[t["dtype"]]).reshape(t["shape"]))
                          for t in answer["outputs"]), key=lambda t: order.get(t.index, 1 << 30))
        out = DesktopOutput()
        if kinds[answer["id"]] == "tensor":
            out.tensors = tensors
        else:
            by_role = {t.role: t.value for t in tensors}
            out.detections = (decode_ports(by_role) if raw_options is None
                              else decode_raw(by_role, raw_options, max_results))
        run.outputs[answer["id"]] = out
    return run


def compiled_child() -> None:
    """Child process: CompiledModel on the CPU over a job file (argv[1])."""
    job = json.loads(Path(sys.argv[1]).read_text())
    from ai_edge_litert.compiled_model import CompiledModel, CpuOptions, HardwareAccelerator, Options

    try:
        model = CompiledModel.from_file(job["model"], options=Options(
            hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=job["threads"])))
        key = next(iter(model.get_signature_list()))
        inputs, outputs = model.create_input_buffers(0), model.create_output_buffers(0)
        # asked before the first run: the buffers are then checked against what the op writes, and a
        # model with outputs stored as [] is refused with the runtime's words instead of corrupting memory
        details = list(model.get_output_tensor_details(key).values())  # buffer order = signature order
        answers = []
        for item in job["inputs"]:
            inputs[0].write(np.frombuffer(Path(item["file"]).read_bytes(), np.dtype(item["dtype"])))
            model.run_by_index(0, inputs, outputs)
            tensors = []
            for detail, buffer in zip(details, outputs):
                shape = [int(x) for x in detail["shape"]]
                value = np.asarray(buffer.read(int(np.prod(shape)) if shape else 1, np.dtype(detail["dtype"])))
                value = value.astype(value.dtype.newbyteorder("<")).reshape(shape)
                tensors.append({"name": detail["name"], "index": int(detail["index"]), "dtype": str(np.dtype(detail["dtype"])),
                                "shape": shape, "b64": base64.b64encode(value.tobytes()).decode()})
            answers.append({"id": item["id"], "outputs": tensors})
    except Exception as exc:  # noqa: BLE001 - the runtime's refusal is the finding
        from liteship.device.appengines import one_line

        child.emit(MARKER, error=f"the desktop CompiledModel failed: {type(exc).__name__}: {one_line(str(exc))}")
        return
    child.emit(MARKER, inputs=answers)


def _mediapipe(model_path: Path, data: bytes, info: ModelInfo, inputs: Sequence[Input], max_results: int) -> DesktopRun:
    from liteship.device.appengines import package_version

    run = DesktopRun("mediapipe", f"mediapipe {package_version('mediapipe')} ObjectDetector (desktop, cpu)")
    images = [{"id": item.id, "file": str(item.local)} for item in inputs if item.kind == "image"]
    with tempfile.TemporaryDirectory(prefix="liteship-desktop-mp-") as tmp:
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps({"model": str(model_path), "max_results": max_results, "inputs": images}))
        outcome = child.run_python("from liteship.device.desktop import mediapipe_child; mediapipe_child()",
                                   [str(job_file)], timeout_s=CHILD_TIMEOUT_S, marker=MARKER)
    if outcome.payload is None or "error" in outcome.payload:
        run.error = _child_failure("MediaPipe ObjectDetector", outcome)
        return run
    labels = read_metadata_view(data, info).category_labels  # MediaPipe answers with these names
    for answer in outcome.payload["inputs"]:
        dets = []
        for d in answer["detections"]:
            index = d["index"] if d["index"] is not None else (labels.index(d["name"]) if d["name"] in labels else -1)
            dets.append({"box": d["box"], "class_index": int(index), "score": float(d["score"])})
        run.outputs[answer["id"]] = DesktopOutput(detections=dets)
    return run


def mediapipe_child() -> None:
    """Child process: the desktop MediaPipe ObjectDetector (CPU) on the image files of a job (argv[1])."""
    job = json.loads(Path(sys.argv[1]).read_text())
    sys.modules["tensorflow"] = None  # type: ignore[assignment] # mediapipe imports it only for docs (+5 s)
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from liteship.converter.calibration import load_rgb

    try:
        found_by_id = []
        detector = vision.ObjectDetector.create_from_options(vision.ObjectDetectorOptions(
            base_options=BaseOptions(model_asset_path=job["model"]), score_threshold=0.0,
            max_results=job["max_results"]))
        for item in job["inputs"]:
            # decoded upright like the other engines' desktop inputs (and the app's BitmapFactory + EXIF);
            # MediaPipe's own file decoder differs from PIL's on JPEG by enough to move int8 detections
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(load_rgb(Path(item["file"]))))
            t0 = time.perf_counter()
            result = detector.detect(image)
            ms = (time.perf_counter() - t0) * 1000.0
            w, h = image.width, image.height
            dets = []
            for d in result.detections:
                b, c = d.bounding_box, d.categories[0]
                dets.append({"box": [b.origin_y / h, b.origin_x / w, (b.origin_y + b.height) / h, (b.origin_x + b.width) / w],
                             "index": c.index, "name": c.category_name or "", "score": c.score})
            found_by_id.append({"id": item["id"], "ms": ms, "detections": dets})
        detector.close()
    except Exception as exc:  # noqa: BLE001
        child.emit(MARKER, error=f"the desktop MediaPipe ObjectDetector failed: {type(exc).__name__}: {exc}")
        return
    child.emit(MARKER, inputs=found_by_id)
