"""The TFLite Task Library ObjectDetector (tflite-support 0.4.4: the same C++ ``ObjectDetector``
Android's task-vision library runs), in a child process without TensorFlow.

The child blocks ``import tensorflow`` (``sys.modules["tensorflow"] = None``): tflite-support's
task pybinds clash with TensorFlow's in one process (``generic_type: cannot initialize type
"StatusCode"``), and ``optional_dependencies`` would otherwise import TensorFlow just for its
doc decorators.

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

Options: the defaults (all detections above the model's score threshold). Boxes come back
as integer pixels (origin truncated, size rounded); classes by index and, with labels, name.
A refused model gives the Task Library's own message, e.g. ``Object detection models require
TFLite Model Metadata but none was found``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from liteship.validation.runtimes import runner
from liteship.validation.runtimes.compare import payload_detections

MARKER = "LITESHIP_TASK"
TIMEOUT_S = 120
PER_JOB_S = 30
CONVENTION = "task-library"

_CHILD = f"MARKER = {MARKER!r}\n" + runner.CHILD_PRELUDE + r"""
sys.modules["tensorflow"] = None  # never TensorFlow in this process
try:
    from liteship import protocompat, tflsupport
    tflsupport.preload_libusb()
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
    env_failure(f"cannot import the Task Library: {type(exc).__name__}: {first_line(exc, 200)}")

def run_one(job, images, inputs):
    opts = object_detector.ObjectDetectorOptions(
        base_options=bo.BaseOptions(file_name=job["model"]),
        detection_options=detection_options_pb2.DetectionOptions())
    t0 = time.perf_counter()
    try:
        det = object_detector.ObjectDetector.create_from_options(opts)
    except TypeError as exc:
        env_failure("Task Library Python bindings unusable here: " + first_line(exc, 200))
    except Exception as exc:
        return {"status": "refused", "stage": "load", "kind": type(exc).__name__, "error": first_line(exc),
                "load_s": time.perf_counter() - t0}
    t1 = time.perf_counter()
    per_image = []
    try:
        for rgb in images:
            result = det.detect(tensor_image.TensorImage.create_from_array(np.ascontiguousarray(rgb)))
            dets = []
            for d in result.detections:
                b = d.bounding_box
                for c in d.categories:
                    name = c.category_name or str(c.index)
                    dets.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height, name, float(c.score)])
            per_image.append(dets)
    except Exception as exc:
        return {"status": "failed", "stage": "run", "kind": type(exc).__name__, "error": first_line(exc),
                "load_s": t1 - t0, "images_done": len(per_image)}
    return {"status": "ok", "detections": per_image, "load_s": t1 - t0, "run_s": time.perf_counter() - t1}

job_loop(run_one)
"""


def available() -> str | None:
    if importlib.util.find_spec("tensorflow_lite_support") is None:
        return "the Task Library is not installed (tflite-support)"
    return None


def run(jobs: Sequence[runner.Job]) -> list[runner.JobOutcome]:
    return runner.run_jobs(_CHILD, MARKER, jobs, timeout_s=TIMEOUT_S, per_job_s=PER_JOB_S)


#: the child's per-image [x0, y0, x1, y1, label, score] rows as Dets (pixels)
detections = payload_detections
