"""Load a model with the real Task Library ObjectDetector, in a child process without TensorFlow.

The child blocks ``import tensorflow`` (``sys.modules["tensorflow"] = None``): tflite-support's
task pybinds clash with TensorFlow's in one process (``generic_type: cannot initialize type
"StatusCode"``), and ``optional_dependencies`` would otherwise import TensorFlow just for its
doc decorators. It creates an ``ObjectDetector`` (the same C++ ``ObjectDetector`` that Android's
task-vision library runs) and calls ``detect`` on a test image: a seeded synthetic shapes photo
from :mod:`liteship.demo.synth`, or the image passed to :func:`run`.

Making tflite-support 0.4.4's Python bindings work under the installed protobuf (7.x), in the
child only, without touching site-packages:

* its ``*_pb2`` modules are old gencode -> ``protocompat.install(["tensorflow_lite_support"])``
  rebuilds them in memory (otherwise ``Descriptors cannot be created directly``);
* its bundled pybind11_protobuf casters, on first use, look up
  ``google.protobuf.message_factory.MessageFactory(pool).GetPrototype``, a method removed from
  current protobuf. The lookup fails (``AttributeError: 'MessageFactory' object has no attribute
  'GetPrototype'`` on stderr), the casters' global state is left empty and then every message is
  rejected: ``create_from_options(): incompatible function arguments``. The child adds
  ``MessageFactory.GetPrototype`` back as ``message_factory.GetMessageClass(descriptor)`` -- what
  the removed method returned -- before the pybind module is imported. With it the casters
  convert the Python messages by serialization (upb messages are not C++ messages) and the
  C++ results back through the default descriptor pool.

Outcomes: ``ok`` (created and detected), failure (the Task Library refused the model: its own
message names the reason, e.g. ``Object detection models require TFLite Model Metadata but none
was found``), or ``skipped`` when the Python bindings themselves cannot run here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship import child

TIMEOUT_S = 120

_CHILD = r"""
import json, sys, time
sys.modules["tensorflow"] = None  # never TensorFlow in this process
def out(**kw):
    from liteship.child import emit
    emit("LITESHIP_TASK", **kw); sys.exit(0)
def first_line(exc, n=300):
    text = str(exc).strip()
    return (text.splitlines() or [""])[0][:n]
model, max_results, image_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    from liteship import protocompat, tflsupport
    tflsupport._preload_libusb()
    protocompat.install(["tensorflow_lite_support"])
    from google.protobuf import message_factory
    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        # pybind11_protobuf (bundled in tflite-support 0.4.4) needs this method; protobuf >= 5
        # removed it. GetMessageClass is what it returned.
        message_factory.MessageFactory.GetPrototype = (
            lambda self, descriptor: message_factory.GetMessageClass(descriptor))
    import numpy as np
    from tensorflow_lite_support.python.task.core import base_options as bo
    from tensorflow_lite_support.python.task.processor.proto import detection_options_pb2
    from tensorflow_lite_support.python.task.vision import object_detector
    from tensorflow_lite_support.python.task.vision.core import tensor_image
except Exception as exc:
    out(status="env", message=f"cannot import the Task Library: {type(exc).__name__}: {first_line(exc, 200)}")
try:
    if image_path:
        image = tensor_image.TensorImage.create_from_file(image_path)
        image_name = image_path
    else:
        from liteship.demo import synth
        sample = next(iter(synth.generate(0, 1, "task")))
        image = tensor_image.TensorImage.create_from_array(np.asarray(sample.image.convert("RGB"), dtype=np.uint8))
        image_name = "a synthetic shapes image"
except Exception as exc:
    out(status="env", message=f"cannot prepare the test image: {type(exc).__name__}: {first_line(exc, 200)}")
opts = object_detector.ObjectDetectorOptions(
    base_options=bo.BaseOptions(file_name=model),
    detection_options=detection_options_pb2.DetectionOptions(max_results=max_results))
t0 = time.perf_counter()
try:
    det = object_detector.ObjectDetector.create_from_options(opts)
except TypeError as exc:
    out(status="env", message="Task Library Python bindings unusable here: " + first_line(exc, 200))
except Exception as exc:
    out(status="fail", stage="load", error=first_line(exc), kind=type(exc).__name__,
        load_s=time.perf_counter() - t0)
t1 = time.perf_counter()
try:
    result = det.detect(image)
except Exception as exc:
    out(status="fail", stage="detect", error=first_line(exc), kind=type(exc).__name__,
        load_s=t1 - t0, detect_s=time.perf_counter() - t1)
t2 = time.perf_counter()
out(status="ok", detections=len(result.detections), image=image_name, load_s=t1 - t0, detect_s=t2 - t1,
    best=[{"label": (d.categories[0].category_name if d.categories else ""),
           "score": float(d.categories[0].score) if d.categories else 0.0} for d in result.detections[:3]])
"""


@dataclass(frozen=True)
class TaskResult:
    """Outcome of :func:`run`.

    ``ok``: the ObjectDetector was created and ``detect`` ran. ``skipped``: the check could not
    run here (``message`` says why). Otherwise a failure: ``error`` is the Task Library's own
    message and ``stage`` says whether loading (``"load"``) or ``detect`` refused the model.
    ``found`` is the short value the lint check reports.
    """

    ok: bool
    skipped: bool
    message: str
    found: Any = None
    loaded: bool = False
    error: str | None = None
    stage: str | None = None
    detections: int | None = None
    image: str | None = None
    load_s: float | None = None
    detect_s: float | None = None
    elapsed_s: float | None = None


def run(path: Path | str, max_results: int = 3, image: Path | str | None = None) -> TaskResult:
    """Create the Task Library ObjectDetector for ``path`` in a child process and detect once.

    ``image``: a JPEG/PNG to detect on; default a seeded synthetic shapes image.
    """
    res = child.run_python(_CHILD, [str(path), str(max_results), str(image) if image else ""],
                           timeout_s=TIMEOUT_S, marker="LITESHIP_TASK")
    elapsed = res.elapsed_s
    if res.outcome == "timeout":
        return TaskResult(False, False, f"the Task Library did not finish in {TIMEOUT_S} s", "timeout",
                          elapsed_s=elapsed)
    if not res.started:
        return TaskResult(False, True, f"cannot start the check: {res.stderr}")
    if res.payload is None:
        # no verdict line: the child crashed inside native code while loading the model
        tail = res.last_stderr_line()
        return TaskResult(False, False, f"the Task Library crashed (exit {res.returncode}): {tail}", "crash",
                          error=tail, elapsed_s=elapsed)
    data = res.payload
    status = data["status"]
    if status == "ok":
        n = int(data["detections"])
        best = ", ".join(f"{b['label'] or '?'} {b['score']:.2f}" for b in data.get("best", []))
        msg = (f"loaded in {data['load_s'] * 1000:.0f} ms; {n} detection{'s' if n != 1 else ''} on "
               f"{data['image']} in {data['detect_s'] * 1000:.0f} ms" + (f" (best: {best})" if best else ""))
        return TaskResult(True, False, msg, "loaded", loaded=True, detections=n, image=data["image"],
                          load_s=data["load_s"], detect_s=data["detect_s"], elapsed_s=elapsed)
    if status == "env":
        return TaskResult(False, True, data["message"], elapsed_s=elapsed)
    stage, error = data.get("stage", "load"), data.get("error", "")
    if stage == "load":
        msg = f"ObjectDetector refused the model: {data.get('kind', 'Error')}: {error}"
        return TaskResult(False, False, msg, "refused", error=error, stage=stage,
                          load_s=data.get("load_s"), elapsed_s=elapsed)
    msg = f"detect failed: {data.get('kind', 'Error')}: {error}"
    return TaskResult(False, False, msg, "detect failed", loaded=True, error=error, stage=stage,
                      load_s=data.get("load_s"), detect_s=data.get("detect_s"), elapsed_s=elapsed)
