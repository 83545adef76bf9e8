"""The host <-> app validation protocol: paths on the device, request/result validation.

The JSON Schema in ``schema/validation-protocol.schema.json`` is the single definition;
the Android app ships the same file as an asset and the emulated app validates with it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

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


def validate_request(doc: Any) -> None:
    """Raise UsageProblem when the request we are about to push breaks the schema."""
    errs = _errors(doc, "request")
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
