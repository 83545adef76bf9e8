"""The optional ``gpu`` variant: the SSD's raw heads, no ``TFLite_Detection_PostProcess``.

Every other variant ends in the CPU-only custom op: the GPU delegate splits the graph
there, and LiteRT 2.x ``CompiledModel`` on GPU refuses the model outright
(google-ai-edge/LiteRT#7936). This variant stops at the heads:

* ``location`` [1,A,4]: raw box encodings (ty, tx, th, tw) of the OD API's
  faster_rcnn_box_coder, one row per anchor;
* ``score`` [1,A,C]: class scores with the config's score converter (sigmoid / softmax /
  identity, with its logit scale) applied in the graph, background column(s) removed: the
  last C columns, as the TFLite op's ``label_offset`` takes them. MediaPipe takes the max
  over the columns as the detection's class, so column i = ``labelmap.txt`` line i.

It is made from the desktop reference of input (a) (``export/reference``: its ``heads``
signature is the model's own ``predict`` + score converter, the very tensors the
postprocess op would receive), converted with builtin ops only (no custom op can slip in).
The anchors (``anchors.npy``) and the box-coder scales (the reference's pipeline.config)
go into MediaPipe's ``DETECTOR_METADATA`` (:mod:`liteship.converter.mediapipe_metadata`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship import atomic, nativelog
from liteship.converter import mediapipe_metadata as mpmd
from liteship.errors import ConversionProblem, UsageProblem
from liteship.tflite_inspect import ModelInfo, inspect_model
from liteship.types import POSTPROCESS_OP, Check, GpuPrecision, InputKind, Normalization, Variant, Verdict


@dataclass(frozen=True)
class GpuSpec:
    """What the gpu graph and its metadata are made of (read from the reference)."""

    reference_dir: Path
    input_shape: tuple[int, int, int, int]
    num_classes: int
    score_converter: str
    options: mpmd.DetectorOptions


def _reference_config(reference_dir: Path) -> Any:
    from liteship.converter import preflight

    return preflight.read_pipeline_config(Path(reference_dir) / "pipeline.config")


def spec_from_reference(reference_dir: Path, input_shape: tuple[int, int, int, int]) -> GpuSpec:
    """Anchors from ``anchors.npy`` (OD API center-size form, converted to MediaPipe's),
    scales from the faster_rcnn_box_coder of the reference's pipeline.config."""
    config = _reference_config(reference_dir)
    ssd = config.model.ssd
    coder = ssd.box_coder
    if coder.WhichOneof("box_coder_oneof") != "faster_rcnn_box_coder":
        raise ConversionProblem(f"the gpu variant needs faster_rcnn_box_coder (what MediaPipe decodes), "
                                f"found {coder.WhichOneof('box_coder_oneof')}")
    frc = coder.faster_rcnn_box_coder
    anchors = mpmd.anchors_from_odapi(np.load(Path(reference_dir) / "anchors.npy"))
    from liteship import odapi

    converter = odapi.module("protos.post_processing_pb2").PostProcessing.ScoreConverter.Name(ssd.post_processing.score_converter)
    options = mpmd.DetectorOptions(
        anchors=anchors,
        num_classes=int(ssd.num_classes),
        y_scale=float(frc.y_scale),
        x_scale=float(frc.x_scale),
        h_scale=float(frc.height_scale),
        w_scale=float(frc.width_scale),
        apply_exponential_on_box_size=True,  # faster_rcnn_box_coder: h = exp(th / h_scale) * ha
        sigmoid_score=False,  # the converter runs in the graph (softmax must: it spans the background)
    )
    return GpuSpec(Path(reference_dir), tuple(input_shape), int(ssd.num_classes), converter, options)  # type: ignore[arg-type]


def convert_heads(spec: GpuSpec, precision: GpuPrecision) -> tuple[bytes, float]:
    """The reference's ``heads`` as a 2-output TFLite model (builtin ops only)."""
    import tensorflow as tf

    t0 = time.perf_counter()
    loaded = tf.saved_model.load(str(spec.reference_dir))
    heads = loaded.signatures["heads"]
    num_classes = spec.num_classes

    class GpuModule(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.reference = loaded

        @tf.function(input_signature=[tf.TensorSpec(spec.input_shape, tf.float32, name="image")])
        def serve(self, image: Any) -> dict[str, Any]:
            out = heads(preprocessed=image)
            return {
                mpmd.LOCATION_NAME: out["box_encodings"],
                # the last C columns: what TFLite_Detection_PostProcess reads (label_offset =
                # columns - num_classes), so add_background_class true or false both work
                mpmd.SCORE_NAME: out["class_predictions"][:, :, -num_classes:],
            }

    module = GpuModule()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.allow_custom_ops = False
    if precision is GpuPrecision.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    with nativelog.captured() as log:
        try:
            model = converter.convert()
        except Exception as exc:  # ConverterError, ValueError, RuntimeError...
            text = str(exc).strip().splitlines() + log.text.strip().splitlines()
            detail = next((line for line in text if "error" in line.lower()), text[0] if text else type(exc).__name__)
            raise ConversionProblem(f"TFLite conversion of the gpu variant failed: {detail.strip()[:400]}") from exc
    return bytes(model), time.perf_counter() - t0


def output_names(info: ModelInfo) -> tuple[str, ...]:
    """The metadata name of each output, in output-list order (from the signature)."""
    sig = next((s for s in info.signatures if s.subgraph_index == 0), None)
    by_index = {index: name for name, index in (sig.outputs.items() if sig else ())}
    return tuple(by_index.get(o.index, "") for o in info.outputs)


# --- checks on the written model ------------------------------------------------------------


def _check(cid: str, ok: bool, expected: Any, found: Any, fix: str = "", message: str = "") -> Check:
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, expected, found, message, "" if ok else fix)


def static_checks(info: ModelInfo, spec: GpuSpec) -> list[Check]:
    a, c = spec.options.num_boxes, spec.num_classes
    names = output_names(info)
    shapes = {n: list(o.shape) for n, o in zip(names, info.outputs)}
    want = {mpmd.LOCATION_NAME: [1, a, 4], mpmd.SCORE_NAME: [1, a, c]}
    out_dtypes = sorted({o.dtype for o in info.outputs})
    dtype = info.inputs[0].dtype if info.inputs else None
    return [
        _check("no_custom_ops", not info.custom_ops, [], list(info.custom_ops),
               "the gpu variant must end at the raw heads (no TFLite_Detection_PostProcess)"),
        _check("no_flex_ops", not info.flex_ops, [], list(info.flex_ops), "convert with builtin ops only"),
        _check("output_count", len(info.outputs) == 2, 2, len(info.outputs), "the gpu variant has location and score only"),
        _check("output_shapes", shapes == want, want, shapes,
               "location must be [1,anchors,4] and score [1,anchors,num_classes] (background removed)"),
        _check("input_dtype", dtype == "float32", "float32", dtype, "the gpu variant takes the normalized float image"),
        _check("output_dtype", out_dtypes == ["float32"], ["float32"], out_dtypes, "MediaPipe needs float32 (or all-uint8) outputs"),
    ]


def runtime_check(model: bytes) -> tuple[Check, dict[str, Any]]:
    """Load and invoke with ai-edge-litert's Interpreter on a zero (mid-grey) input."""
    from ai_edge_litert.interpreter import Interpreter

    facts: dict[str, Any] = {}
    try:
        with nativelog.captured():
            interp = Interpreter(model_content=model, num_threads=1)
            interp.allocate_tensors()
            inp = interp.get_input_details()[0]
            interp.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
            interp.invoke()
        values = [interp.get_tensor(o["index"]) for o in interp.get_output_details()]
        facts["runtime_output_shapes"] = [list(v.shape) for v in values]
    except Exception as exc:  # noqa: BLE001 -- the interpreter raises ValueError/RuntimeError with C++ text
        return _check("litert_runs", False, "loads and runs", f"{type(exc).__name__}: {str(exc)[:300]}",
                      "the model does not run in ai-edge-litert; see the error"), facts
    finite = all(bool(np.isfinite(v).all()) for v in values)
    return _check("litert_runs", finite, "runs, finite outputs", facts["runtime_output_shapes"],
                  "the heads produce NaN/inf: check the score converter"), facts


def gpu_delegate_check(path: Path) -> Check:
    """TF's GPU-delegate analysis must accept every op (the point of this variant)."""
    from liteship.validation.lint import analyze_gpu

    g = analyze_gpu(path)
    want = "every op on the GPU delegate (0 unsupported)"
    if not g.ran:
        return Check("gpu_delegate.all_ops", Verdict.SKIP, want, None, g.reason)
    return _check("gpu_delegate.all_ops", not g.incompatible, want, list(g.incompatible),
                  "replace the listed ops with GPU-supported ones", g.summary)


# --- the variant, end to end --------------------------------------------------------------


def require_input_a(kind: InputKind | None, variants: tuple[Variant, ...]) -> None:
    """Refuse ``--variants ...,gpu`` for inputs (b)/(c) before anything is written."""
    if Variant.GPU in variants and kind is not InputKind.CHECKPOINT:
        raise UsageProblem(
            "the gpu variant is made from the model's own heads, which only input (a) provides: pass "
            "--pipeline-config and --checkpoint-dir, or leave gpu out of --variants"
        )


@dataclass(frozen=True)
class Built:
    model: bytes
    seconds: float
    spec: GpuSpec
    metadata: mpmd.GpuMetadataSummary | None
    #: the per-channel normalization was folded into the graph (its input is then 0-255)
    folded: bool
    #: what the metadata states (mean 0 / std 1 when folded)
    normalization: Normalization


def build(
    exported: Any, labels_txt: str | None, precision: GpuPrecision, with_metadata: bool = True,
    fold_normalization: bool = True,
) -> Built:
    """The gpu variant (with metadata when labels are given). A per-channel normalization is
    folded into the graph like the other float variants' (MediaPipe cannot apply one)."""
    from liteship.converter import normfold

    if exported.reference_dir is None:
        raise ConversionProblem("the gpu variant needs the desktop reference of input (a) (export/reference)")
    spec = spec_from_reference(exported.reference_dir, exported.input_shape)
    model, seconds = convert_heads(spec, precision)
    norm = exported.normalization
    folded = fold_normalization and normfold.is_per_channel(norm)
    if folded:
        model, norm = normfold.fold_normalization(model, norm), normfold.FOLDED_NORMALIZATION
    summary = None
    if with_metadata and labels_txt is not None:
        names = output_names(inspect_model(model))
        if sorted(names) != sorted((mpmd.LOCATION_NAME, mpmd.SCORE_NAME)):
            raise ConversionProblem(f"the converted gpu variant's outputs are {list(names)}, expected location and score")
        model = mpmd.write_metadata(model, norm, labels_txt, spec.options, names)  # type: ignore[arg-type]
        summary = mpmd.verify(model, norm, labels_txt.count("\n"), spec.options, names)  # type: ignore[arg-type]
    return Built(model, seconds, spec, summary, folded, norm)


def variant_entry(
    out: Path, exported: Any, labels_txt: str | None, precision: GpuPrecision, with_metadata: bool = True,
    fold_normalization: bool = True,
) -> dict[str, Any]:
    """Convert, write ``models/gpu.tflite`` and return its report entry: the keys every
    variant's entry has (``liteship.pipeline._variant``), plus ``gpu`` (precision, the
    DETECTOR_METADATA summary, the consumers it is for)."""
    from liteship.report import sha256

    built = build(exported, labels_txt, precision, with_metadata, fold_normalization)
    model, seconds, spec, summary = built.model, built.seconds, built.spec, built.metadata
    rel = Path("models") / f"{Variant.GPU.value}.tflite"
    atomic.write_bytes(Path(out) / rel, model)
    info = inspect_model(model)
    checks = static_checks(info, spec)
    run_check, run_facts = runtime_check(model)
    checks.append(run_check)
    checks.append(gpu_delegate_check(Path(out) / rel))
    inp = info.to_dict()["inputs"][0]
    names = output_names(info)
    return {
        "name": Variant.GPU.value,
        "path": str(rel),
        "sha256": sha256(model),
        "size_bytes": len(model),
        "input": {k: inp[k] for k in ("name", "dtype", "shape", "quantization")},
        "outputs": [
            {"position": o.position, "role": n or None, "name": o.name, "shape": list(o.shape), "dtype": o.dtype}
            for o, n in zip(info.outputs, names)
        ],
        "output_order": "by metadata name (location, score)",
        "input_normalization": {"folded_into_graph": built.folded, "mean": list(exported.normalization.mean),
                                "std": list(exported.normalization.std), "metadata_mean": list(built.normalization.mean),
                                "metadata_std": list(built.normalization.std)},
        "ops": dict(sorted(info.op_counts.items())),
        "postprocess": None,
        "op_versions": [list(p) for p in info.op_versions],
        "conversion_seconds": round(seconds, 3),
        "metadata": summary.to_dict() if summary else None,
        "runtime": run_facts,
        "checks": [c.to_dict() for c in checks],
        "gpu": {
            "precision": precision.value,
            "score_converter": spec.score_converter,
            "detector_metadata": spec.options.summary(),
            "consumers": CONSUMERS,
        },
        # the engines it is for on a phone, which `liteship deploy` validates (deploy_engines_problem)
        "deploy": {"engines": [{"engine": e, "accelerators": list(a)} for e, a in DEPLOY_ENGINES],
                   "liteship_deploy": True},
    }


def gating_contracts(variant: str, contracts: tuple[str, ...]) -> tuple[str, ...]:
    """The lint contracts whose failures fail ``run`` for ``variant``. The gpu variant exists
    for MediaPipe (its contract's 2-output rules) and CompiledModel apps that decode the
    heads themselves (measured by its parity, ``parity.compiled.*``); the apps that read the
    postprocess op's 4 outputs cannot load it by design, so their contracts report it but do
    not gate it."""
    return ("mediapipe",) if variant == Variant.GPU.value else contracts


#: which consumers can load the gpu variant, and why (the lint contracts measure it)
CONSUMERS: dict[str, str] = {
    "mediapipe": "yes: 2 outputs (location, score) + DETECTOR_METADATA; MediaPipe decodes and runs NMS (IoU 0.3)",
    "litert-compiled": "no for that contract's app (reads the postprocess op's outputs by index); yes for a "
                       "CompiledModel app that decodes the heads itself, CPU and GPU (no custom op; parity.compiled.*)",
    "task-library": "no: the Task Library's ObjectDetector needs the 4 TFLite_Detection_PostProcess outputs",
    "litert-sample": "no: reads decoded boxes/classes/scores by index from the postprocess op",
    "legacy-detect": "no: reads decoded boxes/classes/scores/count by index from the postprocess op",
    "bundled-app": "no: liteship's app reads the 4 postprocess outputs by metadata name",
}


#: how the gpu variant runs on a phone: the validation protocol's engines (MediaPipe Tasks
#: ObjectDetector, LiteRT 2.x CompiledModel) with the accelerators to validate it on
DEPLOY_ENGINES: tuple[tuple[str, tuple[str, ...]], ...] = (("mediapipe", ("gpu",)), ("compiled", ("cpu", "gpu")))


def deploy_engines_arg() -> str:
    """:data:`DEPLOY_ENGINES` as ``liteship deploy --engines`` spells it."""
    return ",".join(f"{engine}:{'+'.join(accs)}" for engine, accs in DEPLOY_ENGINES)


def is_gpu_form(model: bytes) -> bool:
    """The 2-output form (raw heads + DETECTOR_METADATA, no postprocess op) of this variant."""
    from liteship.tflite_metadata import read_metadata_view
    from liteship.validation.runtimes.raw_ssd import is_raw_ssd

    info = inspect_model(model)
    return is_raw_ssd(info, read_metadata_view(model, info))


def deploy_engines_problem(what: str, engines: tuple[tuple[str, tuple[str, ...]], ...] | None) -> UsageProblem | None:
    """``liteship deploy`` of the gpu variant runs the engines that read its two outputs by name
    and decode them (:data:`DEPLOY_ENGINES`: MediaPipe's ObjectDetector, CompiledModel + the app's
    own decoder). The interpreter engine (the default, the v1 request) stands for the apps that read
    the postprocess op's outputs (the LiteRT sample by index, the Task Library by name): it is
    refused up front, naming the engines that can run the model, before any device is touched."""
    usable = {engine for engine, _ in DEPLOY_ENGINES}
    wrong = ["interpreter (the default)"] if engines is None else [e for e, _ in engines if e not in usable]
    if not wrong:
        return None
    return UsageProblem(
        f"{what} is the gpu variant (outputs location and score + DETECTOR_METADATA, no {POSTPROCESS_OP}): "
        f"the engine {', '.join(wrong)} reads the postprocess op's outputs, like the LiteRT sample (by index) and "
        f"the Task Library, and cannot run it; the engines that can are {', '.join(sorted(usable))}: "
        f"pass --engines {deploy_engines_arg()} (MediaPipe ObjectDetector on GPU, CompiledModel on CPU and GPU)",
        hint="or deploy fp32/fp16/dynamic/int8 (they end in the postprocess op) to validate the interpreter engine")
