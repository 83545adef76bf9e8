"""``liteship run`` and the stage commands: the stages, called in order.

pre-flight (no model written) -> export -> calibration -> per variant: convert -> reorder
outputs -> metadata -> read back + checks -> models/<variant>.tflite -> labelmap.txt ->
validation (lint, app runs, parity, mAP: measured) -> the judge (verdicts and the exit
code, :mod:`liteship.validation.judge`) -> device stage -> report.json / junit.xml /
report.html. Every file is written atomically; whatever stage fails, the reports are
written and agree with the exit code (except when ``--out`` itself is unusable).
"""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.errors import CalibrationProblem, InternalError, LiteshipError, UsageProblem
from liteship.progress import Progress
from liteship.report import Report, sha256, status_of
from liteship.types import (
    ConvertOptions,
    ExportOptions,
    FrozenGraphOptions,
    InputKind,
    Normalization,
    Check,
    Variant,
    Verdict,
)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
#: the embedded demo models (`liteship run --demo NAME`; the first is the default). Both were
#: trained by scripts/train_demo.py on the same synthetic data and share DEMO_DIR/data
#: (docs/demo.md): name -> the packed model folder (pipeline.config, checkpoint/, label_map.pbtxt)
DEMOS: dict[str, Path] = {
    "mobilenetv2": DEMO_DIR / "model",  # ssd_mobilenet_v2_keras, depth 0.35, 160x160
    "fpnlite": DEMO_DIR / "fpnlite" / "model",  # ssd_mobilenet_v2_fpn_keras (FPNLite), depth 0.35, 160x160
}
DEFAULT_DEMO = "mobilenetv2"


class Stage(enum.StrEnum):
    EXPORT = "export"
    CONVERT = "convert"
    METADATA = "metadata"
    RUN = "run"  # metadata + parity against the reference + mAP with ground truth


@dataclass(frozen=True)
class Request:
    out: Path
    kind: InputKind | None = None  # None = the embedded demo
    pipeline_config: Path | None = None
    checkpoint_dir: Path | None = None
    checkpoint: str | None = None
    saved_model: Path | None = None
    frozen_graph: Path | None = None
    frozen_graph_options: FrozenGraphOptions = field(default_factory=FrozenGraphOptions)
    label_map: Path | None = None
    images: Path | None = None
    normalization: Normalization | None = None
    export: ExportOptions = field(default_factory=ExportOptions)
    convert: ConvertOptions = field(default_factory=ConvertOptions)
    until: str = Stage.METADATA
    command: tuple[str, ...] = ()
    ground_truth: Path | None = None
    parity_images: int = 50
    #: load every variant in the real runtimes of the contracts (Task Library, MediaPipe, CompiledModel)
    runtime_checks: bool = True
    #: mAP gates, gating contracts and parity tolerances (liteship/validation/gates.py)
    gates: Any = None
    #: the device stage (`run --device`): specs, liteship.device.deploy.DeployOptions, ...
    devices: tuple[str, ...] = ()
    device_options: Any = None
    device_transport: str | None = None
    device_key: Path | None = None
    device_variant: str | None = None
    device_images: int = 3
    #: the step cache (liteship/stepcache.py): off with False; None dir = OUT/.liteship-cache
    cache: bool = True
    cache_dir: Path | None = None


def demo_request(out: Path, demo: str = DEFAULT_DEMO, **overrides: Any) -> Request:
    """The embedded demo ``demo`` (a key of DEMOS): a small SSD trained on synthetic shapes,
    shipped in the package with its validation and calibration images."""
    if demo not in DEMOS:
        raise UsageProblem(f"--demo {demo}: no such embedded demo; choose from {', '.join(DEMOS)}")
    model = DEMOS[demo]
    if not (model / "pipeline.config").is_file() or not list((model / "checkpoint").glob("*.index")):
        raise UsageProblem(f"--demo {demo}: its model is not in this installation ({model}); "
                           f"make it with `python scripts/train_demo.py all --arch {demo}` (docs/demo.md)")
    base = dict(
        out=out,
        kind=InputKind.CHECKPOINT,
        pipeline_config=model / "pipeline.config",
        checkpoint_dir=model / "checkpoint",
        label_map=model / "label_map.pbtxt",
        images=DEMO_DIR / "data" / "calibration",
        ground_truth=DEMO_DIR / "data" / "val",
    )
    base.update({k: v for k, v in overrides.items() if v is not None})
    return Request(**base)  # type: ignore[arg-type]


def _reference_needed(req: Request, variants: list[Variant], steps: Any) -> bool:
    """Whether this run writes the desktop reference (input a): validation compares with it
    and the gpu variant is made from it; a cached export keeps it for a later `run`. A
    `liteship metadata --no-cache` uses none of these and skips it (~17 s on the demo)."""
    return req.until != Stage.METADATA or Variant.GPU in variants or steps.cache.enabled


def check_out_dir(out: Path) -> None:
    """The output folder must be creatable and writable; checked before anything is written."""
    if out.exists() and not out.is_dir():
        raise UsageProblem(f"--out {out} is a file; give a folder path (it is created if missing)")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageProblem(f"--out {out}: {probe} is a file, so no folder can be created under it; choose another output folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageProblem(f"--out {out}: {probe} is not writable; choose another output folder")


def _resolve_label_map(req: Request, config: Any | None) -> Path | None:
    if req.label_map is not None:
        return req.label_map
    if config is not None:
        for reader in (config.train_input_reader, *config.eval_input_reader):
            path = reader.label_map_path
            if path:
                candidate = Path(path)
                if not candidate.is_absolute() and req.pipeline_config is not None:
                    candidate = req.pipeline_config.parent / candidate
                if candidate.is_file():
                    return candidate
    return None


@dataclass
class _Run:
    """What the stages leave for the end of the run."""

    report: Report
    overlays: Any = None
    refused: CalibrationProblem | None = None  # int8 refused: the other variants are written
    writable: bool = False  # --out is usable: reports can be written


def run(req: Request, progress: Progress | None = None) -> dict[str, Any]:
    """Run the flow; returns the report dict. Raises LiteshipError (with its exit code), after
    writing the reports; a bug (any other exception) is reported as an internal error and
    re-raised."""
    progress = progress or Progress(quiet=True)
    state = _Run(report=Report(command=list(req.command), out_dir=Path(req.out)))
    pools: list[Any] = []  # conversion worker processes, stopped whatever happens
    error: LiteshipError | None = None
    bug: Exception | None = None
    try:
        check_out_dir(Path(req.out))
        state.writable = True
        error = _run(req, progress, pools, state)
    except LiteshipError as exc:
        error = exc
    except Exception as exc:  # a bug: still reported, then re-raised for the CLI's boundary
        bug = exc
        error = InternalError(f"{type(exc).__name__}: {exc}")
    finally:
        for pool in pools:
            pool.close()
    if error is None and state.refused is not None:
        error = state.refused
    report = state.report
    if error is not None:
        report.add_error(error)
    if state.refused is not None and error is not state.refused:
        report.add_error(state.refused)
    status = status_of(error, partial=state.refused is not None)
    exit_code = error.exit_code if error is not None else 0
    data = report.write(status, exit_code, state.overlays) if state.writable else report.to_dict(status, exit_code)
    if bug is not None:
        raise bug
    if error is not None:
        error.report = data  # type: ignore[attr-defined]  (the CLI prints it with --json)
        raise error
    return data


def _conversion_pool(req: Request, pools: list[Any], to_convert: list[Variant] | None = None) -> Any:
    """Worker processes for converting the variants side by side (None: convert in-process).

    Started before the export so that the workers import TensorFlow meanwhile.
    """
    from liteship.converter import convert

    if req.until == Stage.EXPORT:
        return None
    workers = convert.worker_count(len(req.convert.variants if to_convert is None else to_convert))
    if workers < 2:
        return None
    pool = convert.ConversionPool(workers)
    pools.append(pool)
    return pool


def _check_request(req: Request) -> None:
    gates = _gates(req)
    if req.until == Stage.RUN and gates.min_map50 is not None and req.ground_truth is None:
        raise UsageProblem(
            f"--min-map50 {gates.min_map50} needs ground truth to measure mAP: pass --ground-truth "
            "(a VOC folder, a CSV or an OD API TFRecord), or drop the gate")


def _run(req: Request, progress: Progress, pools: list[Any], state: _Run) -> LiteshipError | None:
    from liteship.converter import export as export_mod
    from liteship.converter import labels as labels_mod
    from liteship.converter import preflight

    report = state.report
    out = Path(req.out)
    _check_request(req)
    from liteship.stepcache import StepCache

    steps = StepCache.for_request(req)  # cache: keys from the inputs' bytes, no TensorFlow
    report.cache = steps.record
    if steps.replay(state, progress):  # unchanged inputs: the whole run from the cache
        return None
    # conversion workers (when it pays off) import TensorFlow while this process does
    pool = _conversion_pool(req, pools, steps.to_convert(list(req.convert.variants)))
    from liteship import nativelog

    with nativelog.captured():  # TF's import prints CUDA/absl notices from C++
        import tensorflow  # noqa: F401

        tensorflow.config.list_physical_devices("GPU")  # the "failed call to cuInit" notice, here

    # ---- pre-flight: no model is written before all of this passes -------------------
    config = None
    tf1_facts = None  # input (d): a TF1 config + checkpoint (liteship/converter/tf1_export.py)
    with progress.step("pre-flight checks"):
        from liteship.converter import gpu_variant

        gpu_variant.require_input_a(req.kind, req.convert.variants)
        if req.kind is InputKind.CHECKPOINT:
            assert req.pipeline_config is not None and req.checkpoint_dir is not None
            config = preflight.read_pipeline_config(req.pipeline_config)
            facts = preflight.check_config(config, req.pipeline_config)
            prefix = preflight.resolve_checkpoint(req.checkpoint_dir, req.checkpoint)
        label_map_path = _resolve_label_map(req, config)
        label_map = None
        if label_map_path is not None:
            label_map = labels_mod.read_label_map(label_map_path)
            if config is not None:
                labels_mod.check_num_classes(label_map, facts.num_classes, req.pipeline_config)
        elif req.until in (Stage.METADATA, Stage.RUN):
            raise UsageProblem(
                "metadata needs labels: pass --label-map label_map.pbtxt (the OD API label map used for training)"
            )
        if config is not None:
            from liteship.converter import tf1_export

            tf1_facts = tf1_export.check(config, req.pipeline_config, prefix)
        forecast = None
        if config is not None and req.until != Stage.EXPORT:
            from liteship.converter import extractor_norm

            model_norm = req.normalization or extractor_norm.for_type(config.model.ssd.feature_extractor.type)
            forecast = _forecast(req, model_norm, progress)

    report.inputs = {
        "kind": req.kind.value if req.kind else None,
        "demo": req.pipeline_config is not None and DEMO_DIR in req.pipeline_config.resolve().parents,
        "demo_name": next((name for name, folder in DEMOS.items() if req.pipeline_config is not None
                           and req.pipeline_config.resolve().parent == folder.resolve()), None),
        "pipeline_config": _s(req.pipeline_config),
        "checkpoint_dir": _s(req.checkpoint_dir),
        "saved_model": _s(req.saved_model),
        "frozen_graph": _s(req.frozen_graph),
        "label_map": _s(label_map_path),
        "images": _s(req.images),
        "export_options": dataclasses.asdict(req.export),
        "convert_options": {
            "variants": [v.value for v in req.convert.variants],
            "int8_input": req.convert.int8_input.value,
            "calibration_images": req.convert.calibration_images,
            "output_order": req.convert.output_order.value,
            "gpu_precision": req.convert.gpu_precision.value,
            "fold_normalization": req.convert.fold_normalization,
        },
    }

    # ---- export ------------------------------------------------------------------------
    staged = None  # input (a): the desktop reference is written while the workers convert
    with progress.step("export"):
        exported = steps.export()  # from the cache: restored into OUT/export
        if exported is not None:
            pass
        elif tf1_facts is not None:
            from liteship.converter import tf1_export

            with nativelog.captured():
                exported = tf1_export.export_tf1(config, req.pipeline_config, prefix, out / "export", req.export, tf1_facts)
        elif req.kind is InputKind.CHECKPOINT:
            assert req.pipeline_config is not None and req.checkpoint_dir is not None
            with nativelog.captured():  # TF's "failed call to cuInit" and similar C++ notices
                staged = export_mod.export_staged(
                    req.pipeline_config, req.checkpoint_dir, out / "export", req.export, req.checkpoint, config=config,
                    normalization=req.normalization,
                )
                # with a pool the reference is written while the workers convert (below)
                exported = staged.result if pool is not None or not _reference_needed(
                    req, list(req.convert.variants), steps) else staged.finish()
        elif req.kind is InputKind.SAVED_MODEL:
            assert req.saved_model is not None
            exported = export_mod.inspect_saved_model(req.saved_model, req.normalization, "cli")
        else:
            assert req.frozen_graph is not None
            exported = export_mod.inspect_frozen_graph(
                req.frozen_graph, req.frozen_graph_options, req.normalization, "cli"
            )
        if req.normalization is not None and exported.normalization != req.normalization:
            if req.kind is InputKind.CHECKPOINT:
                from liteship.validation.judge import normalization_text

                raise UsageProblem(
                    f"--norm-mean/--norm-std {normalization_text(req.normalization)} contradict the model's own "
                    f"preprocess ({exported.feature_extractor}: {normalization_text(exported.normalization)}); with "
                    "--pipeline-config/--checkpoint-dir the normalization is read from the model: drop the flags"
                )
            exported = dataclasses.replace(exported, normalization=req.normalization, normalization_source="cli")
        if req.kind is InputKind.FROZEN_GRAPH:  # the reference comes from the graph's own raw heads
            from liteship.converter import graph_reference

            with nativelog.captured():
                exported = graph_reference.attach_reference(exported, out / "export" / "reference")
    if label_map is not None and config is None and exported.num_classes:
        labels_mod.check_num_classes(label_map, exported.num_classes, None)
    if forecast is None and req.until != Stage.EXPORT:  # inputs (b)/(c): known once inspected
        forecast = _forecast(req, exported.normalization, progress)
    report.inputs["consumer_forecast"] = forecast
    out.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temporaries(out)  # what a killed earlier run left behind
    # From here on files are replaced: a report of an earlier run would describe other models
    # if this run is interrupted. It goes now; this run writes its own at the end.
    for name in ("report.json", "junit.xml", "report.html"):
        (out / name).unlink(missing_ok=True)
    report.export = exported.to_dict()
    if staged is None or staged.done:
        steps.save_export(exported)
    labels_txt = labels_mod.labelmap_txt(label_map) if label_map is not None else None
    if labels_txt is not None:
        atomic.write_text(out / "labelmap.txt", labels_txt)
        report.labels = {"path": "labelmap.txt", "count": labels_txt.count("\n"), "source": str(label_map_path)}
    if req.until == Stage.EXPORT:
        steps.save_run(report, labels_txt, None)
        return None

    # ---- calibration ---------------------------------------------------------------------
    variants = list(req.convert.variants)
    representative = None
    if Variant.INT8 in variants and not exported.quantization_aware:  # QAT: int8 from the graph's ranges
        with progress.step("calibration images"):
            try:
                representative = steps.calibration(
                    lambda: _calibration(req, exported, staged.preprocess if staged is not None else None))
                report.calibration = {"images_dir": _s(req.images), **representative.stats_dict()}
            except CalibrationProblem as exc:
                state.refused = exc
                variants.remove(Variant.INT8)
                report.calibration = {"images_dir": _s(req.images), "refused": exc.message}
                progress.warn(f"int8 refused: {exc.message}")

    # ---- convert + metadata + checks per variant -----------------------------------------
    converting = None  # variant -> Future of Converted, when the workers convert
    pooled = [v for v in variants if v is not Variant.GPU]  # the gpu variant is made from the reference
    to_convert = steps.to_convert(pooled)
    if pool is not None and len(to_convert) > 1:
        calibration = representative.calibration if representative is not None else None
        converting = pool.submit(exported, to_convert, calibration, req.convert.int8_input)
    if staged is not None and not staged.done:
        if _reference_needed(req, variants, steps):
            with progress.step("desktop reference"), nativelog.captured():
                exported = staged.finish()
        else:
            exported = dataclasses.replace(staged.result, reference_dir=None)
        report.export = exported.to_dict()
    steps.save_export(exported)
    for variant in variants:
        with progress.step(f"convert {variant.value}"):
            if variant is Variant.GPU:
                entry = gpu_variant.variant_entry(req.out, exported, labels_txt, req.convert.gpu_precision,
                                                  with_metadata=req.until in (Stage.METADATA, Stage.RUN),
                                                  fold_normalization=req.convert.fold_normalization)
            else:
                entry = _variant(req, exported, variant, representative, labels_txt, converting, steps)
        report.variants.append(entry)
        if representative is not None and variant is Variant.INT8:
            from liteship.validation import judge

            report.calibration = {"images_dir": _s(req.images), **representative.stats_dict()}
            entry["checks"].append(judge.calibration_check(
                representative.calibration.stats(), exported.normalization, exported.normalization_source,
                exported.model_normalization, exported.feature_extractor).to_dict())
    if pool is not None:
        pool.close()  # the workers' memory is not needed for validation
    for stale in set(Variant) - set(variants):  # from an earlier run into the same --out
        (out / "models" / f"{stale.value}.tflite").unlink(missing_ok=True)

    # ---- validation (measure), then the judge ---------------------------------------------
    gates = _gates(req)
    if req.until == Stage.RUN and report.variants:
        from liteship.validation import latency

        with progress.step("desktop latency"):
            report.latency = latency.summary(
                latency.measure_variants(out, report.variants, latency.first_image(req.images)))
        with progress.step("parity and mAP"):
            _validate(req, exported, report, labels_txt, state, steps)
    from liteship.validation import judge

    groups = _check_groups(report)
    judge.mark_allowed_skips(groups, gates.allow_skip)
    decision = judge.decide(groups, gates.allow_skip)
    if decision is not None and representative is not None:
        int8 = next((v for v in report.variants if v["name"] == Variant.INT8.value), None)
        if int8 is not None and any(c["verdict"] == Verdict.FAIL for c in int8["checks"]):
            with progress.step("int8 per-layer error attribution"):
                from liteship.validation import attribution

                layers = attribution.attribute(exported, representative)
                int8["attribution"] = [layer.to_dict() for layer in layers]
    if decision is not None:
        return decision
    if state.refused is None:  # before the device stage: devices are never replayed
        steps.save_run(report, labels_txt, state.overlays)
    if req.devices and report.variants:
        with progress.step(f"device stage ({len(req.devices)} device(s))"):
            device_error = _device_stage(req, report, progress)
        if device_error is not None:
            return device_error
    return None


def _check_groups(report: Report) -> dict[str, list[dict[str, Any]]]:
    """Every gating check of the run, by what was checked (the judge decides on these)."""
    groups = {v["name"]: v["checks"] for v in report.variants}
    reference = (report.validation or {}).get("reference") or {}
    if reference.get("checks"):
        groups["reference"] = reference["checks"]
    return groups


def _forecast(req: Request, normalization: Normalization | None, progress: Progress) -> list[str]:
    """Which consumers the options and the model's normalization will fail (told up front)."""
    from liteship.validation.consumers import forecast

    lines = forecast(
        normalization, fold_normalization=req.convert.fold_normalization, int8_input=req.convert.int8_input.value,
        output_order=req.convert.output_order.value, max_detections=req.export.max_detections,
        float_variants=any(v is not Variant.INT8 for v in req.convert.variants),
        int8_variant=Variant.INT8 in req.convert.variants)
    for line in lines:
        if " fail" in line:
            progress.warn(line)
        else:
            progress.info(line)
    return lines


def _device_stage(req: Request, report: Report, progress: Progress) -> LiteshipError | None:
    """Deploy one variant (int8, or --device-variant, else the last converted) to the devices
    and compare with its desktop run; fills ``report.devices``. Returns the error to raise."""
    import tempfile

    from liteship.device.deploy import DeployOptions
    from liteship.device.validate import validate_on_devices

    names = [v["name"] for v in report.variants]
    deployable = [n for n in names if n != Variant.GPU.value] or names
    wanted = req.device_variant or (Variant.INT8.value if Variant.INT8.value in names else deployable[-1])
    if wanted not in names:
        return UsageProblem(f"--device-variant {wanted} was not converted in this run (converted: {', '.join(names)})")
    options = req.device_options or DeployOptions()
    if wanted == Variant.GPU.value:
        import dataclasses

        from liteship.converter import gpu_variant

        if options.engines is None:  # not the interpreter (the default): the engines the variant is for
            options = dataclasses.replace(options, engines=gpu_variant.DEPLOY_ENGINES)
        problem = gpu_variant.deploy_engines_problem("--device-variant gpu", options.engines)
        if problem is not None:
            return problem
    variant = next(v for v in report.variants if v["name"] == wanted)
    from liteship.converter import calibration

    images = calibration.find_images(req.images)[0] if req.images is not None else []
    if not images:
        images = calibration.find_images(DEMO_DIR / "data" / "calibration")[0]
    with tempfile.TemporaryDirectory(prefix="liteship-device-") as tmp:
        entries, error = validate_on_devices(
            req.out / variant["path"], req.devices, images=images[: req.device_images],
            options=options, work_dir=Path(tmp), transport=req.device_transport,
            key_path=req.device_key, variant=wanted, log=progress.info, allow_skip=_gates(req).allow_skip)
    report.devices = entries
    return error


def _validation_images(req: Request, gt: list[Any] | None) -> list[Any]:
    """The images every model runs on: all ground-truth images (mAP needs them all), else the
    first ``--parity-images`` calibration images."""
    from liteship.converter import calibration
    from liteship.validation import app_run

    if gt is not None:
        return app_run.images_from_ground_truth(gt)
    if req.images is not None:
        return app_run.images_from_folder(calibration.find_images(req.images)[0][: req.parity_images])
    return []


def _parity_images(req: Request, gt: list[Any] | None) -> list[Any] | None:
    """Loaders (``() -> uint8 RGB``) of the first ``--parity-images`` validation images."""
    images = _validation_images(req, gt)[: req.parity_images]
    return [image.load_rgb for image in images] or None


def _gates(req: Request) -> Any:
    from liteship.validation.gates import Gates

    return req.gates if req.gates is not None else Gates()


def _lint(req: Request, report: Report, images: list[Any] | None = None) -> None:
    """Lint every variant against every contract (measured), the real runtimes loading all
    variants at once (one child per runtime) on ``images``; the gating contracts' checks go to
    the variant's checks, the others stay in its ``lint`` summary."""
    from liteship.converter.gpu_variant import gating_contracts
    from liteship.validation import consumers, contracts, judge, lint, runtimes

    gating = _gates(req).contracts
    runs: dict[str, Any] = {}
    if req.runtime_checks:
        wanted = [c.runtime_check for c in contracts.CONTRACTS if c.runtime_check is not None]
        runs = runtimes.check({v["name"]: req.out / v["path"] for v in report.variants}, wanted, images)
    for v in report.variants:
        result = lint.lint_bytes(
            (req.out / v["path"]).read_bytes(), contracts.NAMES, source=v["path"], gpu=True,
            path=req.out / v["path"], runtime=req.runtime_checks, runtime_runs=runs.get(v["name"]),
        )
        gated = gating_contracts(v["name"], gating)
        v["lint"] = {name: {**consumers.lint_summary(r), "gating": name in gated} for name, r in result.contracts.items()}
        v["runtimes"] = {str(k): run.to_dict() for k, run in result.runtimes.items()}
        v["checks"] += [c.to_dict() for c in judge.lint_checks(result.contracts, gated)]


def _validate(req: Request, exported: Any, report: Report, labels_txt: str | None, state: _Run,
              steps: Any = None) -> None:
    """Measure: lint, every model's run on the validation images (sanity, mAP, overlays),
    parity against the desktop reference. Each measurement is judged into checks."""
    from liteship.report.html.overlays import OverlayImage, Overlays
    from liteship.validation import app_run, judge, parity
    from liteship.validation.groundtruth import load_ground_truth
    from liteship.validation.metrics import coco_map

    gates = _gates(req)
    report.validation = {"gates": gates.to_dict(), "ground_truth": _s(req.ground_truth), "reference": None}
    names = labels_txt.splitlines() if labels_txt else None
    gt = load_ground_truth(req.ground_truth, names) if req.ground_truth is not None and names else None
    _lint(req, report, [g.load_rgb() for g in gt[: req.parity_images]] if gt else None)
    from liteship.validation import consumers

    report.validation["consumers"] = consumers.matrix(report.variants)
    by_name = {v["name"]: v for v in report.variants}
    # only variants that passed their conversion checks run: a broken model fails with 21, not here
    runnable = {name: v for name, v in by_name.items()
                if not any(c["verdict"] == Verdict.FAIL and judge.gate_of(c["id"]) is judge.Gate.CONVERSION
                           for c in v["checks"])}
    for v in by_name.values():
        if v["name"] not in runnable:
            v["parity"] = None
            v["checks"].append(Check("parity", Verdict.SKIP, "reference vs variant", None,
                                     "not validated: the variant failed its conversion checks").to_dict())
    models = {name: (req.out / v["path"]).read_bytes() for name, v in runnable.items()}
    images = _validation_images(req, gt)
    raw_nms = None
    if Variant.GPU.value in models:  # its app decodes the heads: with the config's NMS, like the op
        from liteship.validation.runtimes.raw_ssd import Nms

        raw_nms = Nms(float(exported.score_threshold), float(exported.iou_threshold),
                      int(exported.max_detections), bool(exported.use_regular_nms))
    runs, kept = app_run.run_models(models, exported.reference_dir, images, min_score=gates.min_score,
                                    keep_images=6 if gt is not None else 0, raw_nms=raw_nms,
                                    resize=exported.resize)
    report.validation["images"] = {"count": len(images), "source": "ground truth" if gt is not None else "--images"}
    reference: dict[str, Any] | None = None
    if app_run.REFERENCE in runs:
        ref_run = runs[app_run.REFERENCE]
        reference = {"run": ref_run.to_dict(), "checks": [c.to_dict() for c in judge.sanity_checks(
            ref_run, model="the desktop reference")]}
        report.validation["reference"] = reference
    for name, v in runnable.items():
        v["sanity"] = runs[name].to_dict()
        v["checks"] += [c.to_dict() for c in judge.sanity_checks(runs[name], model=f"{name}.tflite")]

    loaders = _parity_images(req, gt)
    if exported.reference_dir is None or not loaders:
        verdict, why = ((Verdict.NA, "no desktop reference for this input kind (inputs b/c): parity not measured")
                        if exported.reference_dir is None else
                        (Verdict.SKIP, "no images to compare on: pass --ground-truth or --images"))
        for v in runnable.values():
            v["parity"] = None
            v["checks"].append(Check("parity", verdict, "reference vs variant", None, why).to_dict())
    elif runnable:
        folded = {name: exported.normalization for name, v in runnable.items()
                  if (v.get("input_normalization") or {}).get("folded_into_graph")}
        plain = {name: m for name, m in models.items() if name != Variant.GPU.value}

        ties = {name: gates.tolerances[Variant(name)].score_tie for name in plain}

        def measure(todo: dict[str, bytes]) -> dict[str, Any]:
            return parity.measure(exported.reference_dir, todo, (load() for load in loaders),
                                  folded={n: f for n, f in folded.items() if n in todo},
                                  score_ties={n: t for n, t in ties.items() if n in todo},
                                  resize=exported.resize, normalization=exported.normalization)

        settings = {n: {"score_tie": t, "resize": repr(exported.resize)} for n, t in ties.items()}
        results = (steps.parity(plain, measure, settings) if steps is not None else measure(plain)) if plain else {}
        if Variant.GPU.value in runnable:  # no postprocess op: parity in MediaPipe and CompiledModel
            from liteship.validation import gpu_parity

            gpu_parity.validate_entry(runnable[Variant.GPU.value], req.out, exported, (load() for load in loaders),
                                      names or [], gates.tolerances, req.convert.gpu_precision)
        for name, result in results.items():
            tolerance = gates.tolerances[Variant(name)]
            runnable[name]["parity"] = {**result.to_dict(), "tolerance": dataclasses.asdict(tolerance)}
            runnable[name]["checks"] += [c.to_dict() for c in judge.parity_checks(result, tolerance)]

    if gt is not None and names is not None:
        maps = {name: coco_map(gt, runs[name].detections, names) for name in runnable}
        for name, r in maps.items():
            runnable[name].update(map50=r.map50, map=r.map, map_detail=r.to_dict())
        ref_map50 = None
        if reference is not None:
            ref = coco_map(gt, runs[app_run.REFERENCE].detections, names)
            reference.update(map50=ref.map50, map=ref.map)
            ref_map50 = ref.map50
        per, ref_checks = judge.accuracy_checks({n: runnable[n]["map50"] for n in runnable}, ref_map50, gates)
        for name, checks in per.items():
            runnable[name]["checks"] += [c.to_dict() for c in checks]
        if reference is not None:
            reference["checks"] += [c.to_dict() for c in ref_checks]
        state.overlays = Overlays(tuple(names), tuple(
            OverlayImage(image.filename, rgb, image.gt_boxes or (),
                         {name: run.detections[image.filename] for name, run in runs.items()
                          if name != app_run.REFERENCE and image.filename in run.detections})
            for image, rgb in kept))


class _Representative:
    """Adapter: the calibration module's dataset + its statistics as report data."""

    def __init__(self, calibration: Any) -> None:
        self.calibration = calibration

    def __call__(self) -> Any:
        return self.calibration()

    def stats_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.calibration.stats())


def _calibration(req: Request, exported: Any, preprocess: Any = None) -> _Representative:
    """``preprocess``: the model's own (input a, before its reference is written), else it is
    read from the reference SavedModel, or resize + normalize (inputs b/c)."""
    from liteship.converter import calibration

    if req.images is None:
        raise CalibrationProblem(
            "int8 needs calibration images: pass --images DIR with 100+ photos like the ones the app will see "
            "(or leave int8 out with --variants fp32,fp16,dynamic)"
        )
    paths, skipped = calibration.find_images(req.images)
    _, h, w, _ = exported.input_shape
    if preprocess is None:
        preprocess = (_reference_preprocess(exported.reference_dir) if exported.reference_dir is not None
                      else calibration.resize_normalize(h, w, exported.normalization))
    # the range the model was trained on (its feature extractor's preprocess) when known:
    # calibrating with other --norm-mean/--norm-std fails the calibration check
    expected = exported.model_normalization or exported.normalization
    ds = calibration.Calibration(
        paths, preprocess, req.convert.calibration_images, expected.range(),
        source=req.images, already_skipped=skipped,
    )
    rep = _Representative(ds)
    next(iter(ds()))  # fail now (typed) when no image is usable
    return rep


def _reference_preprocess(reference_dir: Path) -> Any:
    """The model's own preprocess (from the reference SavedModel): exact by construction."""
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(str(reference_dir)).signatures["preprocess"]

    def pre(rgb: np.ndarray) -> np.ndarray:
        return fn(image=tf.constant(rgb[None].astype(np.float32)))["preprocessed"].numpy()

    return pre


def _variant(
    req: Request, exported: Any, variant: Variant, representative: Any, labels_txt: str | None,
    converting: dict[Variant, Any] | None = None, steps: Any = None,
) -> dict[str, Any]:
    from liteship.converter import convert, metadata, normfold, pixel_input, verify
    from liteship.tflite_inspect import inspect_model

    norm = exported.normalization
    # int8: no uint8 input can express a per-channel mean/std, so the converter puts it into
    # the graph (always); the float variants get it folded after conversion (MediaPipe cannot
    # apply one), unless --no-fold-normalization. Either way the input is then 0-255.
    in_converter = variant is Variant.INT8 and pixel_input.needed(exported)
    folded = in_converter or (variant is not Variant.INT8 and req.convert.fold_normalization
                              and normfold.is_per_channel(norm))
    if folded:
        norm = normfold.FOLDED_NORMALIZATION
    with_metadata = labels_txt is not None and req.until in (Stage.METADATA, Stage.RUN)
    converted = steps.model(variant, labels_txt) if steps is not None else None  # the shipped model, cached
    if converted is None:
        converted = steps.converted(variant) if steps is not None else None  # the converter's output, cached
        if converted is None:
            if converting is not None and variant in converting:
                converted = convert.pooled_result(converting[variant], exported, variant, representative,
                                                  req.convert.int8_input)
            else:
                converted = convert.convert_variant(exported, variant, representative, req.convert.int8_input)
            if steps is not None:
                steps.save_converted(converted, representative)
        model = _shipped(req, exported, converted.model, folded and not in_converter, norm,
                         labels_txt if with_metadata else None)
        if steps is not None:
            steps.save_model(variant, labels_txt, model, converted.seconds)
        converted = convert.Converted(variant, model, converted.seconds)
    model = converted.model
    md_summary = metadata.verify(model, norm, labels_txt.count("\n")) if with_metadata and labels_txt else None
    info = inspect_model(model)
    checks = verify.static_checks(info, variant, req.convert.output_order, req.convert.int8_input)
    run_check, run_facts = verify.runtime_check(model, exported.max_detections)
    checks.append(run_check)
    rel = Path("models") / f"{variant.value}.tflite"
    atomic.write_bytes(req.out / rel, model)
    info_d = info.to_dict()
    inp = info_d["inputs"][0]
    return {
        "name": variant.value,
        "path": str(rel),
        "sha256": sha256(model),
        "size_bytes": len(model),
        "input": {k: inp[k] for k in ("name", "dtype", "shape", "quantization")},
        "outputs": [
            {"position": o.position, "role": r.value if r else None, "name": o.name, "shape": list(o.shape), "dtype": o.dtype}
            for o, r in zip(info.outputs, info.output_roles)
        ],
        "output_order": req.convert.output_order.value,
        "input_normalization": {"folded_into_graph": folded, "mean": list(exported.normalization.mean),
                                "std": list(exported.normalization.std), "metadata_mean": list(norm.mean),
                                "metadata_std": list(norm.std)},
        "ops": dict(sorted(info.op_counts.items())),
        "postprocess": info_d["postprocess"][0]["options"] if info_d["postprocess"] else None,
        "op_versions": [list(p) for p in info.op_versions],
        "conversion_seconds": round(converted.seconds, 3),
        "metadata": md_summary.to_dict() if md_summary else None,
        "runtime": run_facts,
        "checks": [c.to_dict() for c in checks],
    }


def _shipped(req: Request, exported: Any, model: bytes, folded: bool, norm: Normalization,
             labels_txt: str | None) -> bytes:
    """The converter's output made into the shipped model: normalization folded (when
    ``folded``), outputs reordered, static output shapes, metadata (when ``labels_txt``)."""
    from liteship.converter import letterbox, metadata, normfold, reorder, static_shapes

    if folded:
        model = normfold.fold_normalization(model, exported.normalization)
    model = reorder.reorder_outputs(model, req.convert.output_order)
    model = static_shapes.static_output_shapes(model)  # CompiledModel sizes its buffers from them
    if labels_txt is not None:
        resize = exported.resize
        note = letterbox.app_instructions(resize) if resize is not None and resize.letterbox else None
        model = metadata.write_metadata(model, norm, labels_txt, note)
    return model


def _s(p: Path | None) -> str | None:
    return str(p) if p is not None else None
