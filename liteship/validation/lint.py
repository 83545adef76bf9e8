"""``liteship lint``: does a detection .tflite satisfy the contract of the app that loads it?

Works on any .tflite (liteship's or not). Reads the flatbuffer with
:func:`liteship.tflite_inspect.inspect_model` (no TensorFlow), the TFLite metadata with
:func:`liteship.tflite_metadata.read_metadata_view`, and turns every field of each
:class:`~liteship.validation.contracts.Contract` into :class:`~liteship.types.Check` s.

Verdicts: ``fail`` breaks the app; ``pass`` may carry a ``warning:`` message (the app works
but something needs attention, e.g. a non-300x300 input for the legacy app); ``n/a`` = the
check does not apply (or was not requested); ``skip`` = it applies but could not run here (a
runtime missing: the reason is in ``message``). A contract fails when one of its checks
fails; the judge (:mod:`liteship.validation.judge`) fails a run on a skipped gating check.

GPU compatibility: ``tf.lite.experimental.Analyzer.analyze(gpu_compatibility=True)`` in a
child process (it needs TensorFlow, which is slow to import and must not share a process
with tflite-support's task module; a child also survives a native crash). Every contract's
app falls back to the CPU for ops the GPU delegate does not take (TFLite_Detection_PostProcess
is always one of them at runtime, whatever the analyzer says), so for ``Gpu.OPTIONAL``
contracts incompatible ops are listed in a passing check; only ``Gpu.REQUIRED`` fails on ops
other than the postprocess op.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship import child
from liteship.tflite_inspect import POSTPROCESS_OP_NAME, ModelInfo, inspect_model
from liteship.tflite_metadata import LABELS_TYPE, LabelFile, MetadataView, read_metadata_view
from liteship.types import POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, Check, OutputRole, Verdict
from liteship.validation import contracts as C
from liteship.validation.runtimes.result import Runtime, RuntimeRun
from liteship.validation.runtimes.result import judge as judge_runtime

GPU_TIMEOUT_S = 300


# --- GPU analyzer (child process) --------------------------------------------------------

ANALYZER_CHILD = r"""
import sys
import liteship  # noqa: F401
from liteship.child import emit
try:
    import tensorflow as tf
except Exception as exc:
    emit("LITESHIP_GPU", status="env", message=type(exc).__name__ + ": " + str(exc)[:200]); sys.exit(0)
from liteship.validation.lint import analyzer_text
emit("LITESHIP_GPU", status="ok", text=analyzer_text(open(sys.argv[1], "rb").read()))
"""


@dataclass(frozen=True)
class GpuResult:
    ran: bool
    reason: str = ""  # why it did not run
    incompatible: tuple[str, ...] = ()  # op names with a GPU COMPATIBILITY WARNING
    summary: str = ""


_OP_LINE = re.compile(r"^\s*Op#\d+\s+([A-Za-z0-9_]+)\(")


def parse_analyzer(text: str) -> GpuResult:
    incompatible: list[str] = []
    current = None
    summary = ""
    for line in text.splitlines():
        m = _OP_LINE.match(line)
        if m:
            current = m.group(1)
            continue
        if "GPU COMPATIBILITY WARNING" in line:
            if current is not None and "Subgraph#" not in line:
                incompatible.append(current)
            else:
                summary = line.strip()
        elif "compatible with GPU delegate" in line:
            summary = line.strip()
    return GpuResult(ran=True, incompatible=tuple(dict.fromkeys(incompatible)), summary=summary)


def analyzer_text(model: bytes) -> str:
    """What ``tf.lite.experimental.Analyzer`` prints for ``model`` with GPU compatibility on
    (it prints to stdout only, so it is captured)."""
    import contextlib
    import io

    import tensorflow as tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_content=model, gpu_compatibility=True)
    return buf.getvalue()


def analyze_gpu(path: Path) -> GpuResult:
    """Run TF's analyzer: in this process when TensorFlow is already loaded (``liteship run``:
    ~2 ms), else in a child so that ``liteship lint`` stays TensorFlow-free (~7 s)."""
    if "tensorflow" in sys.modules:
        try:
            return parse_analyzer(analyzer_text(path.read_bytes()))
        except Exception as exc:  # the analyzer is a C++ wrapper; any failure means "not run"
            return GpuResult(ran=False, reason=f"the TFLite analyzer failed: {type(exc).__name__}: {str(exc)[:200]}")
    res = child.run_python(ANALYZER_CHILD, [str(path)], timeout_s=GPU_TIMEOUT_S, marker="LITESHIP_GPU")
    data = res.payload
    if data is None:
        return GpuResult(ran=False, reason=f"the TFLite analyzer {res.describe()}")
    if data["status"] == "env":
        return GpuResult(ran=False, reason="TensorFlow is not available: " + data["message"])
    return parse_analyzer(data["text"])


# --- checks ------------------------------------------------------------------------------


_pass, _fail, _skip, _na = Check.passed, Check.failed, Check.skipped, Check.not_applicable


def output_role_names(info: ModelInfo) -> list[str | None]:
    """Each output's postprocess role (``location``, ``category``, ...), None for other outputs."""
    return [r.value if isinstance(r, OutputRole) else None for r in info.output_roles]


@dataclass(frozen=True)
class Facts:
    """Everything read from the model once, shared by every contract."""

    info: ModelInfo
    meta: MetadataView
    gpu: GpuResult | None
    #: what the real runtimes measured; None = not run (--no-runtime)
    runtimes: Mapping[Runtime, RuntimeRun] | None = None


def check_contract(c: C.Contract, f: Facts, max_results: int | None = None) -> list[Check]:
    if c.rules is C.RuleSet.MEDIAPIPE:
        from liteship.validation import lint_mediapipe

        return lint_mediapipe.check_mediapipe(c, f, max_results)
    return _app_checks(c, f, max_results)


#: How far (as a fraction of a channel's normalized 0-255 range) a uint8 input may read an
#: app's raw pixels from what its normalization metadata says. The per-tensor (q - 128) / 128
#: that a converter gives for (x - 127.5) / 127.5 is off by 0.4 % at 255: well inside. One
#: per-tensor quantization for a per-channel normalization (measured: ResNet-FPN 7.8 %,
#: EfficientDet 8.8 %) is far outside.
PIXEL_READ_TOLERANCE = 0.02


def input_quantization_check(f: Facts) -> Check:
    """``input.quantization``: every app (Task Library, MediaPipe, the LiteRT samples, CompiledModel
    apps, the bundled app) copies camera bytes into a uint8 input, so its quantization must map
    a byte ``q`` onto what the model was trained on, ``(q - mean) / std`` per channel (the
    metadata's NormalizationOptions): ``scale * (q - zero_point)`` is linear in ``q``, so the
    error is largest at 0 or 255."""
    cid = "input.quantization"
    want = f"scale*(q - zero_point) within {PIXEL_READ_TOLERANCE:.0%} of (q - mean)/std for q in 0..255"
    inp = f.info.inputs[0]
    if inp.dtype != "uint8":
        return _na(cid, want, f"{inp.dtype} input: the app normalizes (and quantizes) the pixels itself")
    per_tensor = inp.quantization.per_tensor if inp.quantization is not None else None
    if per_tensor is None or not per_tensor[0]:
        return _na(cid, want, "the uint8 input has no per-tensor quantization: the graph reads the bytes itself")
    norm = f.meta.normalization if f.meta.readable else None
    if not norm or not norm[0] or not norm[1]:
        return _na(cid, want, "no normalization metadata: what the model expects of the pixels is not stated")
    scale, zero = per_tensor
    channels = max(len(norm[0]), len(norm[1]))
    if {len(norm[0]), len(norm[1])} - {1, channels}:
        return _na(cid, want, f"mean {list(norm[0])} and std {list(norm[1])} differ in length: see input.normalization")
    mean = np.broadcast_to(np.asarray(norm[0], np.float64), (channels,))
    std = np.broadcast_to(np.asarray(norm[1], np.float64), (channels,))
    if np.any(std == 0):
        return _na(cid, want, f"the normalization metadata has std {list(norm[1])}: see input.normalization")
    pixels = np.array([[0.0], [255.0]])
    error = np.abs(scale * (pixels - zero) - (pixels - mean) / std) / (255.0 / np.abs(std))  # [2, channels]
    worst = float(error.max())
    at, channel = np.unravel_index(int(error.argmax()), error.shape)
    found = {"scale": scale, "zero_point": zero, "mean": list(norm[0]), "std": list(norm[1]),
             "max_error_of_range": round(worst, 4)}
    if worst <= PIXEL_READ_TOLERANCE:
        return _pass(cid, want, found)
    which = f"channel {channel}" if channels > 1 else "the image"
    return _fail(cid, want, found,
                 f"an app's raw pixels are read as {scale:.4g}*(q - {zero}), but the metadata says the model expects "
                 f"(q - mean)/std: {which} is off by {worst:.1%} of its range at q = {int(pixels[at, 0])}"
                 + (" (one per-tensor quantization cannot express a per-channel normalization)"
                    if len(set(mean)) > 1 or len(set(std)) > 1 else ""),
                 "convert with `liteship run` (its int8 variant puts a per-channel normalization into the graph: "
                 "input scale 1, zero point 0, metadata mean 0 / std 1), or calibrate on images normalized "
                 "exactly as the metadata states")


def _app_checks(c: C.Contract, f: Facts, max_results: int | None = None) -> list[Check]:
    info, meta = f.info, f.meta
    checks: list[Check] = []
    add = checks.append

    from liteship.validation.runtimes.raw_ssd import is_raw_ssd

    if is_raw_ssd(info, meta):  # first: the one-line reason of the consumer matrix
        add(_fail("outputs.form", str(C.OutputForm.POSTPROCESS), str(C.OutputForm.RAW_SSD),
                  f"{c.name} reads the 4 {POSTPROCESS_OP} outputs; this model has the 2 raw outputs (location, score) "
                  "+ DETECTOR_METADATA of liteship's gpu variant",
                  f"not for this app: it needs the {POSTPROCESS_OP} outputs, the gpu variant has raw heads only; "
                  "ship fp32/fp16/dynamic/int8 to it (the gpu variant is for MediaPipe's ObjectDetector and apps "
                  "that decode the heads themselves, e.g. CompiledModel on GPU)"))

    # -- input
    if len(info.inputs) != 1:
        add(_fail("input.count", 1, len(info.inputs), "the app feeds exactly one image tensor",
                  "export the detector with the image as its only input (OD API export_tflite_graph_tf2.py)"))
        inp = None
    else:
        inp = info.inputs[0]
        add(_pass("input.count", 1, 1))
    if inp is not None:
        shape = list(inp.shape)
        ok_shape = len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and shape[1] > 0 and shape[2] > 0
        if not ok_shape:
            add(_fail("input.shape", "[1,H,W,3] fixed", shape, "the app resizes frames to a fixed HxW RGB image",
                      "use fixed_shape_resizer and export with a fixed input size"))
        elif c.expected_size and tuple(shape[1:3]) != c.expected_size:
            h, w = c.expected_size
            add(_pass("input.shape", f"[1,{h},{w},3]", shape,
                      f"warning: the app assumes {h}x{w}; change its input size constant to {shape[1]}x{shape[2]}"))
        else:
            add(_pass("input.shape", "[1,H,W,3]", shape))
        if inp.dtype in c.input_dtypes:
            add(_pass("input.dtype", list(c.input_dtypes), inp.dtype))
        else:
            fix = "convert the int8 variant with `--int8-input uint8`" if inp.dtype == "int8" else (
                "use the full-integer (int8 variant, uint8 input) model" if c.input_dtypes == ("uint8",)
                else f"use a model with {' or '.join(c.input_dtypes)} input")
            add(_fail("input.dtype", list(c.input_dtypes), inp.dtype, f"{c.name} rejects {inp.dtype} input", fix))
        add(input_quantization_check(f))
        # normalization
        if inp.dtype != "float32":
            add(_na("input.normalization", "NormalizationOptions for float input", f"{inp.dtype} input: not needed"))
        elif c.float_needs_normalization:
            if meta.readable and meta.normalization:
                add(_pass("input.normalization", "NormalizationOptions", {"mean": list(meta.normalization[0]), "std": list(meta.normalization[1])}))
            else:
                add(_fail("input.normalization", "NormalizationOptions in the input metadata", None,
                          "float input without normalization metadata: the app cannot scale pixels",
                          "write metadata with mean/std (`liteship metadata`, or tflite-support's object_detector writer)"))
        elif c.fixed_normalization:
            m, s = c.fixed_normalization
            if meta.readable and meta.normalization:
                mean, std = meta.normalization
                if all(abs(v - m) < 1e-3 for v in mean) and all(abs(v - s) < 1e-3 for v in std):
                    add(_pass("input.normalization", f"(x-{m})/{s}", {"mean": list(mean), "std": list(std)}))
                else:
                    add(_fail("input.normalization", f"(x-{m})/{s}", {"mean": list(mean), "std": list(std)},
                              f"the app hard-codes (x-{m})/{s}", f"change IMAGE_MEAN/IMAGE_STD in the app to {list(mean)}/{list(std)}"))
            else:
                add(_pass("input.normalization", f"(x-{m})/{s}", None,
                          f"warning: no normalization metadata; the app assumes (x-{m})/{s}"))
        else:
            add(_na("input.normalization", None, f"{c.name} does not read normalization"))

    # -- postprocess op, flex, op versions
    pp = info.postprocess
    n_pp = info.op_counts.get(POSTPROCESS_OP_NAME, 0)
    if n_pp == 1:
        add(_pass("postprocess.op", 1, 1))
    else:
        add(_fail("postprocess.op", f"exactly 1 {POSTPROCESS_OP}", n_pp,
                  "the app reads decoded boxes from the postprocess op" if n_pp == 0 else "several postprocess ops",
                  "export with the OD API's export_tflite_graph_tf2.py (TFLite_Detection_PostProcess), then convert"))
    flex = list(info.flex_ops)
    if flex:
        add(_fail("ops.flex", [], flex, "Flex (Select TF) ops need the tensorflow-lite-select-tf-ops AAR, which the app does not ship",
                  f"the runtime says \"{C.TFLITE_FLEX_ERROR}\": convert with builtin ops only (no SELECT_TF_OPS); "
                  "use the TFLite postprocess op instead of TF NMS"))
    else:
        add(_pass("ops.flex", [], []))
    add(_op_versions(c, info))

    # -- outputs
    roles = output_role_names(info)
    if len(info.outputs) != 4:
        add(_fail("outputs.count", 4, len(info.outputs), "the app reads 4 outputs: boxes, classes, scores, count",
                  "export with the postprocess op (raw box/class heads cannot be read by the app)"))
    else:
        add(_pass("outputs.count", 4, 4))
    want = [r.value for r in POSTPROCESS_PORT_ORDER]
    if len(roles) == 4 and set(roles) == set(want):
        add(_pass("outputs.roles", f"the 4 ports {want} in any order", roles))
    else:
        add(_fail("outputs.roles", "the 4 postprocess ports", roles,
                  "each output must be one TFLite_Detection_PostProcess port (None = another tensor)",
                  "make the postprocess op's 4 outputs the model's outputs"))
    if c.binding == C.Binding.INDEX:
        expected = [r.value for r in c.index_order]
        found = roles[: len(expected)]
        if found == expected:
            add(_pass("outputs.order", expected, found, "read by index"))
        else:
            add(_fail("outputs.order", expected, found, f"{c.name} reads outputs by index",
                      "reorder outputs to port order: `liteship run --output-order port` (the default)"))
    else:
        add(_output_names(c, meta, roles))

    # -- metadata and labels
    if meta.readable:
        add(_pass("metadata.present", True, True))
    elif c.metadata_required:
        add(_fail("metadata.present", True, meta.error or False,
                  "metadata is unreadable" if meta.present else f"{c.name} needs TFLite metadata",
                  "write metadata with tflite-support's object_detector writer (`liteship metadata`)"))
    else:
        add(_na("metadata.present", None, f"{c.name} does not read metadata"))
    add(_labels(c, f, roles))
    add(_label_count(c, f, roles))

    # -- N
    want_n = max_results if max_results is not None else c.max_results
    n = pp[0].options.max_detections if len(pp) == 1 else None
    if n is None:
        add(_na("postprocess.max_detections", f">= {want_n}", "no single postprocess op with max_detections (see postprocess.op)"))
    elif n >= want_n:
        add(_pass("postprocess.max_detections", f">= {want_n}", n))
    else:
        add(_fail("postprocess.max_detections", f">= {want_n}", n,
                  f"the app asks for {want_n} results, the op returns at most {n}",
                  f"re-export with `liteship run --max-detections {want_n}` (or lower the app's max results)"))

    # -- static output shapes (buffers allocated from them)
    if c.static_output_shapes:
        add(_static_output_shapes(info))

    # -- GPU, the real runtime
    add(_gpu(c, f.gpu))
    checks.extend(runtime_checks(c, f))
    return checks


def runtime_checks(c: C.Contract, f: Facts) -> list[Check]:
    """``<runtime>.load`` and ``<runtime>.detections`` of the contract's runtime, if it has one."""
    if c.runtime_check is None:
        return []
    run = f.runtimes.get(c.runtime_check) if f.runtimes is not None else None
    return judge_runtime(run, c.runtime_check)


def name_binding(names: list[str]) -> tuple[list[int], str]:
    """Where an app that finds outputs by name (with the Task Library's / MediaPipe's fallback)
    reads location, category, score, number of detections: (positions, warning). When one name
    is missing from the metadata it logs the warning and reads positions 0..3
    (GetOutputTensorIndices in object_detector.cc / detection_postprocessing_graph.cc)."""
    wanted = list(C.DETECTION_OUTPUT_NAMES)
    for i, name in enumerate(wanted):
        if name not in names:
            shown = names[i] if i < len(names) else ""
            warning = C.TASK_LIBRARY_NAMES_WARNING.format(
                name=shown, i=i, names=", ".join(f'"{n}"' for n in wanted))
            return list(range(len(wanted))), warning
    return [names.index(name) for name in wanted], ""


def _output_names(c: C.Contract, meta: MetadataView, roles: list[str | None]) -> Check:
    cid = "outputs.names"
    want = list(C.DETECTION_OUTPUT_NAMES)
    names = list(meta.output_names) if meta.readable else None
    if names is None:
        return _fail(cid, roles, None, "outputs are found by metadata name, the model has no readable metadata",
                     "write metadata with tflite-support's object_detector writer (`liteship metadata`)")
    if names == roles and len(names) == 4:
        return _pass(cid, roles, names, "found by metadata name (any output order works)")
    if c.name_fallback_to_index and len(roles) == 4:
        positions, warning = name_binding(names)
        read = [roles[p] if p < len(roles) else None for p in positions]
        if warning and read == want:
            return _pass(cid, roles, names, f"warning: the app logs \"{warning}\" and reads outputs 0..3, which "
                                           "are in port order here: it works; rename the metadata outputs to silence it")
    return _fail(cid, roles, names, "metadata output names do not match the tensors' roles",
                 "rewrite the metadata (`liteship metadata`): names must be location, category, score, number of detections")


def _static_output_shapes(info: ModelInfo) -> Check:
    """Every output's stored shape must be static and, for the postprocess ports, hold what
    the op writes: CompiledModel sizes its buffers from them (LiteRT#9518)."""
    from liteship.converter.static_shapes import postprocess_output_shapes

    cid = "outputs.static_shape"
    wanted: dict[int, tuple[int, ...]] = {}
    if len(info.postprocess) == 1:
        try:
            op = info.postprocess[0]
            wanted = {op.tensor_for(r): s for r, s in postprocess_output_shapes(op).items()}
        except Exception:  # noqa: BLE001 - broken options are reported by other checks
            wanted = {}
    found = [list(t.shape) for t in info.outputs]
    expected = [list(wanted.get(t.index, t.shape)) for t in info.outputs]
    too_small, dynamic, larger = [], [], []
    for t in info.outputs:
        stored, need = tuple(t.shape), wanted.get(t.index)
        if not stored or any(d <= 0 for d in stored):
            (too_small if need else dynamic).append(f"tensor {t.index} {t.name!r}: {list(stored)}")
        elif need is not None and int(np.prod(stored)) < int(np.prod(need)):
            too_small.append(f"tensor {t.index} {t.name!r}: {list(stored)} < {list(need)}")
        elif need is not None and stored != need:
            larger.append(f"tensor {t.index}: {list(stored)} (op writes {list(need)})")
    if too_small or dynamic:
        return _fail(cid, expected, found,
                     "CompiledModel allocates output buffers from these shapes; the postprocess op writes more: "
                     + "; ".join(too_small + dynamic),
                     "store the real shapes (`liteship run` does: liteship/converter/static_shapes.py); LiteRT says "
                     "\"Custom allocation is too small for tensor idx: N\" / \"Failed to allocate tensors\" or "
                     "corrupts memory (google-ai-edge/LiteRT#9518)")
    if larger:
        return _pass(cid, expected, found, "warning: larger than what the op writes (works; the rest of each "
                                           "buffer is unused): " + "; ".join(larger))
    return _pass(cid, expected, found)


def _op_versions(c: C.Contract, info: ModelInfo) -> Check:
    if c.op_table is C.OpTable.LITERT_REGISTER:
        return _litert_op_versions(c, info)
    cid = "ops.versions"
    if c.runtime is None:
        return _na(cid, c.runtime_note, f"not pinned: {c.runtime_note}")
    too_new, unverified, unknown = [], [], []
    beyond_table = C.version_key(c.runtime) > C.version_key(C.TABLE_SNAPSHOT)
    for name, version in info.op_versions:
        if name.startswith("FLEX:"):
            continue  # reported by ops.flex
        if name.startswith("BUILTIN_"):
            unknown.append(name)
            continue
        top = C.max_supported_version(name, c.runtime)
        if top is None:
            continue
        table_max = len(C.MIN_RUNTIME_FOR_OP_VERSION[name])
        if version <= top:
            continue
        if version > table_max and beyond_table:
            unverified.append(f"{name} v{version}")
        else:
            too_new.append(f"{name} v{version} (max v{top})")
    mrv = info.min_runtime_version
    if mrv and C.version_key(mrv) > C.version_key(c.runtime):
        too_new.append(f"min_runtime_version {mrv}")
    expected = f"op versions of TFLite {c.runtime} ({c.runtime_note})"
    if too_new or unknown:
        return _fail(cid, expected, too_new + unknown,
                     f"ops newer than the pinned runtime {c.runtime}" + (f"; unknown builtins {unknown}" if unknown else ""),
                     "convert with an older TensorFlow/converter, or move the app to a newer runtime")
    msg = f"warning: not in the {C.TABLE_SNAPSHOT} table, unverified: {unverified}" if unverified else ""
    return _pass(cid, expected, "all supported", msg)


def _litert_op_versions(c: C.Contract, info: ModelInfo) -> Check:
    """Every op against the versions LiteRT 2.x's BuiltinOpResolver registers (exact table)."""
    from liteship.validation import litert_ops

    cid = "ops.versions"
    too_new, missing = [], []
    for name, version in info.op_versions:
        if name.startswith("FLEX:"):
            continue  # reported by ops.flex
        if name.startswith("CUSTOM:"):
            if name[len("CUSTOM:"):] not in litert_ops.CUSTOM_OPS:
                missing.append(name)
            continue
        top = litert_ops.MAX_OP_VERSION.get(name)
        if top is None:
            missing.append(name)
        elif version > top:
            too_new.append(f"{name} v{version} (max v{top})")
    expected = f"op versions LiteRT {c.runtime} registers ({litert_ops.SOURCE})"
    if too_new or missing:
        first = too_new[0].split(" (")[0].rsplit(" v", 1) if too_new else None
        words = (f"Didn't find op for builtin opcode '{first[0]}' version '{first[1]}'. An older version of this "
                 "builtin might be supported. Are you using an old TFLite binary with a newer model?") if first else (
                 f"Encountered unresolved custom op: {missing[0].split(':', 1)[-1]}.")
        return _fail(cid, expected, too_new + missing,
                     "ops the LiteRT 2.x runtime does not register" + (f" (unknown: {missing})" if missing else ""),
                     f"LiteRT says \"{words}\": convert with a TensorFlow no newer than the app's LiteRT, or update "
                     "the app's com.google.ai.edge.litert dependency")
    return _pass(cid, expected, "all registered")


def _category_position(roles: list[str | None]) -> int | None:
    return roles.index(OutputRole.CLASSES.value) if OutputRole.CLASSES.value in roles else None


def _label_file(c: C.Contract, f: Facts, roles: list[str | None]) -> LabelFile | None:
    pos = _category_position(roles)
    files = f.meta.output_files.get(pos, ()) if pos is not None else ()
    for lf in files:
        if lf.type == LABELS_TYPE and (c.label_file is None or lf.name == c.label_file):
            return lf
    return None


def _labels(c: C.Contract, f: Facts, roles: list[str | None]) -> Check:
    cid = "labels.file"
    want = f"{c.label_file or 'a label file'} ({LABELS_TYPE}) on the category tensor"
    if not c.labels_required:
        return _na(cid, None, f"{c.name} ships its labels with the app")
    if not f.meta.readable:
        return _fail(cid, want, None, "no readable metadata, so no label file",
                     "write metadata with labelmap.txt attached (`liteship metadata`)")
    lf = _label_file(c, f, roles)
    if lf is not None and lf.lines is not None:
        return _pass(cid, want, lf.name)
    pos = _category_position(roles)
    attached = [x.name for x in f.meta.output_files.get(pos, ())] if pos is not None else []
    found = {"on_category_tensor": attached, "packed": list(f.meta.packed_files)}
    if lf is not None:
        return _fail(cid, want, found, f"{lf.name} is named in the metadata but not packed in the model",
                     "populate the metadata with the label file (MetadataPopulator.load_associated_files)")
    if c.label_file and (attached or f.meta.packed_files):
        return _fail(cid, want, found, f"{c.name} opens the label file named exactly {c.label_file!r}",
                     f"rename the label file to {c.label_file} and write the metadata again")
    return _fail(cid, want, found, "no label file attached to the category tensor",
                 "write metadata with the label file (`liteship metadata` attaches labelmap.txt)")


def _label_count(c: C.Contract, f: Facts, roles: list[str | None]) -> Check:
    cid = "labels.count"
    pp = f.info.postprocess
    k = pp[0].options.num_classes if len(pp) == 1 else None
    if not c.labels_required:
        return _na(cid, None, f"{c.name} ships its labels with the app")
    lf = _label_file(c, f, roles) if f.meta.readable else None
    if lf is None or lf.lines is None:
        return _na(cid, f">= num_classes ({k})", "no label file (see labels.file)")
    if k is None:
        return _na(cid, ">= num_classes", f"no single postprocess op with num_classes ({lf.lines} labels)")
    if lf.lines >= k:
        return _pass(cid, f">= {k}", lf.lines)
    return _fail(cid, f">= {k} (num_classes of {POSTPROCESS_OP})", lf.lines,
                 f"{lf.name} has {lf.lines} lines for {k} classes: detections of the last classes have no name",
                 "write one line per class id (id - 1 = line; gaps as ???), as `liteship run` does")


def _gpu(c: C.Contract, g: GpuResult | None) -> Check:
    cid = "gpu.compatibility"
    want = "GPU delegate takes every op but the postprocess op" if c.gpu == C.Gpu.REQUIRED else "GPU delegate optional (CPU fallback)"
    if g is None:
        return _na(cid, want, "not run (--no-gpu)")
    if not g.ran:
        return _skip(cid, want, g.reason)
    others = [op for op in g.incompatible if op != POSTPROCESS_OP]
    if not g.incompatible:
        return _pass(cid, want, [], g.summary)
    if others and c.gpu == C.Gpu.REQUIRED:
        return _fail(cid, want, list(g.incompatible), "ops the GPU delegate does not take",
                     "replace those ops (or quantization) with GPU-supported ones")
    return _pass(cid, want, list(g.incompatible),
                 f"warning: on CPU with the GPU delegate: {list(g.incompatible)}" if others else "the postprocess op runs on CPU (expected)")


# --- driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractResult:
    name: str
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> str:
        return Verdict.FAIL if any(ch.verdict == Verdict.FAIL for ch in self.checks) else Verdict.PASS

    def failed(self) -> list[str]:
        return [ch.id for ch in self.checks if ch.verdict == Verdict.FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "checks": [ch.to_dict() for ch in self.checks]}


@dataclass(frozen=True)
class LintResult:
    model: str
    contracts: dict[str, ContractResult]
    #: what each real runtime measured (empty when none ran)
    runtimes: dict[Runtime, RuntimeRun] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.verdict == Verdict.PASS for r in self.contracts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "verdict": Verdict.PASS if self.ok else Verdict.FAIL,
            "contracts": {k: v.to_dict() for k, v in self.contracts.items()},
            "runtimes": {str(k): v.to_dict() for k, v in self.runtimes.items()},
        }


def lint_bytes(
    data: bytes,
    names: tuple[str, ...] = C.NAMES,
    *,
    source: str = "the model",
    max_results: int | None = None,
    gpu: bool = False,
    runtime: bool = False,
    runtime_runs: Mapping[Runtime, RuntimeRun] | None = None,
    images: Sequence[np.ndarray] | None = None,
    path: Path | None = None,
) -> LintResult:
    """Lint model bytes; raises TFLiteFileProblem when they are not a TFLite model.

    ``runtime``: load and run the model in the real runtime of each named contract that has
    one (child processes, on ``images`` or one synthetic photo); ``runtime_runs``: those
    results measured already (``liteship run`` measures every variant at once).
    """
    unknown = [n for n in names if n not in C.BY_NAME]
    if unknown:
        raise ValueError(f"unknown contracts {unknown}; known: {list(C.NAMES)}")
    info = inspect_model(data, source=source)
    meta = read_metadata_view(data, info)
    wanted = [C.BY_NAME[n].runtime_check for n in names if C.BY_NAME[n].runtime_check is not None]
    tmp = None
    if (gpu or (runtime and runtime_runs is None and wanted)) and path is None:
        import tempfile

        tmp = tempfile.NamedTemporaryFile(suffix=".tflite", delete=False)
        tmp.write(data)
        tmp.close()
        path = Path(tmp.name)
    try:
        g = analyze_gpu(path) if gpu and path is not None else None
        if runtime and runtime_runs is None and wanted and path is not None:
            from liteship.validation import runtimes

            runtime_runs = runtimes.check({source: path}, wanted, images)[source]
    finally:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
    facts = Facts(info=info, meta=meta, gpu=g, runtimes=runtime_runs if (runtime or runtime_runs is not None) else None)
    results = {n: ContractResult(n, tuple(check_contract(C.BY_NAME[n], facts, max_results))) for n in names}
    return LintResult(model=source, contracts=results, runtimes=dict(runtime_runs or {}))


def lint_file(path: Path | str, names: tuple[str, ...] = C.NAMES, **kwargs: Any) -> LintResult:
    from liteship.tflite_inspect import read_model_file

    path = Path(path)
    return lint_bytes(read_model_file(path), names, source=str(path), path=path, **kwargs)


def _short(value: Any, width: int = 34) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(result: LintResult) -> str:
    """Compact human output: one block per contract, failing checks first with their fix."""
    order = {Verdict.FAIL: 0, Verdict.SKIP: 1, Verdict.PASS: 2, Verdict.NA: 3}
    lines = [f"lint {result.model}"]
    for name, r in result.contracts.items():
        lines.append(f"\n{name}: {r.verdict.upper()}")
        for ch in sorted(r.checks, key=lambda ch: order.get(ch.verdict, 4)):
            lines.append(f"  {ch.verdict:<4} {ch.id:<27} expected {_short(ch.expected)}, found {_short(ch.found)}")
            if ch.verdict == Verdict.FAIL:
                lines.append(f"       {ch.message}")
                lines.append(f"       fix: {ch.fix}")
            elif ch.message.startswith("warning:") or ch.verdict == Verdict.SKIP:
                lines.append(f"       {ch.message}")
    return "\n".join(lines)
