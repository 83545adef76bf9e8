"""MediaPipe Tasks ObjectDetector (pip ``mediapipe``: the same C++ graph as tasks-vision on
Android), in a child process without TensorFlow.

``import mediapipe`` would import TensorFlow when it is installed (its optional doc
decorators; about +5 s): the child blocks it. Options as the Python API's defaults except
``max_results=-1`` (all detections, to compare every one): ``score_threshold`` 0.0. Results:
pixel boxes (origin, width, height as ints) and categories; when the model has labels each
category has ``index=None`` and a ``category_name``, so detections are compared by name.
Identical boxes of different classes come back merged into one detection with several
categories (DetectionsDeduplicateCalculator): they are flattened again here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from liteship.validation.runtimes import runner
from liteship.validation.runtimes.compare import payload_detections

MARKER = "LITESHIP_MEDIAPIPE"
TIMEOUT_S = 120
PER_JOB_S = 30
CONVENTION = "mediapipe"

_CHILD = f"MARKER = {MARKER!r}\n" + runner.CHILD_PRELUDE + r"""
sys.modules["tensorflow"] = None  # mediapipe imports it when present; not needed
try:
    import numpy as np
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core import base_options
except Exception as exc:
    env_failure(f"cannot import MediaPipe: {type(exc).__name__}: {first_line(exc, 200)}")

def run_one(job, images, inputs):
    t0 = time.perf_counter()
    try:
        options = vision.ObjectDetectorOptions(
            base_options=base_options.BaseOptions(model_asset_path=job["model"]), max_results=-1)
        detector = vision.ObjectDetector.create_from_options(options)
    except Exception as exc:
        return {"status": "refused", "stage": "load", "kind": type(exc).__name__, "error": first_line(exc),
                "load_s": time.perf_counter() - t0}
    t1 = time.perf_counter()
    per_image = []
    try:
        for rgb in images:
            result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
            dets = []
            for d in result.detections:
                b = d.bounding_box
                for c in d.categories:
                    name = c.category_name if c.category_name else ("" if c.index is None else str(c.index))
                    dets.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height, name, float(c.score)])
            per_image.append(dets)
    except Exception as exc:
        return {"status": "failed", "stage": "run", "kind": type(exc).__name__, "error": first_line(exc),
                "load_s": t1 - t0, "images_done": len(per_image)}
    finally:
        try:
            detector.close()
        except Exception:
            pass
    return {"status": "ok", "detections": per_image, "load_s": t1 - t0, "run_s": time.perf_counter() - t1}

job_loop(run_one)
"""


def available() -> str | None:
    """None when MediaPipe can be imported here, else why not."""
    if importlib.util.find_spec("mediapipe") is None:
        return "MediaPipe is not installed (pip install mediapipe)"
    return None


def run(jobs: Sequence[runner.Job]) -> list[runner.JobOutcome]:
    return runner.run_jobs(_CHILD, MARKER, jobs, timeout_s=TIMEOUT_S, per_job_s=PER_JOB_S)


#: the child's per-image [x0, y0, x1, y1, label, score] rows as Dets (pixels)
detections = payload_detections
