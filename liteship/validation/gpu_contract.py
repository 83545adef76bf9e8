"""The ``mediapipe`` contract for the 2-output (raw heads) form, and which contracts gate the
``gpu`` variant.

MediaPipe Tasks' ObjectDetector rules for a model without ``TFLite_Detection_PostProcess``
(``detection_postprocessing_graph.cc``, ``tensors_to_detections_calculator.cc``), each a
check with the consumer's own error text where it has one. The real ObjectDetector then
loads the model and detects on a grey image (:mod:`liteship.validation.gpu_runtimes`).

The other contracts (task-library, litert-sample, legacy-detect, bundled-app) read the
four postprocess outputs: they are linted on the gpu variant like on every variant, and
fail it with their reason; they do not gate it (:func:`gating_contracts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liteship.converter import mediapipe_metadata as mpmd
from liteship.tflite_inspect import ModelInfo, inspect_model
from liteship.types import Check, Variant, Verdict
from liteship.validation import lint

NAME = "mediapipe"


def gating_contracts(variant: str, contracts: tuple[str, ...]) -> tuple[str, ...]:
    """The contracts whose failures fail ``run`` for ``variant``: the gpu variant exists for
    MediaPipe (and CompiledModel, checked in its parity), the others for the gates' list."""
    return (NAME,) if variant == Variant.GPU.value else contracts


def _pass(cid: str, expected: Any, found: Any, message: str = "") -> Check:
    return Check(cid, Verdict.PASS, expected, found, message)


def _fail(cid: str, expected: Any, found: Any, message: str, fix: str) -> Check:
    return Check(cid, Verdict.FAIL, expected, found, message, fix)


def _output_metadata(model: bytes, info: ModelInfo) -> list[dict[str, Any]]:
    """Per output-metadata entry: name, bounding-box properties, label files."""
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as mdfb

    from liteship.tflite_inspect import TFLITE_METADATA_NAME, _Reader

    if not info.has_tflite_metadata:
        return []
    raw = _Reader(model, "the model").metadata()[TFLITE_METADATA_NAME]
    sub = mdfb.ModelMetadata.GetRootAsModelMetadata(raw, 0).SubgraphMetadata(0)
    types = {v: k for k, v in vars(mdfb.AssociatedFileType).items() if not k.startswith("_")}
    box_types = {v: k for k, v in vars(mdfb.BoundingBoxType).items() if not k.startswith("_")}
    coord_types = {v: k for k, v in vars(mdfb.CoordinateType).items() if not k.startswith("_")}
    out = []
    for i in range(sub.OutputTensorMetadataLength()):
        t = sub.OutputTensorMetadata(i)
        entry: dict[str, Any] = {"name": (t.Name() or b"").decode("utf-8", "replace"), "box": None, "files": []}
        content = t.Content()
        if content is not None and content.ContentPropertiesType() == mdfb.ContentProperties.BoundingBoxProperties:
            props = mdfb.BoundingBoxProperties()
            table = content.ContentProperties()
            props.Init(table.Bytes, table.Pos)
            entry["box"] = {"type": box_types.get(props.Type()), "coordinate_type": coord_types.get(props.CoordinateType()),
                            "index": props.IndexAsNumpy().tolist() if props.IndexLength() else None}
        for j in range(t.AssociatedFilesLength()):
            f = t.AssociatedFiles(j)
            entry["files"].append(((f.Name() or b"").decode("utf-8", "replace"), types.get(f.Type(), str(f.Type()))))
        out.append(entry)
    return out


def check(model: bytes, path: Path | None, *, gpu: lint.GpuResult | None = None, load: bool = True) -> lint.ContractResult:
    """All checks of the mediapipe contract (2-output form) on ``model``."""
    info = inspect_model(model)
    meta = lint.read_metadata_view(model, info)
    checks: list[Check] = []
    add = checks.append
    if len(info.inputs) != 1:
        add(_fail("input.count", 1, len(info.inputs), "MediaPipe feeds one image tensor", "export with the image as the only input"))
    else:
        inp = info.inputs[0]
        add(_pass("input.count", 1, 1))
        shape = list(inp.shape)
        ok = len(shape) == 4 and shape[0] == 1 and shape[3] in (3, 4) and shape[1] > 0 and shape[2] > 0
        add(_pass("input.shape", "[1,H,W,3]", shape) if ok else
            _fail("input.shape", "[1,H,W,3]", shape, "MediaPipe stretches frames to a fixed HxW RGB image",
                  "export with fixed_shape_resizer"))
        if inp.dtype in ("float32", "uint8"):
            add(_pass("input.dtype", ["float32", "uint8"], inp.dtype))
        else:
            add(_fail("input.dtype", ["float32", "uint8"], inp.dtype, f"MediaPipe rejects {inp.dtype} input",
                      "use float32 or uint8 input"))
        if inp.dtype == "float32":
            norm = meta.normalization if meta.readable else None
            if norm is None:
                add(_fail("input.normalization", "NormalizationOptions", None,
                          "float input without NormalizationOptions metadata", "write the metadata (`liteship run`)"))
            elif len(set(norm[0])) > 1 or len(set(norm[1])) > 1 or len(norm[0]) not in (1, 3):
                add(_fail("input.normalization", "1 or 3 equal mean/std values", {"mean": list(norm[0]), "std": list(norm[1])},
                          "Per-channel image normalization is not available.",
                          "fold the per-channel normalization into the graph, or use the other variants"))
            else:
                add(_pass("input.normalization", "1 or 3 equal mean/std values", {"mean": list(norm[0]), "std": list(norm[1])}))
    add(_pass("metadata.present", True, True) if meta.readable else
        _fail("metadata.present", True, meta.error or False, "MediaPipe requires TFLite metadata",
              "write metadata (`liteship run --variants ...,gpu`)"))
    names = list(meta.output_names) if meta.readable else []
    if len(info.outputs) == 2:
        add(_pass("outputs.count", 2, 2, "raw heads: MediaPipe decodes and runs NMS"))
    else:
        add(_fail("outputs.count", 2, len(info.outputs), f"Expected a model with 2 or 4 output tensors, found {len(info.outputs)}."
                  if len(info.outputs) not in (2, 4) else "this contract is for the 2-output form (raw heads)",
                  "use the gpu variant (2 outputs: location, score)"))
    want_names = sorted([mpmd.LOCATION_NAME, mpmd.SCORE_NAME])
    add(_pass("outputs.names", want_names, names) if sorted(names) == want_names else
        _fail("outputs.names", want_names, names, "MediaPipe finds the raw outputs by metadata name (else by index 0, 1)",
              "write the gpu variant's metadata (location, score)"))
    dtypes = sorted({o.dtype for o in info.outputs})
    add(_pass("outputs.dtype", "all float32 or all uint8", dtypes) if dtypes in (["float32"], ["uint8"]) else
        _fail("outputs.dtype", "all float32 or all uint8", dtypes, "MediaPipe refuses mixed or other output types",
              "keep the outputs float32"))
    entries = _output_metadata(model, info) if meta.readable else []
    by_name = {e["name"]: e for e in entries}
    loc = by_name.get(mpmd.LOCATION_NAME)
    box = loc["box"] if loc else None
    want_box = {"type": "BOUNDARIES", "coordinate_type": "RATIO"}
    if box and box["type"] == "BOUNDARIES" and box["coordinate_type"] == "RATIO" and (box["index"] is None or len(box["index"]) == 4):
        add(_pass("location.box_properties", want_box, box))
    else:
        add(_fail("location.box_properties", want_box, box,
                  f"Expected BoundingBoxProperties for tensor {mpmd.LOCATION_NAME}, found none." if box is None else
                  "Mobile SSD only supports BoundingBoxType BOUNDARIES and CoordinateType RATIO",
                  "write the gpu variant's metadata"))
    detector, problem = _detector(model, meta)
    position = {n: i for i, n in enumerate(names)}
    shapes = {n: list(info.outputs[i].shape) for n, i in position.items() if i < len(info.outputs)}
    if detector is None:
        add(_fail("detector_metadata", f"{mpmd.METADATA_NAME} custom metadata", problem,
                  "TensorsDecodingOptions is not found in the object detector metadata.",
                  "write the DETECTOR_METADATA entry (`liteship run --variants ...,gpu`)"))
    else:
        found = {"num_boxes": detector.num_boxes, "num_classes": detector.num_classes, "num_coords": detector.num_coords,
                 "num_keypoints": detector.num_keypoints, "num_values_per_keypoint": detector.num_values_per_keypoint}
        loc_shape, score_shape = shapes.get(mpmd.LOCATION_NAME), shapes.get(mpmd.SCORE_NAME)
        want = {"num_boxes": loc_shape[1] if loc_shape else None, "num_classes": score_shape[2] if score_shape else None,
                "num_coords": loc_shape[2] if loc_shape else None, "num_keypoints": 0, "num_values_per_keypoint": 2}
        ok = found == want and detector.num_keypoints * detector.num_values_per_keypoint + 4 == detector.num_coords
        add(_pass("detector_metadata", want, found) if ok else
            _fail("detector_metadata", want, found, "DETECTOR_METADATA does not match the output shapes "
                  "(TensorsToDetectionsCalculator then fails a RET_CHECK or CHECK-aborts)",
                  "rewrite the gpu variant's metadata from its export"))
    score = by_name.get(mpmd.SCORE_NAME)
    files = [f for f in (score["files"] if score else []) if f[1] == "TENSOR_AXIS_LABELS"]
    lines = _label_lines(model, files[0][0]) if files else None
    c = shapes.get(mpmd.SCORE_NAME, [0, 0, 0])[-1]
    if not files or lines is None:
        add(_fail("labels.file", "TENSOR_AXIS_LABELS file on the score tensor", score["files"] if score else None,
                  "MediaPipe reads a 2-output model's labels from the score tensor's TENSOR_AXIS_LABELS file "
                  "(no names otherwise)", "write the gpu variant's metadata with labelmap.txt"))
    elif lines < c:
        add(_fail("labels.file", f">= {c} labels", lines, f"{files[0][0]} names {lines} of {c} score columns",
                  "one line per class (id - 1 = line)"))
    else:
        add(_pass("labels.file", f"TENSOR_AXIS_LABELS, >= {c} labels", {"file": files[0][0], "lines": lines}))
    custom = list(info.custom_ops) + list(info.flex_ops)
    add(_pass("ops.custom", [], []) if not custom else
        _fail("ops.custom", [], custom, "custom/Flex ops run on the CPU only", "export without the postprocess op (gpu variant)"))
    add(_gpu(gpu))
    add(_load(path) if load and path is not None else Check("mediapipe.load", Verdict.SKIP, "ObjectDetector loads", None, "not run"))
    return lint.ContractResult(NAME, tuple(checks))


def _detector(model: bytes, meta: lint.MetadataView) -> tuple[mpmd.DetectorOptions | None, str]:
    if not meta.readable:
        return None, "no readable metadata"
    try:
        _, detector = mpmd.read_metadata(model)
    except Exception as exc:  # noqa: BLE001 -- unreadable = not usable by MediaPipe
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    return detector, "" if detector is not None else f"no {mpmd.METADATA_NAME} entry"


def _label_lines(model: bytes, name: str) -> int | None:
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            return len(archive.read(name).decode("utf-8", "replace").splitlines())
    except (KeyError, zipfile.BadZipFile):
        return None


def _gpu(g: lint.GpuResult | None) -> Check:
    want = "every op on the GPU delegate"
    if g is None:
        return Check("gpu.compatibility", Verdict.SKIP, want, None, "not run")
    if not g.ran:
        return Check("gpu.compatibility", Verdict.SKIP, want, None, g.reason)
    if g.incompatible:
        return _fail("gpu.compatibility", want, list(g.incompatible), "ops the GPU delegate does not take",
                     "replace those ops with GPU-supported ones")
    return _pass("gpu.compatibility", want, [], g.summary)


def _load(path: Path) -> Check:
    from liteship.validation import gpu_runtimes

    info = inspect_model(Path(path).read_bytes())
    _, h, w, _ = info.inputs[0].shape if info.inputs and len(info.inputs[0].shape) == 4 else (1, 64, 64, 3)
    run = gpu_runtimes.run_mediapipe(path, [np.full((max(h, 1), max(w, 1), 3), 128, np.uint8)], [],
                                     score_threshold=0.0, max_results=1)
    want = "ObjectDetector.create_from_options + detect succeed"
    if not run.ran:
        return Check("mediapipe.load", Verdict.SKIP, want, None, run.message)
    if run.message:
        return _fail("mediapipe.load", want, run.message, "the real MediaPipe ObjectDetector refused the model",
                     "fix the other failing mediapipe checks; MediaPipe's message says which")
    return _pass("mediapipe.load", want, f"mediapipe {run.version}")


def extend(result: lint.LintResult, model: bytes, path: Path, gpu: bool = True) -> lint.LintResult:
    """``result`` plus the mediapipe contract (for the gpu variant in ``liteship run``)."""
    g = lint.analyze_gpu(path) if gpu else None
    return lint.LintResult(result.model, {**result.contracts, NAME: check(model, path, gpu=g)})
