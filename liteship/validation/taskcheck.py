"""Load a model with the real Task Library ObjectDetector, in a child process without TensorFlow.

The child blocks ``import tensorflow`` (``sys.modules["tensorflow"] = None``): tflite-support's
task pybinds clash with TensorFlow's in one process (``generic_type: cannot initialize type
"StatusCode"``), and ``optional_dependencies`` would otherwise import TensorFlow just for its
doc decorators. It creates an ``ObjectDetector`` and runs ``detect`` on a generated 64x48 image.

Outcomes: ``ok`` (created and detected), failure (the Task Library refused the model: its
message names the reason, e.g. missing metadata or int8 input), or ``skipped`` when the Python
bindings themselves cannot run here. In this project's locked environment they cannot:
tflite-support 0.4.4's pybind11_protobuf casters do not accept messages of the installed
protobuf (7.x) -- ``create_from_options(): incompatible function arguments`` -- so the check
reports ``skip`` with that reason instead of a false failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_S = 120

_CHILD = r"""
import json, sys
sys.modules["tensorflow"] = None  # never TensorFlow in this process
def out(**kw):
    print("LITESHIP_TASK " + json.dumps(kw)); sys.exit(0)
try:
    from liteship import protocompat, tflsupport
    tflsupport._preload_libusb()
    protocompat.install(["tensorflow_lite_support"])
    import numpy as np
    from tensorflow_lite_support.python.task.core import base_options as bo
    from tensorflow_lite_support.python.task.processor.proto import detection_options_pb2
    from tensorflow_lite_support.python.task.vision import object_detector
    from tensorflow_lite_support.python.task.vision.core import tensor_image
except Exception as exc:
    out(status="env", message=f"cannot import the Task Library: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
opts = object_detector.ObjectDetectorOptions(
    base_options=bo.BaseOptions(file_name=sys.argv[1]),
    detection_options=detection_options_pb2.DetectionOptions(max_results=int(sys.argv[2])))
try:
    det = object_detector.ObjectDetector.create_from_options(opts)
except TypeError as exc:
    out(status="env", message="Task Library Python bindings unusable here: " + str(exc).splitlines()[0][:200])
except Exception as exc:
    out(status="fail", message=f"ObjectDetector refused the model: {type(exc).__name__}: {str(exc)[:300]}")
rng = np.random.default_rng(0)
image = tensor_image.TensorImage.create_from_array(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
try:
    result = det.detect(image)
except Exception as exc:
    out(status="fail", message=f"detect failed: {type(exc).__name__}: {str(exc)[:300]}")
out(status="ok", detections=len(result.detections))
"""


@dataclass(frozen=True)
class TaskResult:
    ok: bool
    skipped: bool
    message: str
    found: Any = None


def run(path: Path | str, max_results: int = 3) -> TaskResult:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(max_results)],
            capture_output=True, text=True, timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return TaskResult(False, False, f"the Task Library did not finish in {TIMEOUT_S} s", "timeout")
    except OSError as exc:
        return TaskResult(False, True, f"cannot start the check: {exc}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("LITESHIP_TASK ")), None)
    if line is None:
        # no verdict line: the child crashed inside native code while loading the model
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return TaskResult(False, False, f"the Task Library crashed (exit {proc.returncode}): {tail}", "crash")
    data = json.loads(line[len("LITESHIP_TASK "):])
    if data["status"] == "ok":
        return TaskResult(True, False, f"{data['detections']} detections on a random image", "loaded")
    if data["status"] == "env":
        return TaskResult(False, True, data["message"])
    return TaskResult(False, False, data["message"], "refused")
