"""report.json: the versioned, machine-readable contract of a liteship run.

Schema ``liteship.report`` version 1 (see docs/report.md). Later stages (parity, lint,
device) add keys; they never change the meaning of existing ones.
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

from liteship import __version__, atomic

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
    #: where each step came from (liteship/stepcache.py): {"dir", "steps": {step: hit|miss|rebuilt|off}}
    cache: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)

    def to_dict(self, status: str) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "status": status,
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
        }

    def write(self, status: str) -> Path:
        """report.json and junit.xml (same content), each written atomically."""
        from liteship.validation.html import write_html_safely
        from liteship.validation.junit import junit_xml

        data = self.to_dict(status)
        atomic.write_text(self.out_dir / "junit.xml", junit_xml(data))
        write_html_safely(data, self.out_dir)  # report.html; never raises (a fallback page on a renderer bug)
        return atomic.write_json(self.out_dir / "report.json", data)
