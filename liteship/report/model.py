"""report.json: the versioned, machine-readable contract of a liteship run.

Schema ``liteship.report`` version 1 (see docs/report.md). Later stages (parity, lint,
device) add keys; they never change the meaning of existing ones. The stages fill a
:class:`Report`; :func:`liteship.report.write_reports` renders it (JSON, JUnit, HTML).
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from liteship import __version__
from liteship.errors import CalibrationProblem, EnvironmentProblem, LiteshipError

SCHEMA = "liteship.report"
SCHEMA_VERSION = 1


def dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {
        "liteship": __version__,
        "python": platform.python_version(),
        "tensorflow": dist_version("tensorflow"),
        "tflite_converter": dist_version("tensorflow"),  # the converter ships inside TensorFlow
        "ai_edge_litert": dist_version("ai-edge-litert"),
        "od_api": dist_version("tf-models-research-object-detection"),
        "tflite_support": dist_version("tflite-support"),
        "protobuf": dist_version("protobuf"),
        "numpy": dist_version("numpy"),
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Report:
    command: list[str]
    out_dir: Path
    inputs: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    #: the device stage (`deploy`, `run --device`): one entry per device, see docs/report.md
    devices: list[dict[str, Any]] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: where each step came from (liteship/stepcache.py): {"dir", "steps": {step: hit|miss|rebuilt|off}}
    cache: dict[str, Any] | None = None
    #: desktop latency (liteship/validation/latency.py): runtime, CPU, thread counts, the note that
    #: it is not phone latency; each variant's figures are in its ``latency``
    latency: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)

    def add_error(self, exc: LiteshipError) -> None:
        self.errors.append(exc.to_dict())

    def to_dict(self, status: str, exit_code: int = 0) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "status": status,
            "exit_code": exit_code,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "wall_seconds": round(time.time() - self.started, 3),
            "command": self.command,
            "platform": {"system": platform.system(), "machine": platform.machine(), "python": sys.version.split()[0]},
            "versions": versions(),
            "inputs": self.inputs,
            "labels": self.labels,
            "export": self.export,
            "calibration": self.calibration,
            "variants": self.variants,
            "validation": self.validation,
            "devices": self.devices,
            "errors": self.errors,
            "cache": self.cache,
            "latency": self.latency,
        }

    def write(self, status: str, exit_code: int = 0, overlays: Any = None) -> dict[str, Any]:
        """Render report.json, junit.xml and report.html (each atomically); returns the dict."""
        from liteship.report.write import write_reports

        return write_reports(self.to_dict(status, exit_code), self.out_dir, overlays)


def status_of(error: LiteshipError | None, *, partial: bool = False) -> str:
    """``ok``; ``partial`` (int8 refused, the rest written); ``fail`` (a gate failed: the error
    names failed or skipped checks); ``error`` (a stage could not complete)."""
    if error is None:
        return "partial" if partial else "ok"
    if isinstance(error, EnvironmentProblem):  # a gating check could not run: no verdict
        return "error"
    if error.failed_checks or 30 <= error.exit_code <= 33:
        return "fail"
    return "partial" if isinstance(error, CalibrationProblem) else "error"
