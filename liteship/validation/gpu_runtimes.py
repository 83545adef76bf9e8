"""The two consumers of the ``gpu`` variant, each run in a child process (liteship/child.py).

* MediaPipe Tasks ``ObjectDetector`` (pip ``mediapipe``, the same C++ graph as
  ``com.google.mediapipe:tasks-vision`` on Android): loads the 2-output model with its
  ``DETECTOR_METADATA``, decodes and runs NMS itself. A child because ``import mediapipe``
  pulls in OpenCV, matplotlib and TensorFlow, and a MediaPipe CHECK failure aborts.
* LiteRT 2.x ``CompiledModel`` (``ai_edge_litert.compiled_model``), the app flow
  ``from_file`` -> ``create_input_buffers`` / ``create_output_buffers`` -> ``run_by_index``:
  on CPU here; the GPU accelerator is tried too and reported (it cannot start without a
  GPU: ``No adapters found``). A child because native aborts must not kill liteship.

Both measure only; what their outputs mean is judged in :mod:`liteship.validation.gpu_parity`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship import child

#: what LiteRT's WebGPU accelerator logs on a machine without a GPU
NO_GPU = "No adapters found"
MEDIAPIPE_TIMEOUT_S = 600
COMPILED_TIMEOUT_S = 600

MEDIAPIPE_CHILD = r"""
import json, sys
from liteship.child import emit
M = "LITESHIP_MEDIAPIPE"
args = json.load(open(sys.argv[1]))
# mediapipe imports TensorFlow only if present (docgen helpers, tf.io.gfile; not a dependency):
# blocking it saves the child a multi-second TensorFlow import
sys.modules["tensorflow"] = None
try:
    import numpy as np
    from PIL import Image
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    version = __import__("importlib.metadata").metadata.version("mediapipe")
except Exception as exc:
    emit(M, status="env", message=type(exc).__name__ + ": " + str(exc)[:300]); sys.exit(0)
try:
    options = vision.ObjectDetectorOptions(
        base_options=BaseOptions(model_asset_path=args["model"]),
        score_threshold=args["score_threshold"], max_results=args["max_results"])
    detector = vision.ObjectDetector.create_from_options(options)
except Exception as exc:
    emit(M, status="load_failed", version=version, message=type(exc).__name__ + ": " + str(exc)[:500]); sys.exit(0)
labels = args["labels"]
out = []
try:
    for path in args["images"]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        boxes, classes, scores = [], [], []
        for d in result.detections:
            b, c = d.bounding_box, d.categories[0]
            boxes.append([b.origin_y / h, b.origin_x / w, (b.origin_y + b.height) / h, (b.origin_x + b.width) / w])
            # with labels MediaPipe leaves index None: the class is found by name
            classes.append(c.index if c.index is not None else (labels.index(c.category_name) if c.category_name in labels else -1))
            scores.append(c.score)
        out.append({"boxes": boxes, "classes": classes, "scores": scores})
except Exception as exc:
    emit(M, status="detect_failed", version=version, message=type(exc).__name__ + ": " + str(exc)[:500]); sys.exit(0)
finally:
    detector.close()
emit(M, status="ok", version=version, detections=out)
"""

COMPILED_CHILD = r"""
import json, sys
import numpy as np
from liteship.child import emit
M = "LITESHIP_COMPILED"
model, inputs, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    version = __import__("importlib.metadata").metadata.version("ai-edge-litert")
except Exception as exc:
    emit(M, status="env", message=type(exc).__name__ + ": " + str(exc)[:300]); sys.exit(0)
gpu = "not tried"
try:
    CompiledModel.from_file(model, hardware_accel=HardwareAccelerator.GPU)
    gpu = "ok"
except Exception as exc:
    gpu = type(exc).__name__ + ": " + " ".join(str(exc).split())[:300]
try:
    m = CompiledModel.from_file(model, hardware_accel=HardwareAccelerator.CPU)
    sig = m.get_signature_by_index(0)
    details = m.get_output_tensor_details(sig["key"])
    ins, outs = m.create_input_buffers(0), m.create_output_buffers(0)
except Exception as exc:
    emit(M, status="load_failed", version=version, gpu=gpu, message=type(exc).__name__ + ": " + str(exc)[:500]); sys.exit(0)
x = np.load(inputs)
results = {name: [] for name in sig["outputs"]}
try:
    for i in range(len(x)):
        ins[0].write(np.ascontiguousarray(x[i]))
        m.run_by_index(0, ins, outs)
        for name, buf in zip(sig["outputs"], outs):
            shape = details[name]["shape"]
            results[name].append(buf.read(int(np.prod(shape)), np.float32).reshape(shape))
except Exception as exc:
    emit(M, status="run_failed", version=version, gpu=gpu, message=type(exc).__name__ + ": " + str(exc)[:500]); sys.exit(0)
for name, values in results.items():
    np.save(f"{out_dir}/{name}.npy", np.stack(values) if values else np.zeros((0,), np.float32))
emit(M, status="ok", version=version, gpu=gpu, outputs=sig["outputs"])
"""


@dataclass(frozen=True)
class MediaPipeRun:
    ran: bool
    loaded: bool
    #: why it did not run (env) or the MediaPipe error text (load/detect failed)
    message: str = ""
    version: str | None = None
    #: per image: boxes [N,4] normalized (ymin, xmin, ymax, xmax), classes [N], scores [N]
    detections: list[dict[str, np.ndarray]] = field(default_factory=list)


def run_mediapipe(
    model_path: Path, images: list[np.ndarray], labels: list[str], *, score_threshold: float, max_results: int
) -> MediaPipeRun:
    """The real ObjectDetector on ``images`` (uint8 RGB; MediaPipe stretches each to the
    model's input size, as it does in apps)."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="liteship-mediapipe-") as tmp:
        paths = []
        for i, rgb in enumerate(images):
            path = Path(tmp) / f"{i:05d}.png"  # lossless: the child sees the very pixels
            Image.fromarray(rgb, "RGB").save(path)
            paths.append(str(path))
        args = Path(tmp) / "args.json"
        args.write_text(json.dumps({"model": str(model_path), "images": paths, "labels": labels,
                                    "score_threshold": score_threshold, "max_results": max_results}))
        res = child.run_python(MEDIAPIPE_CHILD, [str(args)], timeout_s=MEDIAPIPE_TIMEOUT_S, marker="LITESHIP_MEDIAPIPE")
    data = res.payload
    if data is None:
        return MediaPipeRun(False, False, f"the MediaPipe child {res.describe()}")
    if data["status"] == "env":
        return MediaPipeRun(False, False, "MediaPipe is not available: " + data["message"])
    if data["status"] != "ok":
        return MediaPipeRun(True, data["status"] != "load_failed", data["message"], data.get("version"))
    dets = [{"boxes": np.asarray(d["boxes"], np.float32).reshape(-1, 4), "classes": np.asarray(d["classes"], np.int64),
             "scores": np.asarray(d["scores"], np.float32)} for d in data["detections"]]
    return MediaPipeRun(True, True, "", data.get("version"), dets)


@dataclass(frozen=True)
class CompiledRun:
    ran: bool
    ok: bool
    message: str = ""
    version: str | None = None
    #: what the GPU accelerator said ("ok" or the error text)
    gpu: str = ""
    #: output name -> [images, *shape]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def run_compiled(model_path: Path, inputs: np.ndarray) -> CompiledRun:
    """``CompiledModel`` on CPU over ``inputs`` [images, 1, H, W, 3] (float32, normalized)."""
    with tempfile.TemporaryDirectory(prefix="liteship-compiled-") as tmp:
        np.save(Path(tmp) / "inputs.npy", np.asarray(inputs, dtype=np.float32))
        res = child.run_python(COMPILED_CHILD, [str(model_path), str(Path(tmp) / "inputs.npy"), tmp],
                               timeout_s=COMPILED_TIMEOUT_S, marker="LITESHIP_COMPILED")
        data = res.payload
        if data is None:
            return CompiledRun(False, False, f"the CompiledModel child {res.describe()}")
        if data.get("gpu") not in (None, "ok") and NO_GPU in res.stderr:  # LiteRT logs the cause on stderr only
            data["gpu"] = f"{NO_GPU} (no GPU on this machine): {data['gpu']}"
        if data["status"] == "env":
            return CompiledRun(False, False, "ai-edge-litert's CompiledModel is not available: " + data["message"])
        if data["status"] != "ok":
            return CompiledRun(True, False, data["message"], data.get("version"), data.get("gpu", ""))
        outputs = {name: np.load(Path(tmp) / f"{name}.npy") for name in data["outputs"]}
    return CompiledRun(True, True, "", data.get("version"), data.get("gpu", ""), outputs)


def as_dict(run: MediaPipeRun | CompiledRun) -> dict[str, Any]:
    d = {k: getattr(run, k) for k in ("ran", "message", "version")}
    d["loaded" if isinstance(run, MediaPipeRun) else "ok"] = run.loaded if isinstance(run, MediaPipeRun) else run.ok
    if isinstance(run, CompiledRun):
        d["gpu_accelerator"] = run.gpu
    return d
