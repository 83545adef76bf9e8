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


def _dist(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {
        "liteship": __version__,
        "python": platform.python_version(),
        "tensorflow": _dist("tensorflow"),
        "tflite_converter": _dist("tensorflow"),  # the converter ships inside TensorFlow
        "ai_edge_litert": _dist("ai-edge-litert"),
        "od_api": _dist("tf-models-research-object-detection"),
        "tflite_support": _dist("tflite-support"),
        "protobuf": _dist("protobuf"),
        "numpy": _dist("numpy"),
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
