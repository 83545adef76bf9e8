"""The ``mediapipe`` contract: MediaPipe Tasks ObjectDetector's own load-time checks.

Each check restates one test of MediaPipe's C++ (the files and error texts are data in
:data:`liteship.validation.contracts.MEDIAPIPE_ERRORS`), in the order MediaPipe runs them, and
puts MediaPipe's own words in the fix line, so that what lint says is what the app would
throw. A few checks have no MediaPipe error because MediaPipe accepts the model and then
computes something else (box index order, labels): they say so.

Model forms (:class:`~liteship.validation.contracts.OutputForm`): MediaPipe reads either the
4 outputs of ``TFLite_Detection_PostProcess`` or 2 raw outputs with a ``DETECTOR_METADATA``
entry. :data:`FORM_RULES` maps each form to its rules; a contract accepts the forms in its
``output_forms``: the 4-output form (what liteship writes by default) and the 2-output form
(liteship's ``gpu`` variant, :func:`_raw_ssd_form`); the input rules and the runtime run are
shared.
"""

from __future__ import annotations

from collections.abc import Callable

from liteship.tflite_inspect import POSTPROCESS_OP_NAME
from liteship.tflite_metadata import LABELS_TYPE, MetadataView
from liteship.types import POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, Check
from liteship.validation import contracts as C
from liteship.validation.lint import (
    Facts,
    input_quantization_check,
    name_binding,
    output_role_names,
    runtime_checks,
)

E = C.MEDIAPIPE_ERRORS
_pass, _fail, _skip, _na = Check.passed, Check.failed, Check.skipped, Check.not_applicable


def _refused(cid: str, expected: object, found: object, key: str, change: str, **fields: object) -> Check:
    """A check MediaPipe fails at load: its words, then what to change."""
    words = E[key].format(**fields)
    return _fail(cid, expected, found, f"MediaPipe refuses the model at load ({E[key].source})",
                 f'MediaPipe says "{words}" -- {change}')


def check_mediapipe(c: C.Contract, f: Facts, max_results: int | None = None) -> list[Check]:
    checks = _model_checks(f) + _input_checks(f)
    checks += _output_checks(c, f, max_results)
    flex = list(f.info.flex_ops)
    checks.append(_fail("ops.flex", [], flex, "tasks-vision has no Flex (Select TF ops) delegate",
                        f'MediaPipe says "{C.TFLITE_FLEX_ERROR}" -- convert with builtin ops only (no SELECT_TF_OPS)')
                  if flex else _pass("ops.flex", [], []))
    unknown = [op.split(":", 1)[1] for op in f.info.custom_ops if op != POSTPROCESS_OP_NAME]
    checks.append(_fail("ops.custom", [POSTPROCESS_OP], unknown, "tasks-vision registers no other custom op",
                        f'MediaPipe says "Encountered unresolved custom op: {unknown[0]}." -- convert with builtin ops '
                        f"only (and {POSTPROCESS_OP})") if unknown else _pass("ops.custom", [POSTPROCESS_OP], []))
    checks.append(_na("ops.versions", c.runtime_note, f"not pinned: {c.runtime_note}"))
    checks += runtime_checks(c, f)
    return checks


# --- model and input (object_detector_graph.cc, image_tensor_specs.cc, image_preprocessing_graph.cc)


def _model_checks(f: Facts) -> list[Check]:
    out = []
    n = f.info.subgraph_count
    out.append(_pass("model.subgraphs", 1, n) if n == 1 else _refused(
        "model.subgraphs", 1, n, "model.subgraphs", "export a single-subgraph model (no control flow)", n=n))
    if f.meta.readable:
        out.append(_pass("metadata.present", True, True))
    else:
        change = ("the metadata is unreadable: write it again (`liteship metadata`)" if f.meta.present
                  else "write TFLite metadata (`liteship metadata`, or tflite-support's object_detector writer)")
        out.append(_refused("metadata.present", True, f.meta.error or False, "metadata.present", change))
    return out


def _input_checks(f: Facts) -> list[Check]:
    info, meta = f.info, f.meta
    if len(info.inputs) != 1:
        return [_refused("input.count", 1, len(info.inputs), "input.count",
                         "export the detector with the image as its only input")]
    out = [_pass("input.count", 1, 1)]
    inp = info.inputs[0]
    if meta.readable and meta.input_count < 1:
        out.append(_refused("input.metadata", ">= 1 input tensor metadata", 0, "input.metadata",
                            "write the input's TensorMetadata (`liteship metadata`)"))
    content = meta.input_content if meta.readable else None
    md_name = meta.input_name or "#0"
    if content is not None and content.type != "NONE" and content.type != "ImageProperties":
        out.append(_refused("input.content", "ImageProperties (RGB)", content.type, "input.content",
                            "describe the input as an image (ImageProperties, RGB)", name=md_name, type=content.type))
    elif content is not None and content.type == "ImageProperties" and content.color_space != "RGB":
        out.append(_refused("input.content", "ImageProperties (RGB)", content.color_space, "input.color_space",
                            "declare the input RGB (MediaPipe converts frames to RGB)"))
    else:
        out.append(_pass("input.content", "ImageProperties (RGB) or none", content.color_space if content else None))
    out.append(_shape_check(list(inp.shape)))
    if inp.dtype in C.BY_NAME["mediapipe"].input_dtypes:
        out.append(_pass("input.dtype", ["uint8", "float32"], inp.dtype))
    else:
        change = ("use the int8 variant converted with `--int8-input uint8` (the default)" if inp.dtype == "int8"
                  else "use a uint8 or float32 input")
        out.append(_refused("input.dtype", ["uint8", "float32"], inp.dtype, "input.dtype", change,
                            name=inp.name, type=inp.dtype.upper()))
    out.append(_normalization_check(f))
    out.append(input_quantization_check(f))
    return out


def _shape_check(shape: list[int]) -> Check:
    cid, want = "input.shape", "[1,H,W,3|4]"
    if len(shape) != 4:
        return _refused(cid, want, shape, "input.rank", "export with a [1,H,W,3] image input")
    b, h, w, d = shape
    if b != 1 or d not in C.MEDIAPIPE_INPUT_DEPTHS:
        return _refused(cid, want, shape, "input.shape", "export with a [1,H,W,3] RGB image input", b=b, h=h, w=w, d=d)
    if h <= 0 or w <= 0:
        return _fail(cid, want, shape, "MediaPipe needs a fixed input size (\"The input width should be positive.\")",
                     "use fixed_shape_resizer and export with a fixed input size")
    if d == 4:
        return _pass(cid, want, shape, "warning: MediaPipe loads a 4-channel input, but detect() fails on it "
                                       "(observed: TfLiteTensor and Tensor sizes do not match)")
    return _pass(cid, want, shape, "MediaPipe stretches each frame to this size (no letterbox)")


def _normalization_check(f: Facts) -> Check:
    cid, want = "input.normalization", "1 value, or 3 equal values, of mean and std (std != 0)"
    inp, meta = f.info.inputs[0], f.meta
    norm = meta.normalization if meta.readable else None
    found = {"mean": list(norm[0]), "std": list(norm[1])} if norm else None
    # GetNormalizationOptionsIfAny runs for every input type, before the type checks
    if norm is not None:
        mean, std = norm
        if len(mean) != len(std):
            return _refused(cid, want, found, "input.normalization.dims", "write mean and std with the same number "
                            "of values", mean=len(mean), std=len(std))
        if len(mean) not in C.MEDIAPIPE_NORMALIZATION_VALUES:
            return _refused(cid, want, found, "input.normalization.count", "write 1 or 3 mean/std values", n=len(mean))
    if inp.dtype != "float32":
        return _na(cid, "NormalizationOptions for float input", f"{inp.dtype} input: MediaPipe feeds 0-255 pixels")
    if norm is None:
        return _refused(cid, want, None, "input.normalization.missing",
                        "write NormalizationOptions (`liteship metadata` writes the model's mean/std)")
    mean, std = norm
    shape = list(inp.shape)
    if len(shape) == 4 and shape[0] * shape[1] * shape[2] * shape[3] % len(mean):
        return _refused(cid, want, found, "input.normalization.multiple", "write 1 mean/std value")
    if len(set(mean)) > 1 or len(set(std)) > 1:
        return _refused(cid, want, found, "input.normalization.per_channel",
                        "fold the per-channel mean/std into the model so it takes 0-255 pixels (`liteship run` does "
                        "by default; `--no-fold-normalization` turns it off), or use the int8 (uint8 input) variant")
    if abs(std[0]) < 1.1920929e-07:  # std::numeric_limits<float>::epsilon()
        return _refused(cid, want, found, "input.normalization.std_zero", "write the model's real std")
    return _pass(cid, want, found)


# --- outputs (detection_postprocessing_graph.cc) ---------------------------------------------


def _form(f: Facts) -> C.OutputForm | None:
    n = len(f.info.outputs)
    return {4: C.OutputForm.POSTPROCESS, 2: C.OutputForm.RAW_SSD}.get(n)


def _output_checks(c: C.Contract, f: Facts, max_results: int | None) -> list[Check]:
    info, meta = f.info, f.meta
    n = len(info.outputs)
    form = _form(f)
    out = []
    if form is None:
        out.append(_refused("outputs.count", "2 or 4", n, "outputs.count",
                            f"export with {POSTPROCESS_OP} (4 outputs: boxes, classes, scores, count)", n=n))
        return out
    out.append(_pass("outputs.count", "2 or 4", n, f"the {form} form"))
    out.append(_output_dtypes(f))
    if meta.readable and len(meta.output_names) != n:
        out.append(_refused("outputs.metadata_count", n, len(meta.output_names), "outputs.metadata_count",
                            "write one output TensorMetadata per output (`liteship metadata`)",
                            n=n, m=len(meta.output_names)))
    elif meta.readable:
        out.append(_pass("outputs.metadata_count", n, len(meta.output_names)))
    if form is C.OutputForm.RAW_SSD and meta.readable and C.DETECTOR_METADATA_NAME not in meta.custom_metadata:
        out.append(_refused("outputs.form", f"{C.DETECTOR_METADATA_NAME} custom metadata", list(meta.custom_metadata),
                            "outputs.detector_metadata",
                            f"export with {POSTPROCESS_OP} (4 outputs), or add MediaPipe's DETECTOR_METADATA"))
        return out
    rules = FORM_RULES.get(form)
    if form not in c.output_forms or rules is None:
        out.append(_skip("outputs.form", [str(x) for x in c.output_forms], f"the {form} form: liteship's {c.name} "
                         "contract has no rules for it yet; the real MediaPipe run (mediapipe.load) decides"))
        return out
    out += rules(c, f, max_results)
    return out


def _output_dtypes(f: Facts) -> Check:
    cid, want = "outputs.dtype", "all float32, or all uint8"
    dtypes = [t.dtype for t in f.info.outputs]
    for i, dtype in enumerate(dtypes):
        if dtype not in C.MEDIAPIPE_OUTPUT_DTYPES:
            return _refused(cid, want, dtypes, "outputs.dtype", f"keep the {POSTPROCESS_OP} outputs float32",
                            i=i, type=dtype.upper())
    quantized = dtypes.count("uint8")
    if quantized not in (0, len(dtypes)):
        return _refused(cid, want, dtypes, "outputs.quantized", f"keep every {POSTPROCESS_OP} output float32",
                        q=quantized, n=len(dtypes))
    return _pass(cid, want, dtypes)


def _postprocess_form(c: C.Contract, f: Facts, max_results: int | None) -> list[Check]:
    info, meta = f.info, f.meta
    out = []
    roles = output_role_names(info)
    want = [r.value for r in POSTPROCESS_PORT_ORDER]
    if set(roles) == set(want):
        out.append(_pass("outputs.roles", f"the 4 ports {want} in any order", roles))
    else:
        out.append(_fail("outputs.roles", "the 4 postprocess ports", roles,
                         f"each output must be one {POSTPROCESS_OP} port (None = another tensor)",
                         f"make the {POSTPROCESS_OP} op's 4 outputs the model's outputs"))
    n_pp = info.op_counts.get(POSTPROCESS_OP_NAME, 0)
    out.append(_pass("postprocess.op", 1, 1) if n_pp == 1 else _fail(
        "postprocess.op", f"exactly 1 {POSTPROCESS_OP}", n_pp, "MediaPipe reads decoded boxes from the postprocess op",
        "export with the OD API's export_tflite_graph_tf2.py (TFLite_Detection_PostProcess)"))
    if not meta.readable or len(meta.output_names) != 4:
        na = "no usable output metadata (see metadata.present, outputs.metadata_count)"
        out += [_na(cid, None, na) for cid in ("outputs.names", "location.box_properties", "labels.file")]
        out.append(_max_detections(c, f, max_results))
        return out
    names = list(meta.output_names)
    positions, warning = name_binding(names)
    read = [roles[p] for p in positions]
    if not warning and read == want:
        out.append(_pass("outputs.names", want, names, "found by metadata name (any output order works)"))
    elif read == want:
        out.append(_pass("outputs.names", want, names, f'warning: MediaPipe logs "{warning}" and reads outputs 0..3, '
                                                       "which are in port order here: it works"))
    else:
        why = (f'MediaPipe logs "{warning}" and reads outputs 0..3 as {want}, but they are {roles}' if warning
               else f"the metadata names bind {want} to outputs that are {read}")
        out.append(_fail("outputs.names", want, names, why + ": MediaPipe raises no error and decodes the wrong tensors",
                         "write the metadata again (`liteship metadata` names each output by its role)"))
    out += _box_checks(meta, positions[0])
    out += _label_checks(f, positions[1])
    out.append(_max_detections(c, f, max_results))
    return out


def _box_checks(meta: MetadataView, position: int) -> list[Check]:
    content = meta.output_content.get(position)
    name = meta.output_names[position] or "#0"
    want = "BoundingBoxProperties BOUNDARIES, RATIO, index [1,0,3,2]"
    fix = "write the metadata with tflite-support's object_detector writer (`liteship metadata`)"
    if content is None or content.type == "NONE":
        return [_refused("location.box_properties", want, None, "location.box_properties.missing", fix, name=name)]
    if content.type != "BoundingBoxProperties":
        return [_refused("location.box_properties", want, content.type, "location.box_properties.type", fix,
                         name=name, type=content.type)]
    found = {"type": content.box_type, "coordinate_type": content.coordinate_type,
             "index": list(content.box_index) if content.box_index is not None else None}
    if content.box_type != "BOUNDARIES":
        return [_refused("location.box_properties", want, found, "location.box_type", fix, type=content.box_type)]
    if content.coordinate_type != "RATIO":
        return [_refused("location.box_properties", want, found, "location.coordinate_type", fix,
                         type=content.coordinate_type)]
    index = content.box_index
    if index is not None and len(index) != 4:
        return [_refused("location.box_properties", want, found, "location.box_index", fix, n=len(index))]
    checks = [_pass("location.box_properties", want, found)]
    expected = list(C.POSTPROCESS_BOX_INDEX)
    if index is None or list(index) != expected:
        used = list(index) if index is not None else [0, 1, 2, 3]
        checks.append(_fail("location.box_order", expected, used,
                            f"MediaPipe reads (left, top, right, bottom) at positions {used} of each box; "
                            f"{POSTPROCESS_OP} writes (ymin, xmin, ymax, xmax): boxes come out transposed, with no error",
                            "write BoundingBoxProperties index [1, 0, 3, 2] (tflite-support's object_detector writer does)"))
    else:
        checks.append(_pass("location.box_order", expected, list(index)))
    return checks


def _label_checks(f: Facts, position: int) -> list[Check]:
    files = [lf for lf in f.meta.output_files.get(position, ()) if lf.type == LABELS_TYPE]
    packed = [lf for lf in files if lf.lines is not None]
    want = f"{LABELS_TYPE} file on the category tensor (optional)"
    if not packed:
        why = "named in the metadata but not packed" if files else "none"
        return [_pass("labels.file", want, None, f"warning: no labels ({why}): MediaPipe results carry only a class "
                                                  "index, no category_name")]
    lf = packed[0]
    checks = [_pass("labels.file", want, lf.name)]
    pp = f.info.postprocess
    k = pp[0].options.num_classes if len(pp) == 1 else None
    if k is not None and lf.lines is not None and lf.lines < k:
        checks.append(_pass("labels.count", f">= {k}", lf.lines, f"warning: {lf.name} has {lf.lines} lines for {k} "
                                                                   "classes: MediaPipe names no detection of the last classes"))
    elif k is not None:
        checks.append(_pass("labels.count", f">= {k}", lf.lines))
    return checks


def _max_detections(c: C.Contract, f: Facts, max_results: int | None) -> Check:
    want_n = max_results if max_results is not None else c.max_results
    pp = f.info.postprocess
    n = pp[0].options.max_detections if len(pp) == 1 else None
    if n is None:
        return _na("postprocess.max_detections", f">= {want_n}", "no single postprocess op (see postprocess.op)")
    if n >= want_n:
        return _pass("postprocess.max_detections", f">= {want_n}", n)
    return _fail("postprocess.max_detections", f">= {want_n}", n,
                 f"the app asks for {want_n} results, the op returns at most {n}",
                 f"re-export with `liteship run --max-detections {want_n}` (or lower the app's maxResults)")


def _raw_ssd_form(c: C.Contract, f: Facts, max_results: int | None) -> list[Check]:
    """The 2-output form: ``location`` [1,A,4] + ``score`` [1,A,C] and DETECTOR_METADATA
    (``BuildOutModelNmsPostProcessingSpecs``, ``ConfigureOutModelNmsTensorsToDetectionsCalculator``,
    ``ConfigureSsdAnchorsCalculator``; shapes as ``TensorsToDetectionsCalculator::ProcessCPU``
    RET_CHECKs them)."""
    from liteship.converter import mediapipe_metadata as mpmd

    info, meta = f.info, f.meta
    out: list[Check] = []
    names = list(meta.output_names)
    want = list(C.RAW_SSD_OUTPUT_NAMES)
    if all(n in names for n in want):
        positions = [names.index(n) for n in want]
        out.append(_pass("outputs.names", want, names, "found by metadata name"))
    else:
        positions = [0, 1]
        shown = ", ".join(f'"{n}"' for n in want)
        out.append(_pass("outputs.names", want, names, f"warning: MediaPipe logs \"You don't seem to be matching tensor "
                                                        f"names in metadata list ... [{shown}]\" and reads outputs 0, 1 "
                                                        "as location, score"))
    if info.custom_ops:
        out.append(_fail("postprocess.op", "no custom op (MediaPipe decodes and runs NMS)", list(info.custom_ops),
                         "a 2-output model with a custom op", "end the graph at the raw heads (liteship's gpu variant)"))
    content = meta.output_content.get(positions[0])
    found_box = None if content is None else {"type": content.type, "box_type": content.box_type,
                                               "coordinate_type": content.coordinate_type}
    fix = "write the gpu variant's metadata (`liteship run --variants ...,gpu`)"
    name = meta.output_names[positions[0]] if positions[0] < len(names) else "#0"
    if content is None or content.type != "BoundingBoxProperties":
        key = "location.box_properties.missing" if content is None or content.type == "NONE" else "location.box_properties.type"
        out.append(_refused("location.box_properties", "BoundingBoxProperties BOUNDARIES, RATIO", found_box, key, fix,
                            name=name or "#0", type=content.type if content else "NONE"))
    elif content.box_type != "BOUNDARIES":
        out.append(_refused("location.box_properties", "BOUNDARIES, RATIO", found_box, "location.box_type", fix,
                            type=content.box_type))
    elif content.coordinate_type != "RATIO":
        out.append(_refused("location.box_properties", "BOUNDARIES, RATIO", found_box, "location.coordinate_type", fix,
                            type=content.coordinate_type))
    elif content.box_index is not None and len(content.box_index) != 4:
        out.append(_refused("location.box_properties", "index of 4 values", list(content.box_index), "location.box_index",
                            fix, n=len(content.box_index)))
    else:
        out.append(_pass("location.box_properties", "BoundingBoxProperties BOUNDARIES, RATIO", found_box,
                         "MediaPipe decodes the raw encodings itself: the index is not used in this form"))
    shapes = [list(info.outputs[p].shape) if p < len(info.outputs) else [] for p in positions]
    detector = None
    try:
        detector = mpmd.decode(meta.custom_data.get(C.DETECTOR_METADATA_NAME, b""))
    except ValueError as exc:
        out.append(_refused("detector_metadata", "a readable ObjectDetectorOptions (V001)", str(exc),
                            "outputs.detector_metadata", fix))
    if detector is not None:
        a = shapes[0][1] if len(shapes[0]) == 3 else None
        found = {"num_boxes": detector.num_boxes, "num_coords": detector.num_coords, "num_classes": detector.num_classes,
                 "num_keypoints": detector.num_keypoints, "num_values_per_keypoint": detector.num_values_per_keypoint}
        expected = {"num_boxes": a, "num_coords": shapes[0][2] if len(shapes[0]) == 3 else None,
                    "num_classes": shapes[1][2] if len(shapes[1]) == 3 else None, "num_keypoints": 0,
                    "num_values_per_keypoint": 2}
        shapes_ok = len(shapes[0]) == 3 and len(shapes[1]) == 3 and shapes[0][0] == shapes[1][0] == 1 and shapes[1][1] == a
        if found == expected and shapes_ok:
            out.append(_pass("detector_metadata", expected, found))
        else:
            out.append(_fail("detector_metadata", expected, {**found, "output_shapes": shapes},
                             "DETECTOR_METADATA does not describe the outputs: TensorsToDetectionsCalculator fails its "
                             "shape RET_CHECKs, or CHECK-aborts the process (num_values_per_keypoint must be 2 and "
                             "num_keypoints * 2 + 4 == num_coords)", "write DETECTOR_METADATA from the model's export "
                             "(`liteship run --variants ...,gpu`)"))
        scales = [detector.x_scale, detector.y_scale, detector.w_scale, detector.h_scale]
        if any(v <= 0 for v in scales):
            out.append(_fail("detector_metadata.scales", "positive x/y/w/h scales", scales,
                             "MediaPipe divides the encodings by these scales", "write the box coder's scales"))
    labels = [lf for lf in meta.output_files.get(positions[1], ()) if lf.type == "TENSOR_AXIS_LABELS" and lf.lines is not None]
    classes = shapes[1][2] if len(shapes[1]) == 3 else None
    if not labels:
        out.append(_pass("labels.file", "TENSOR_AXIS_LABELS file on the score tensor (optional)", None,
                         "warning: no labels: MediaPipe results carry only a class index, no category_name"))
    elif classes is not None and labels[0].lines < classes:
        out.append(_pass("labels.file", f">= {classes} labels", labels[0].lines,
                         f"warning: {labels[0].name} names {labels[0].lines} of {classes} score columns"))
    else:
        out.append(_pass("labels.file", "TENSOR_AXIS_LABELS file on the score tensor", labels[0].name))
    return out


#: the rules of each output form
FORM_RULES: dict[C.OutputForm, Callable[[C.Contract, Facts, int | None], list[Check]]] = {
    C.OutputForm.POSTPROCESS: _postprocess_form,
    C.OutputForm.RAW_SSD: _raw_ssd_form,
}
