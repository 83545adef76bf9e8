"""The host <-> app validation protocol: paths on the device, request/result validation.

The JSON Schema in ``schema/validation-protocol.schema.json`` is the single definition;
the Android app ships the same file as an asset and the emulated app validates with it.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from liteship.errors import DeviceResultProblem, UsageProblem

#: applicationId of android_app (the debug build carries the validation entry point)
APP_PACKAGE = "dev.liteship.demo"
#: the validation activity, exported only in the debug build (src/debug/AndroidManifest.xml)
VALIDATION_ACTIVITY = f"{APP_PACKAGE}/.ValidationActivity"
#: intent extra naming the run folder's request.json (absolute device path)
REQUEST_EXTRA = "request"
#: what the host can write and the app can read: getExternalFilesDir(null)
APP_FILES_DIR = f"/sdcard/Android/data/{APP_PACKAGE}/files"
RUNS_DIR = f"{APP_FILES_DIR}/liteship/runs"
REQUEST_NAME = "request.json"
RESULT_NAME = "result.json"
#: the app writes here first, then renames to RESULT_NAME (the host never reads it)
RESULT_TMP_NAME = "result.json.tmp"

#: the engines the app runs a model with, and the accelerators each accepts (the schema's
#: engine_run; NNAPI is the interpreter's only, and deprecated since Android 15)
ENGINE_ACCELERATORS: dict[str, tuple[str, ...]] = {
    "interpreter": ("cpu", "gpu", "nnapi"),
    "compiled": ("cpu", "gpu"),
    "mediapipe": ("cpu", "gpu"),
}
ENGINES = tuple(ENGINE_ACCELERATORS)
INTERPRETER = "interpreter"

REQUEST_SCHEMA = "liteship.device.request"
RESULT_SCHEMA = "liteship.device.result"
VERSION = 1


def run_dir(run_id: str) -> str:
    return f"{RUNS_DIR}/{run_id}"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files("liteship.device").joinpath(
        "schema/validation-protocol.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=2)
def _validator(defn: str) -> jsonschema.Draft202012Validator:
    full = schema()
    sub = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": f"#/$defs/{defn}"}
    return jsonschema.Draft202012Validator(sub)


def _errors(doc: Any, defn: str) -> list[str]:
    errs = sorted(_validator(defn).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errs[:5]]


def result_errors(doc: Any) -> list[str]:
    """Every way ``doc`` breaks the result schema (empty: it is a valid result)."""
    return _errors(doc, "result")


def request_errors(doc: Any) -> list[str]:
    """Schema errors, plus what JSON Schema cannot say: each engine at most once."""
    errs = _errors(doc, "request")
    if not errs and isinstance(doc, dict) and "engines" in doc:
        names = [e["engine"] for e in doc["engines"]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            errs.append(f"engines: {', '.join(twice)} listed more than once")
    return errs


def runs_of(request: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(engine, accelerators) in request order; a v1 request's delegates are the interpreter's."""
    if "engines" in request:
        return [(e["engine"], list(e["accelerators"])) for e in request["engines"]]
    return [(INTERPRETER, list(request["delegates"]))]


def validate_request(doc: Any) -> None:
    """Raise UsageProblem when the request we are about to push breaks the schema."""
    errs = request_errors(doc)
    if errs:
        raise UsageProblem("the validation request breaks the protocol schema: " + "; ".join(errs))


def validate_result(doc: Any, *, source: str = "result.json") -> None:
    """Raise DeviceResultProblem when a result pulled from the device breaks the schema."""
    errs = _errors(doc, "result")
    if errs:
        raise DeviceResultProblem(
            f"{source} breaks the protocol schema (liteship.device.result v1): " + "; ".join(errs),
            hint="the app on the device may be older or newer than this liteship; reinstall it with --apk")


def parse_result(raw: bytes, *, source: str = "result.json") -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeviceResultProblem(
            f"{source} is not valid JSON ({e}); expected the app's result document",
            hint="the app may have crashed while writing it; rerun the deploy") from None
    validate_result(doc, source=source)
    return doc


# ---------------------------------------------------------------------------- tensors on the wire

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


def dtype_name(dtype: Any) -> str:
    return np.dtype(dtype).name


def tensor_dict(name: str, index: int, value: np.ndarray) -> dict[str, Any]:
    """A protocol ``tensor`` object: little-endian bytes, base64."""
    little = value.astype(value.dtype.newbyteorder("<"), copy=False)
    return {
        "name": str(name),
        "index": int(index),
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
    """A ``kind: tensor`` input file (raw little-endian bytes) as an array in native order."""
    raw = Path(path).read_bytes()
    dt = DTYPES[dtype]
    expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(raw) != expected:
        raise ValueError(f"{Path(path).name} has {len(raw)} bytes, expected {expected} for {dtype} {shape}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
