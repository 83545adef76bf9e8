"""The validation app's logic in Python: what ``ValidationActivity`` does, on the desktop runtimes.

The emulated device (``liteship.device.emulator``) calls :func:`serve` when it receives
``am start -n dev.liteship.demo/.ValidationActivity --es request PATH``. It follows the
protocol exactly like the Android app: read and validate ``request.json``, load the model
from the run folder, run it with every requested engine and accelerator on every input,
and write ``result.json`` atomically (``result.json.tmp``, then rename). It never raises:
every failure becomes a schema-valid result with ``status: error`` (or a per-run error).

It is the twin of the Java app (``android_app/.../ValidationRunner.java``), not of the
desktop reference: outputs are found by their METADATA names (``ModelRoles``), images are
packed like ``PixelPacker`` and decoded like ``DetectionDecoder``. The host's side of the
comparison is :mod:`liteship.device.desktop`, separate code that finds outputs by the
postprocess op's ports and runs ``validation/detect.py`` -- so a fault in this app (the
emulator's ``perturb-result``) makes the comparison fail for real.

Engines (:mod:`liteship.device.appengines` for the two that run in a child process):

* ``interpreter``: ai-edge-litert's Interpreter, CPU only here (``gpu``/``nnapi`` are
  ``unavailable``, as on LiteRT 2.x where the Interpreter has no delegates);
* ``compiled``: ai-edge-litert's CompiledModel, in a child process (it can corrupt the
  process's memory); ``gpu`` falls back to the CPU here (no GPU) and says so;
* ``mediapipe``: MediaPipe Tasks ObjectDetector, in a child process; images only.

What differs from a phone is labelled in the result (``producer.kind: emulated``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from liteship import __version__
from liteship.device import protocol
from liteship.device.protocol import DTYPES, decode_tensor, dtype_name, read_tensor_file, tensor_dict  # noqa: F401
from liteship.tflite_metadata import read_metadata_view

#: the device facts the emulated app reports (a fixed, recognisable device: never mistaken for a phone)
EMULATED_DEVICE: dict[str, Any] = {
    "model": "liteship-emulator",
    "manufacturer": "liteship",
    "android_version": "14",
    "sdk_int": 34,
    "abi": "x86_64",
}

#: the emulated device has no GPU or NNAPI driver: say so instead of silently using the CPU
UNAVAILABLE_DELEGATES = {
    "gpu": "the gpu delegate is not available on the emulated device (desktop LiteRT runs on the CPU only); "
           "run on a phone for gpu numbers",
    "nnapi": "the nnapi delegate is not available on the emulated device (NNAPI exists only on Android); "
             "run on a phone for nnapi numbers",
}
NNAPI_WARNING = "NNAPI is deprecated since Android 15 (API 35); prefer the compiled engine (CompiledModel) on gpu"

#: the Task Library metadata names the app finds outputs by (ModelRoles.java); count is optional
ROLE_NAMES = ("location", "category", "score", "number of detections")
#: the gpu variant's two outputs (raw box encodings, class scores), decoded by the app (RawSsdDecoder.java)
RAW_ROLE_NAMES = ("location", "score")
#: the NMS the app applies to the raw heads: MediaPipe's for this form (class-agnostic, IoU 0.3), so
#: the compiled and mediapipe engines answer alike (RawSsdDecoder.IOU_THRESHOLD)
RAW_NMS_IOU = 0.3


def runtime_version() -> str:
    try:
        return f"ai-edge-litert {version('ai-edge-litert')}"
    except PackageNotFoundError:
        return "ai-edge-litert (unknown version)"


class StageError(Exception):
    """A failure at one protocol stage; becomes the result's ``error`` object."""

    def __init__(self, stage: str, exc_type: str, message: str) -> None:
        super().__init__(message)
        self.stage, self.exc_type, self.message = stage, exc_type, message

    @classmethod
    def wrap(cls, stage: str, exc: BaseException) -> "StageError":
        if isinstance(exc, StageError):
            return exc
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return cls(stage, f"{type(exc).__module__}.{type(exc).__qualname__}", message)

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "type": self.exc_type, "message": self.message[:4000]}


# ---------------------------------------------------------------------------- the model as the app sees it


@dataclass(frozen=True)
class ModelFacts:
    """What the app reads from the model's TFLite metadata (MetadataReader.java's twin, TF-free)."""

    output_names: tuple[str, ...]  # metadata names in output order ("" without metadata)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]
    has_metadata: bool = True


def model_facts(data: bytes) -> ModelFacts:
    """Output names, normalization and labels, as the app reads them from the metadata.

    Models without metadata get no names, no normalization and no labels.
    """
    view = read_metadata_view(data)
    if not view.present:
        return ModelFacts((), (), (), (), has_metadata=False)
    mean, std = view.normalization or ((), ())
    labels = list(view.category_labels)
    while labels and not labels[-1].strip():
        labels.pop()
    return ModelFacts(view.output_names, mean, std, tuple(labels))


class AppModel:
    """The model as the app sees it: input 0's spec, output roles by metadata NAME
    (``ModelRoles.fromNames``), the app's image packing and detection decoding."""

    def __init__(self, data: bytes, *, source: str = "the model") -> None:
        from liteship.tflite_inspect import inspect_model

        self.info = inspect_model(data, source=source)  # typed refusal of corrupt files first
        self.data = data
        self.facts = model_facts(data)
        if len(self.info.inputs) != 1:
            raise ValueError(f"the model has {len(self.info.inputs)} inputs; an SSD detector has one image input")
        self.input = self.info.inputs[0]
        self.outputs = self.info.outputs
        #: the gpu variant's form (``location`` + ``score`` raw heads, DETECTOR_METADATA): its decoding options
        self.raw_options = self._raw_options()
        self.roles, self.roles_problem = self._roles()

    def _raw_options(self) -> Any:
        """``DetectorMetadata.find`` + ``parse``'s twin: the DETECTOR_METADATA custom metadata of a
        2-output model without the postprocess op (mediapipe_metadata's reader), else None."""
        from liteship.validation.runtimes import raw_ssd

        view = read_metadata_view(self.data, self.info)
        return raw_ssd.options_of(view) if raw_ssd.is_raw_ssd(self.info, view) else None

    def _roles(self) -> tuple[dict[str, int], str | None]:
        names = self.facts.output_names
        if self.raw_options is not None:
            # RawSsdDecoder.positions: by metadata name, else outputs 0 and 1 (MediaPipe's fallback)
            if all(n in names for n in RAW_ROLE_NAMES):
                return {n: names.index(n) for n in RAW_ROLE_NAMES}, None
            return dict(zip(RAW_ROLE_NAMES, (0, 1))), None
        positions: dict[str, int] = {}
        twice = []
        for i, name in enumerate(names):
            if name in ROLE_NAMES:
                if name in positions:
                    twice.append(name)
                positions[name] = i
        missing = [r for r in ROLE_NAMES[:3] if r not in positions]
        if twice:
            return positions, (f"the metadata names more than one output {', '.join(map(repr, twice))}; "
                               "each role must name exactly one output")
        if missing:
            shown = ", ".join(f"'{n}'" if n else "none" for n in names)
            return positions, (f"no output is named {' or '.join(map(repr, missing))} in the model metadata (output "
                               f"names: [{shown}]); write the detector metadata with `liteship metadata` (names "
                               "location, category, score, number of detections)")
        return positions, None

    @property
    def input_dtype(self) -> str:
        return self.input.dtype

    @property
    def input_shape(self) -> list[int]:
        return [int(x) for x in self.input.shape]

    @property
    def output_roles(self) -> list[str]:
        """``ModelRoles.describe``: the metadata name when it is a role name, else ""."""
        names = self.facts.output_names
        return [names[i] if i < len(names) and names[i] in ROLE_NAMES else "" for i in range(len(self.outputs))]

    def image_tensor(self, path: Path) -> np.ndarray:
        """Decode (EXIF upright, RGB), scale bilinearly to the input size, pack (PixelPacker)."""
        from PIL import Image

        from liteship.converter.calibration import load_rgb

        shape = self.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] <= 0 or shape[2] <= 0:
            raise ValueError(f"input 0 has shape {shape}; an image detector needs [1, height, width, 3] (RGB)")
        height, width = shape[1], shape[2]
        image = Image.fromarray(load_rgb(Path(path)), "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)[np.newaxis]
        if self.input_dtype == "uint8":
            return pixels
        if self.input_dtype not in ("float32", "int8"):
            raise ValueError(f"input 0 is {self.input_dtype}; the app feeds images to uint8, int8 or float32 inputs only")
        if not self.facts.mean or not self.facts.std:
            raise ValueError(f"input 0 is {self.input_dtype} but the model metadata has no NormalizationOptions "
                             "(mean/std); write the metadata with `liteship metadata`")
        mean = np.asarray([self.facts.mean[min(c, len(self.facts.mean) - 1)] for c in range(3)], np.float32)
        std = np.asarray([self.facts.std[min(c, len(self.facts.std) - 1)] for c in range(3)], np.float32)
        if np.any(std == 0) or np.any(np.isnan(std)):
            raise ValueError("NormalizationOptions std contains 0 or NaN")
        values = (pixels.astype(np.float32) - mean) / std
        if self.input_dtype == "float32":
            return values.astype(np.float32)
        quant = self.input.quantization.per_tensor if self.input.quantization else None
        if not quant or not quant[0] > 0:
            raise ValueError("int8 input 0 has no quantization scale")
        return np.clip(np.floor(values / np.float32(quant[0]) + 0.5) + quant[1], -128, 127).astype(np.int8)

    def check_tensor(self, array: np.ndarray) -> np.ndarray:
        if dtype_name(array.dtype) != self.input_dtype or list(array.shape) != self.input_shape:
            raise ValueError(
                f"input tensor is {dtype_name(array.dtype)} {list(array.shape)}, the model's input is "
                f"{self.input_dtype} {self.input_shape}"
            )
        return array

    def input_tensor(self, folder: Path, item: dict[str, Any]) -> np.ndarray:
        """One request input as input 0's array (preprocess stage)."""
        try:
            if item["kind"] == "tensor":
                return self.check_tensor(read_tensor_file(folder / item["file"], item["dtype"], item["shape"]))
            return self.image_tensor(folder / item["file"])
        except Exception as exc:  # noqa: BLE001 - a bad input is reported on that input only
            raise StageError.wrap("preprocess", exc) from None

    def decode(self, values: list[np.ndarray], score_threshold: float, max_results: int) -> list[dict[str, Any]]:
        """``DetectionDecoder``'s twin: outputs by metadata role (float32), the first
        min(count, N) entries in the op's order, NaN/infinite entries and scores below the
        threshold skipped, at most ``max_results``; boxes as the model emits them."""
        if self.roles_problem:
            raise ValueError(self.roles_problem)
        if self.raw_options is not None:
            return self.decode_raw(values, score_threshold, max_results)

        def floats(role: str) -> np.ndarray:
            position = self.roles[role]
            value = values[position]
            if value.dtype != np.float32:
                raise ValueError(f"output {position} ('{self.outputs[position].name}') is {dtype_name(value.dtype)}; "
                                 "the detection outputs of TFLite_Detection_PostProcess are float32")
            return value.reshape(-1)

        locations, categories, scores = floats("location"), floats("category"), floats("score")
        n = min(len(scores), len(categories), len(locations) // 4)
        if "number of detections" in self.roles:
            count = floats("number of detections")
            if count.size and not math.isnan(count[0]):
                n = max(0, min(n, _java_round(float(count[0]))))
        found: list[dict[str, Any]] = []
        for i in range(n):
            if len(found) >= max_results:
                break
            score, c = float(scores[i]), float(categories[i])
            box = [float(v) for v in locations[4 * i:4 * i + 4]]
            if not score >= score_threshold or math.isinf(score) or not math.isfinite(c) or c < 0:
                continue
            if not all(math.isfinite(v) for v in box):
                continue
            index = _java_round(c)
            label = self.facts.labels[index] if index < len(self.facts.labels) else None
            found.append({"box": box, "class_index": index, "label": label, "score": score})
        return found


    def decode_raw(self, values: list[np.ndarray], score_threshold: float, max_results: int) -> list[dict[str, Any]]:
        """``RawSsdDecoder``'s twin for the gpu variant's form: ``location`` and ``score`` by metadata
        name, decoded with the model's DETECTOR_METADATA (anchors, scales, exp, sigmoid), best class
        per anchor, class-agnostic greedy NMS at IoU 0.3, scores >= the threshold, at most
        ``max_results``; boxes unclipped. (The decoding itself is validation/raw_heads.py's.)"""
        from liteship.validation import raw_heads

        heads = {}
        for role in RAW_ROLE_NAMES:
            position = self.roles[role]
            value = values[position]
            if value.dtype != np.float32:
                raise ValueError(f"output {position} ('{self.outputs[position].name}') is {dtype_name(value.dtype)}; "
                                 "the gpu variant's location and score outputs are float32")
            heads[role] = value
        options = self.raw_options
        loc = heads["location"].reshape(-1, 4)
        if len(loc) != options.num_boxes:
            raise ValueError(f"'location' holds {len(loc)} boxes, DETECTOR_METADATA has {options.num_boxes} anchors")
        scores = heads["score"].reshape(len(loc), -1)
        if scores.shape[1] != options.num_classes:
            raise ValueError(f"'score' has {scores.shape[1]} classes per anchor, DETECTOR_METADATA says "
                             f"{options.num_classes}")
        # an anchor with a non-finite encoding or a NaN score is no detection (RawSsdDecoder skips it too)
        bad = ~np.all(np.isfinite(loc), axis=1) | np.any(np.isnan(scores), axis=1)
        loc = np.where(bad[:, None], np.float32(0), loc)
        scores = np.where(bad[:, None], np.float32(np.nan), scores)  # NaN: raw_heads' argmax drops the anchor
        d = raw_heads.detect(loc, scores, options, score_threshold=score_threshold, iou_threshold=RAW_NMS_IOU,
                             max_detections=max_results)
        found = []
        for box, c, score in zip(d["boxes"], d["classes"], d["scores"]):
            if not np.isfinite(score) or not np.all(np.isfinite(box)):
                continue
            index = int(c)
            label = self.facts.labels[index] if index < len(self.facts.labels) else None
            found.append({"box": [float(v) for v in box], "class_index": index, "label": label, "score": float(score)})
        return found


def _java_round(x: float) -> int:
    """Java's Math.round: floor(x + 0.5)."""
    return int(math.floor(x + 0.5))


class ModelRunner(AppModel):
    """The ``interpreter`` engine: one ai-edge-litert Interpreter on the model (CPU)."""

    def __init__(self, data: bytes, *, threads: int = 1, source: str = "the model") -> None:
        super().__init__(data, source=source)
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=data, num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input_detail = self._interpreter.get_input_details()[0]
        self._output_details = self._interpreter.get_output_details()

    def invoke(self, tensor: np.ndarray) -> float:
        """Feed input 0 and run; returns the invoke time in ms."""
        self._interpreter.set_tensor(self._input_detail["index"], tensor)
        t0 = time.perf_counter()
        self._interpreter.invoke()
        return (time.perf_counter() - t0) * 1000.0

    def raw_outputs(self) -> list[tuple[dict[str, Any], np.ndarray]]:
        return [(d, self._interpreter.get_tensor(d["index"]).copy()) for d in self._output_details]

    def detections(self, score_threshold: float = 0.0, max_results: int = 100) -> list[dict[str, Any]]:
        return self.decode([v for _, v in self.raw_outputs()], score_threshold, max_results)


# ---------------------------------------------------------------------------- serve


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _base(run_id: str, producer_kind: str) -> dict[str, Any]:
    return {
        "schema": protocol.RESULT_SCHEMA,
        "version": protocol.VERSION,
        "run_id": run_id,
        "status": "ok",
        "producer": {"kind": producer_kind, "app_version": __version__, "runtime": runtime_version()},
        "device": dict(EMULATED_DEVICE),
        "started_at": _now(),
        "delegates": [],
    }


def _read_request(request_file: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(request_file).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageError.wrap("request", exc) from None
    errors = protocol.request_errors(doc)
    if errors:
        raise StageError("request", "liteship.device.protocol.SchemaError",
                         "request.json breaks the protocol schema: " + "; ".join(errors))
    return doc


def _load_model(folder: Path, request: dict[str, Any]) -> bytes:
    from liteship.report import sha256

    path = folder / request["model"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StageError("load", f"{type(exc).__module__}.{type(exc).__qualname__}",
                         f"cannot read the model {request['model']}: {exc.strerror or exc}") from None
    want = request.get("model_sha256")
    if want and sha256(data) != want:
        raise StageError("load", "liteship.device.apprunner.ChecksumMismatch",
                         f"{request['model']} has sha256 {sha256(data)}, the request says {want} "
                         f"({len(data)} bytes; an incomplete push?)")
    return data


def _run_interpreter(runner: ModelRunner, folder: Path, request: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"delegate": "cpu", "status": "ok", "warmup_ms": [], "latency_ms": [], "outputs": []}
    threshold = float(request.get("score_threshold", 0.0))
    max_results = int(request.get("max_results", 100))
    want_tensors = bool(request.get("return_tensors", True))
    for position, item in enumerate(request["inputs"]):
        output: dict[str, Any] = {"input_id": item["id"]}
        try:
            tensor = runner.input_tensor(folder, item)
            try:
                if position == 0:
                    result["warmup_ms"] = [round(runner.invoke(tensor), 4) for _ in range(request["warmup"])]
                    result["latency_ms"] = [round(runner.invoke(tensor), 4) for _ in range(request["iterations"])]
                    output["latency_ms"] = result["latency_ms"][0]
                else:
                    output["latency_ms"] = round(runner.invoke(tensor), 4)
                raw = runner.raw_outputs()
                if want_tensors:
                    output["tensors"] = [tensor_dict(d["name"], d["index"], v) for d, v in raw]
                output["detections"] = runner.decode([v for _, v in raw], threshold, max_results)
            except Exception as exc:  # noqa: BLE001
                raise StageError.wrap("run", exc) from None
        except StageError as exc:
            output = {"input_id": item["id"], "error": exc.to_dict()}
        result["outputs"].append(output)
    return result


def _interpreter_runs(data: bytes, folder: Path, request: dict[str, Any], accelerators: list[str],
                      engines_form: bool, runner: ModelRunner) -> list[dict[str, Any]]:
    runs = []
    for delegate in accelerators:
        tag: dict[str, Any] = {"engine": protocol.INTERPRETER, "runtime": runtime_version() + " Interpreter"} \
            if engines_form else {}
        if delegate in UNAVAILABLE_DELEGATES:
            entry = {"delegate": delegate, **tag, "status": "unavailable",
                     "error": {"stage": "delegate", "type": "java.lang.UnsupportedOperationException",
                               "message": UNAVAILABLE_DELEGATES[delegate]}}
        else:
            try:
                entry = {**_run_interpreter(runner, folder, request), **tag}
                if engines_form:
                    entry["accelerator_used"] = "cpu"
            except Exception as exc:  # noqa: BLE001
                entry = {"delegate": delegate, **tag, "status": "error",
                         "error": StageError.wrap("run", exc).to_dict()}
        if engines_form and delegate == "nnapi":
            entry["warnings"] = [NNAPI_WARNING]
        runs.append(entry)
    return runs


def run_request(request_file: Path, *, producer_kind: str = "emulated", perturb: bool = False) -> dict[str, Any]:
    """The result document for ``request_file`` (no file written, never raises).

    ``perturb`` is the emulator's ``perturb-result`` fault: the app computes wrong numbers
    (scores +0.01, boxes shifted by 0.2), which the host's comparison must catch."""
    from liteship.device import appengines

    folder = Path(request_file).parent
    result = _base(folder.name, producer_kind)
    try:
        request = _read_request(Path(request_file))
        result["run_id"] = request["run_id"]
        data = _load_model(folder, request)
        try:
            runner = ModelRunner(data, threads=request["threads"], source=request["model"])
        except Exception as exc:  # noqa: BLE001 - corrupt flatbuffer, not a detector, interpreter refusal
            raise StageError.wrap("load", exc) from None
        from liteship.report import sha256

        result["model"] = {
            "sha256": sha256(data),
            "input": {"dtype": runner.input_dtype, "shape": runner.input_shape},
            "output_roles": runner.output_roles,
        }
        engines_form = "engines" in request
        for engine, accelerators in protocol.runs_of(request):
            if engine == protocol.INTERPRETER:
                result["delegates"] += _interpreter_runs(data, folder, request, accelerators, engines_form, runner)
                continue
            for accelerator in accelerators:
                try:
                    entry = appengines.run(engine, accelerator, runner, folder / request["model"], folder, request)
                except Exception as exc:  # noqa: BLE001 - a bug in one engine must not hide the others
                    entry = {"delegate": accelerator, "engine": engine, "status": "error",
                             "error": StageError.wrap("run", exc).to_dict()}
                result["delegates"].append(entry)
        if perturb:
            _perturb(result, runner)
    except Exception as exc:  # noqa: BLE001 - the app never dies on a bad request or model
        result["status"] = "error"
        result["error"] = StageError.wrap("request", exc).to_dict()
    result["finished_at"] = _now()
    return result


def _perturb(result: dict[str, Any], runner: AppModel) -> None:
    """The ``perturb-result`` fault: every score tensor +0.01, every box shifted by 0.2."""
    position = runner.roles.get("score")
    score_index = runner.outputs[position].index if position is not None else None
    for run in result["delegates"]:
        for out in run.get("outputs", []):
            for t in out.get("tensors", []):
                if t["index"] == score_index and t["dtype"] == "float32":
                    t.update(tensor_dict(t["name"], t["index"], decode_tensor(t) + np.float32(0.01)))
            for det in out.get("detections", []):
                det["box"] = [v + 0.2 for v in det["box"]]


def serve(request_file: Path, *, producer_kind: str = "emulated", perturb: bool = False) -> None:
    """Serve one request: ``result.json`` appears (atomically) next to ``request_file``.

    Never raises. A result that would break the schema (a bug) is replaced by an error
    result saying so; when even writing fails, nothing is left under the final name.
    """
    folder = Path(request_file).parent
    try:
        result = run_request(request_file, producer_kind=producer_kind, perturb=perturb)
        errors = protocol.result_errors(result)
        if errors:
            bad = _base(str(result.get("run_id", folder.name)), producer_kind)
            bad.update(status="error", finished_at=_now(), error={
                "stage": "write", "type": "liteship.device.protocol.SchemaError",
                "message": "the emulated app built a result that breaks the schema: " + "; ".join(errors)})
            result = bad
        text = json.dumps(result, indent=1)
        tmp = folder / protocol.RESULT_TMP_NAME
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / protocol.RESULT_NAME)
    except Exception as exc:  # noqa: BLE001 - like an app that logs and finishes
        import sys

        print(f"liteship emulated app: cannot write the result in {folder}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
