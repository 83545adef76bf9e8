"""The validation app's logic in Python: what ``ValidationActivity`` does, on the desktop runtime.

The emulated device (``liteship.device.emulator``) calls :func:`serve` when it receives
``am start -n dev.liteship.demo/.ValidationActivity --es request PATH``. It follows the
protocol exactly like the Android app: read and validate ``request.json``, load the
model from the run folder, run it per requested delegate on every input, and write
``result.json`` atomically (``result.json.tmp``, then rename). It never raises: every
failure becomes a schema-valid result with ``status: error`` (or a per-delegate error).

What differs from a phone, and is labelled in the result (``producer.kind: emulated``):
the runtime is the desktop LiteRT (``ai-edge-litert``, XNNPACK on x86-64), images are
decoded and resized with Pillow (detect.py's preprocessing, not Android's Bitmap), and
only the ``cpu`` delegate exists (``gpu``/``nnapi`` report ``unavailable``).

:class:`ModelRunner` is also the desktop side of the device comparison
(:mod:`liteship.device.compare`): one implementation of "feed an input, read the outputs
by role" for both.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from liteship import __version__
from liteship.device import protocol
from liteship.tflite_metadata import read_metadata_view
from liteship.types import OutputRole

#: the device facts the emulated app reports (a fixed, recognisable device: never mistaken for a phone)
EMULATED_DEVICE: dict[str, Any] = {
    "model": "liteship-emulator",
    "manufacturer": "liteship",
    "android_version": "14",
    "sdk_int": 34,
    "abi": "x86_64",
}

#: the protocol's dtype names <-> little-endian numpy dtypes
DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "bool": np.dtype("?"),
}

#: the emulated device has no GPU or NNAPI driver: say so instead of silently using the CPU
UNAVAILABLE_DELEGATES = {
    "gpu": "the gpu delegate is not available on the emulated device (desktop LiteRT runs on the CPU only); "
           "run on a phone for gpu numbers",
    "nnapi": "the nnapi delegate is not available on the emulated device (NNAPI exists only on Android); "
             "run on a phone for nnapi numbers",
}



def runtime_version() -> str:
    try:
        return f"ai-edge-litert {version('ai-edge-litert')}"
    except PackageNotFoundError:
        return "ai-edge-litert (unknown version)"


def dtype_name(dtype: Any) -> str:
    name = np.dtype(dtype).name
    return "bool" if name == "bool" else name


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


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelFacts:
    """What the app reads from the model's TFLite metadata (TF-free)."""

    output_names: tuple[str, ...]  # metadata names in output order ("" without metadata)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]


def model_facts(data: bytes) -> ModelFacts:
    """Output names, normalization and labels, as the app reads them from the metadata.

    Models without metadata get no names, the default normalization and no labels.
    """
    view = read_metadata_view(data)
    norm = view.input_normalization()
    return ModelFacts(view.output_names, norm.mean, norm.std, view.category_labels)


class ModelRunner:
    """One interpreter on one model, used like the app uses it.

    Preprocessing and loading are detect.py's :class:`TFLiteDetector` (resize bilinear,
    no aspect kept; float: (x - mean) / std from the metadata; uint8: raw pixels).
    Outputs are read by ROLE, taken from the metadata names (``location``, ``category``,
    ``score``, ``number of detections``) as the app does; without metadata, from the
    postprocess op's ports.
    """

    def __init__(self, data: bytes, *, threads: int = 1, source: str = "the model") -> None:
        from liteship.validation.detect import TFLiteDetector

        from liteship.tflite_inspect import inspect_model

        inspect_model(data, source=source)  # typed refusal of corrupt files before the metadata is read
        self.data = data
        self.facts = model_facts(data)
        self.detector = TFLiteDetector(data, num_threads=threads, mean=_channels(self.facts.mean),
                                       std=_channels(self.facts.std))
        self.info = self.detector.info
        self._interpreter = self.detector._interpreter  # the one interpreter: no second copy of the model
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()
        self.roles = self._roles(source)

    def _roles(self, source: str) -> dict[OutputRole, int]:
        by_value = {r.value: r for r in OutputRole}
        named = [by_value.get(n) for n in self.facts.output_names]
        if len(named) == len(self._outputs) and all(named) and len(set(named)) == len(named):
            return {role: i for i, role in enumerate(named) if role is not None}
        return {role: i for i, role in enumerate(self.info.output_roles) if role is not None}

    @property
    def input_dtype(self) -> str:
        return dtype_name(self._input["dtype"])

    @property
    def input_shape(self) -> list[int]:
        return [int(x) for x in self._input["shape"]]

    @property
    def output_roles(self) -> list[str]:
        by_pos = {i: r.value for r, i in self.roles.items()}
        return [by_pos.get(i, "") for i in range(len(self._outputs))]

    def image_tensor(self, path: Path) -> np.ndarray:
        """Decode (EXIF upright, RGB) and preprocess an image file like the app."""
        from liteship.converter.calibration import load_rgb

        return self.detector.preprocess(load_rgb(path))

    def check_tensor(self, array: np.ndarray) -> np.ndarray:
        want_dtype, want_shape = self._input["dtype"], self.input_shape
        if array.dtype != want_dtype or list(array.shape) != want_shape:
            raise ValueError(
                f"input tensor is {dtype_name(array.dtype)} {list(array.shape)}, the model's input is "
                f"{dtype_name(want_dtype)} {want_shape}"
            )
        return array

    def invoke(self, tensor: np.ndarray) -> float:
        """Feed input 0 and run; returns the invoke time in ms."""
        self._interpreter.set_tensor(self._input["index"], tensor)
        t0 = time.perf_counter()
        self._interpreter.invoke()
        return (time.perf_counter() - t0) * 1000.0

    def raw_outputs(self) -> list[tuple[dict[str, Any], np.ndarray]]:
        return [(d, self._interpreter.get_tensor(d["index"]).copy()) for d in self._outputs]

    def _role_values(self, role: OutputRole) -> np.ndarray:
        detail = self._outputs[self.roles[role]]
        value = self._interpreter.get_tensor(detail["index"])
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if value.dtype != np.float32 and scale:
            return (value.astype(np.float32) - zero_point) * scale
        return value.astype(np.float32)

    def detections(self, score_threshold: float = 0.0, max_results: int = 100) -> list[dict[str, Any]]:
        """Detections of the last invoke: normalized [ymin, xmin, ymax, xmax], best first."""
        missing = [r.value for r in OutputRole if r not in self.roles]
        if missing:
            raise ValueError(f"the model has no output named {', '.join(missing)} (neither in its metadata nor "
                             "as a TFLite_Detection_PostProcess port)")
        boxes = self._role_values(OutputRole.BOXES).reshape(-1, 4)
        classes = self._role_values(OutputRole.CLASSES).reshape(-1)
        scores = self._role_values(OutputRole.SCORES).reshape(-1)
        raw_count = self._role_values(OutputRole.COUNT).reshape(-1)
        count = int(np.rint(raw_count[0])) if raw_count.size and np.isfinite(raw_count[0]) else 0
        count = max(0, min(count, len(boxes), len(classes), len(scores)))
        found = []
        for k in range(count):
            score = float(scores[k])
            if not score >= score_threshold:
                continue
            index = int(np.rint(classes[k])) if np.isfinite(classes[k]) else 0
            label = self.facts.labels[index] if 0 <= index < len(self.facts.labels) else None
            found.append({"box": [float(v) for v in boxes[k]], "class_index": max(index, 0), "label": label,
                          "score": score})
            if len(found) >= max_results:
                break
        return found


def _channels(values: tuple[float, ...]) -> tuple[float, ...]:
    return values if len(values) in (1, 3) else values[:1]


def tensor_dict(detail: dict[str, Any], value: np.ndarray) -> dict[str, Any]:
    little = value.astype(value.dtype.newbyteorder("<"), copy=False)
    return {
        "name": str(detail["name"]),
        "index": int(detail["index"]),
        "dtype": dtype_name(value.dtype),
        "shape": [int(x) for x in value.shape],
        "data_b64": base64.b64encode(little.tobytes()).decode("ascii"),
    }


def decode_tensor(tensor: dict[str, Any]) -> np.ndarray:
    """A protocol ``tensor`` object back to an array."""
    dtype = DTYPES[tensor["dtype"]]
    raw = base64.b64decode(tensor["data_b64"], validate=True)
    return np.frombuffer(raw, dtype=dtype).reshape(tensor["shape"])


def read_tensor_file(path: Path, dtype: str, shape: list[int]) -> np.ndarray:
    raw = Path(path).read_bytes()
    dt = DTYPES[dtype]
    expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(raw) != expected:
        raise ValueError(f"{Path(path).name} has {len(raw)} bytes, expected {expected} for {dtype} {shape}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


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
    errors = protocol._errors(doc, "request")
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


def _input_tensor(runner: ModelRunner, folder: Path, item: dict[str, Any]) -> np.ndarray:
    try:
        if item["kind"] == "tensor":
            return runner.check_tensor(read_tensor_file(folder / item["file"], item["dtype"], item["shape"]))
        return runner.image_tensor(folder / item["file"])
    except Exception as exc:  # noqa: BLE001 - a bad input is reported on that input only
        raise StageError.wrap("preprocess", exc) from None


def _run_delegate(runner: ModelRunner, folder: Path, request: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"delegate": "cpu", "status": "ok", "warmup_ms": [], "latency_ms": [], "outputs": []}
    threshold = float(request.get("score_threshold", 0.0))
    max_results = int(request.get("max_results", 100))
    want_tensors = bool(request.get("return_tensors", True))
    for position, item in enumerate(request["inputs"]):
        output: dict[str, Any] = {"input_id": item["id"]}
        try:
            tensor = _input_tensor(runner, folder, item)
            try:
                if position == 0:
                    result["warmup_ms"] = [round(runner.invoke(tensor), 4) for _ in range(request["warmup"])]
                    result["latency_ms"] = [round(runner.invoke(tensor), 4) for _ in range(request["iterations"])]
                    output["latency_ms"] = result["latency_ms"][0]
                else:
                    output["latency_ms"] = round(runner.invoke(tensor), 4)
                if want_tensors:
                    output["tensors"] = [tensor_dict(d, v) for d, v in runner.raw_outputs()]
                output["detections"] = runner.detections(threshold, max_results)
            except Exception as exc:  # noqa: BLE001
                raise StageError.wrap("run", exc) from None
        except StageError as exc:
            output = {"input_id": item["id"], "error": exc.to_dict()}
        result["outputs"].append(output)
    return result


def run_request(request_file: Path, *, producer_kind: str = "emulated") -> dict[str, Any]:
    """The result document for ``request_file`` (no file written, never raises)."""
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
        for delegate in request["delegates"]:
            if delegate in UNAVAILABLE_DELEGATES:
                result["delegates"].append({
                    "delegate": delegate, "status": "unavailable",
                    "error": {"stage": "delegate", "type": "java.lang.UnsupportedOperationException",
                              "message": UNAVAILABLE_DELEGATES[delegate]},
                })
                continue
            try:
                result["delegates"].append(_run_delegate(runner, folder, request))
            except Exception as exc:  # noqa: BLE001
                result["delegates"].append({"delegate": delegate, "status": "error",
                                            "error": StageError.wrap("run", exc).to_dict()})
    except Exception as exc:  # noqa: BLE001 - the app never dies on a bad request or model
        result["status"] = "error"
        result["error"] = StageError.wrap("request", exc).to_dict()
    result["finished_at"] = _now()
    return result


def serve(request_file: Path, *, producer_kind: str = "emulated") -> None:
    """Serve one request: ``result.json`` appears (atomically) next to ``request_file``.

    Never raises. A result that would break the schema (a bug) is replaced by an error
    result saying so; when even writing fails, nothing is left under the final name.
    """
    folder = Path(request_file).parent
    try:
        result = run_request(request_file, producer_kind=producer_kind)
        errors = protocol._errors(result, "result")
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
