"""``liteship run`` and the stage commands: one thin flow over the stage modules.

pre-flight (nothing written) -> export -> calibration -> per variant: convert ->
reorder outputs -> metadata -> read back + checks -> models/<variant>.tflite ->
labelmap.txt -> report.json. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.errors import CalibrationProblem, ConversionProblem, ExportProblem, LiteshipError, UsageProblem
from liteship.progress import Progress
from liteship.report import Report, sha256
from liteship.types import (
    ConvertOptions,
    ExportOptions,
    FrozenGraphOptions,
    InputKind,
    Normalization,
    Variant,
    Verdict,
)

DEMO_DIR = Path(__file__).resolve().parent / "demo"


class Stage:
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
    #: mAP gates, gating contracts and parity tolerances (liteship/validation/gates.py)
    gates: Any = None
    #: the device stage (`run --device`): specs, liteship.device.deploy.DeployOptions, ...
    devices: tuple[str, ...] = ()
    device_options: Any = None
    device_transport: str | None = None
    device_key: Path | None = None
    device_variant: str | None = None
    device_images: int = 3


def demo_request(out: Path, **overrides: Any) -> Request:
    """The embedded demo: a small SSD trained on synthetic shapes, shipped in the package."""
    model = DEMO_DIR / "model"
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


def run(req: Request, progress: Progress | None = None) -> dict[str, Any]:
    """Run the flow; returns the report dict. Raises LiteshipError (with exit code)."""
    pools: list[Any] = []  # conversion worker processes, stopped whatever happens
    try:
        return _run(req, progress, pools)
    finally:
        for pool in pools:
            pool.close()


def _conversion_pool(req: Request, pools: list[Any]) -> Any:
    """Worker processes for converting the variants side by side (None: convert in-process).

    Started before the export so that the workers import TensorFlow meanwhile.
    """
    from liteship.converter import convert

    if req.until == Stage.EXPORT:
        return None
    workers = convert.worker_count(len(req.convert.variants))
    if workers < 2:
        return None
    pool = convert.ConversionPool(workers)
    pools.append(pool)
    return pool


def _run(req: Request, progress: Progress | None, pools: list[Any]) -> dict[str, Any]:
    from liteship.converter import export as export_mod
    from liteship.converter import labels as labels_mod
    from liteship.converter import preflight

    progress = progress or Progress(quiet=True)
    out = Path(req.out)
    check_out_dir(out)
    # conversion workers (when it pays off) import TensorFlow while this process does
    pool = _conversion_pool(req, pools)
    from liteship import nativelog

    with nativelog.captured():  # TF's import prints CUDA/absl notices from C++
        import tensorflow  # noqa: F401

        tensorflow.config.list_physical_devices("GPU")  # the "failed call to cuInit" notice, here

    # ---- pre-flight: nothing is written before all of this passes --------------------
    config = None
    with progress.step("pre-flight checks"):
        if req.kind is InputKind.CHECKPOINT:
            assert req.pipeline_config is not None and req.checkpoint_dir is not None
            config = preflight.read_pipeline_config(req.pipeline_config)
            facts = preflight.check_config(config, req.pipeline_config)
            preflight.resolve_checkpoint(req.checkpoint_dir, req.checkpoint)
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

    report = Report(command=list(req.command), out_dir=out)
    report.inputs = {
        "kind": req.kind.value if req.kind else None,
        "demo": req.pipeline_config is not None and DEMO_DIR in req.pipeline_config.resolve().parents,
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
        },
    }

    # ---- export ------------------------------------------------------------------------
    staged = None  # input (a): the desktop reference is written while the workers convert
    try:
        with progress.step("export"):
            if req.kind is InputKind.CHECKPOINT:
                assert req.pipeline_config is not None and req.checkpoint_dir is not None
                with nativelog.captured():  # TF's "failed call to cuInit" and similar C++ notices
                    staged = export_mod.export_staged(
                        req.pipeline_config, req.checkpoint_dir, out / "export", req.export, req.checkpoint, config=config,
                        normalization=req.normalization,
                    )
                    exported = staged.finish() if pool is None else staged.result
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
                    raise UsageProblem(
                        f"--norm-mean/--norm-std {_norm_text(req.normalization)} contradict the model's own preprocess "
                        f"({exported.feature_extractor}: {_norm_text(exported.normalization)}); with "
                        "--pipeline-config/--checkpoint-dir the normalization is read from the model: drop the flags"
                    )
                exported = dataclasses.replace(exported, normalization=req.normalization, normalization_source="cli")
        if label_map is not None and config is None and exported.num_classes:
            labels_mod.check_num_classes(label_map, exported.num_classes, None)
    except ExportProblem as exc:  # refusals (config, labels, checkpoint, input) write nothing
        if out.exists():
            report.errors.append(_error(exc))
            report.write("error")
        raise
    out.mkdir(parents=True, exist_ok=True)
    # From here on files are replaced: a report of an earlier run would describe other models
    # if this run is interrupted. It goes now; this run writes its own at the end.
    for name in ("report.json", "junit.xml", "report.html"):
        (out / name).unlink(missing_ok=True)
    report.export = exported.to_dict()
    labels_txt = labels_mod.labelmap_txt(label_map) if label_map is not None else None
    if labels_txt is not None:
        atomic.write_text(out / "labelmap.txt", labels_txt)
        report.labels = {"path": "labelmap.txt", "count": labels_txt.count("\n"), "source": str(label_map_path)}
    if req.until == Stage.EXPORT:
        report.write("ok")
        return report.to_dict("ok")

    # ---- calibration ---------------------------------------------------------------------
    variants = list(req.convert.variants)
    representative = None
    refused: CalibrationProblem | None = None
    if Variant.INT8 in variants:
        with progress.step("calibration images"):
            try:
                representative = _calibration(req, exported, staged.preprocess if staged is not None else None)
                report.calibration = {"images_dir": _s(req.images), **representative.stats_dict()}
            except CalibrationProblem as exc:
                refused = exc
                variants.remove(Variant.INT8)
                report.calibration = {"images_dir": _s(req.images), "refused": exc.message}
                progress.warn(f"int8 refused: {exc.message}")

    # ---- convert + metadata + checks per variant -----------------------------------------
    failed: list[str] = []
    converting = None  # variant -> Future of Converted, when the workers convert
    if pool is not None and len(variants) > 1:
        calibration = representative.calibration if representative is not None else None
        converting = pool.submit(exported, variants, calibration, req.convert.int8_input)
    if staged is not None and not staged.done:
        try:
            with progress.step("desktop reference"), nativelog.captured():
                exported = staged.finish()
        except ExportProblem as exc:
            report.errors.append(_error(exc))
            report.write("error")
            raise
        report.export = exported.to_dict()
    for variant in variants:
        with progress.step(f"convert {variant.value}"):
            entry = _variant(req, exported, variant, representative, labels_txt, converting)
        report.variants.append(entry)
        failed += [f"{variant.value}:{c['id']}" for c in entry["checks"] if c["verdict"] == Verdict.FAIL]
        if representative is not None and variant is Variant.INT8:
            report.calibration = {"images_dir": _s(req.images), **representative.stats_dict()}
            entry["checks"].append(_calibration_check(representative, exported))
            if entry["checks"][-1]["verdict"] == Verdict.FAIL:
                failed.append(f"{variant.value}:calibration.input_range")
    if pool is not None:
        pool.close()  # the workers' memory is not needed for validation
    for stale in set(Variant) - set(variants):  # from an earlier run into the same --out
        (out / "models" / f"{stale.value}.tflite").unlink(missing_ok=True)
    gate_error: LiteshipError | None = None
    if req.until == Stage.RUN and report.variants:
        with progress.step("parity and mAP"):
            gate_error = _validate(req, exported, report, labels_txt)
    if refused is not None:
        report.errors.append(_error(refused))
    if failed:
        err = ConversionProblem(f"converted models failed checks: {', '.join(failed)} (see report.json)")
        report.errors.append(_error(err))
        report.write("fail")
        raise err
    if gate_error is not None and representative is not None:
        int8 = next((v for v in report.variants if v["name"] == Variant.INT8.value), None)
        if int8 is not None and any(c["verdict"] == Verdict.FAIL for c in int8["checks"]):
            with progress.step("int8 per-layer error attribution"):
                from liteship.validation import attribution

                layers = attribution.attribute(exported, representative)
                int8["attribution"] = [layer.to_dict() for layer in layers]
    if gate_error is not None:
        report.errors.append(_error(gate_error))
        report.write("fail")
        raise gate_error
    if req.devices and report.variants:
        with progress.step(f"device stage ({len(req.devices)} device(s))"):
            device_error = _device_stage(req, report, progress)
        if device_error is not None:
            report.errors.append(_error(device_error))
            report.write("error" if device_error.exit_code >= 40 else "fail")
            raise device_error
    status = "ok" if refused is None else "partial"
    report.write(status)
    if refused is not None:
        raise refused
    return report.to_dict(status)


def _device_stage(req: Request, report: Report, progress: Progress) -> LiteshipError | None:
    """Deploy one variant (int8, or --device-variant, else the last converted) to the devices
    and compare with its desktop run; fills ``report.devices``. Returns the error to raise."""
    import tempfile

    from liteship.device.deploy import DeployOptions
    from liteship.device.validate import validate_on_devices

    names = [v["name"] for v in report.variants]
    wanted = req.device_variant or (Variant.INT8.value if Variant.INT8.value in names else names[-1])
    if wanted not in names:
        return UsageProblem(f"--device-variant {wanted} was not converted in this run (converted: {', '.join(names)})")
    variant = next(v for v in report.variants if v["name"] == wanted)
    from liteship.converter import calibration

    images = calibration.find_images(req.images)[0] if req.images is not None else []
    if not images:
        images = calibration.find_images(DEMO_DIR / "data" / "calibration")[0]
    with tempfile.TemporaryDirectory(prefix="liteship-device-") as tmp:
        entries, error = validate_on_devices(
            req.out / variant["path"], req.devices, images=images[: req.device_images],
            options=req.device_options or DeployOptions(), work_dir=Path(tmp), transport=req.device_transport,
            key_path=req.device_key, variant=wanted, log=progress.info)
    report.devices = entries
    return error


def _parity_images(req: Request, gt: list[Any] | None) -> list[Any] | None:
    """Loaders (``() -> uint8 RGB``) of the first ``--parity-images`` images: the ground-truth
    images (decoded as annotated), else the calibration folder's."""
    import functools

    from liteship.converter import calibration

    if gt is not None:
        return [g.load_rgb for g in gt][: req.parity_images]
    if req.images is not None:
        paths = calibration.find_images(req.images)[0][: req.parity_images]
        return [functools.partial(calibration.load_rgb, p) for p in paths]
    return None


def _gates(req: Request) -> Any:
    from liteship.validation.gates import Gates

    return req.gates if req.gates is not None else Gates()


def _lint(req: Request, report: Report) -> list[str]:
    """Lint every variant against every contract; the gating ones come from the gates."""
    from liteship.validation import contracts, lint

    failed: list[str] = []
    for v in report.variants:
        result = lint.lint_bytes(
            (req.out / v["path"]).read_bytes(), contracts.NAMES, source=v["path"], task_check=True, gpu=True,
            path=req.out / v["path"],
        )
        v["lint"] = {name: {"verdict": r.verdict, "failed": r.failed()} for name, r in result.contracts.items()}
        for name in _gates(req).contracts:
            for check in result.contracts[name].checks:
                v["checks"].append({**check.to_dict(), "id": f"lint.{name}.{check.id}"})
            failed += [f"{v['name']}:{name}:{cid}" for cid in result.contracts[name].failed()]
    return failed


def _validate(req: Request, exported: Any, report: Report, labels_txt: str | None) -> LiteshipError | None:
    """Parity against the desktop reference and mAP per variant; returns the gate failure."""
    from liteship.errors import AccuracyGateFailed, ParityFailed
    from liteship.types import Check
    from liteship.validation import evaluate, parity
    from liteship.validation.groundtruth import load_ground_truth

    gates = _gates(req)
    report.validation = {"gates": gates.to_dict()}
    lint_failed = _lint(req, report)
    names = labels_txt.splitlines() if labels_txt else None
    gt = load_ground_truth(req.ground_truth, names) if req.ground_truth is not None and names else None
    models = {v["name"]: (req.out / v["path"]).read_bytes() for v in report.variants}
    by_name = {v["name"]: v for v in report.variants}
    parity_failed: list[str] = []
    report.validation.update(ground_truth=_s(req.ground_truth), reference=None)
    loaders = _parity_images(req, gt)
    if exported.reference_dir is None or not loaders:
        why = "no desktop reference (inputs b/c)" if exported.reference_dir is None else "no images (--ground-truth or --images)"
        for v in report.variants:
            v["parity"] = None
            v["checks"].append(Check("parity", "skip", "reference vs variant", None, why).to_dict())
    else:
        images = (load() for load in loaders)  # one image decoded at a time
        ties = {name: gates.tolerances[Variant(name)].score_tie for name in models}
        results = parity.measure(exported.reference_dir, models, images, score_ties=ties,
                                 resize=exported.resize, normalization=exported.normalization)
        for name, result in results.items():
            tolerance = gates.tolerances[Variant(name)]
            checks = parity.judge(result, tolerance)
            by_name[name]["parity"] = {**result.to_dict(), "tolerance": dataclasses.asdict(tolerance)}
            by_name[name]["checks"] += [c.to_dict() for c in checks]
            parity_failed += [f"{name}:{c.id}" for c in checks if c.verdict == Verdict.FAIL]
    accuracy_failed: list[str] = []
    if gt is not None and names is not None:
        assert req.ground_truth is not None
        if exported.reference_dir is not None:
            ref = evaluate.reference_map(exported.reference_dir, req.ground_truth, names, resize=exported.resize)
            report.validation["reference"] = {"map50": ref.map50, "map": ref.map}
        for name in models:
            r = evaluate.evaluate_map(req.out / by_name[name]["path"], req.ground_truth, names, resize=exported.resize)
            by_name[name].update(map50=r.map50, map=r.map, map_detail=r.to_dict())
        base = by_name.get(Variant.FP32.value, {}).get("map50")
        for name, v in by_name.items():
            if base is not None and name != Variant.FP32.value and v["map50"] is not None:
                drop = base - v["map50"]
                ok = drop <= gates.max_map50_drop
                v["checks"].append(Check("accuracy.map50_drop_vs_fp32", Verdict.PASS if ok else Verdict.FAIL,
                                         f"<= {gates.max_map50_drop}", round(drop, 6), "",
                                         "" if ok else "quantization costs accuracy: more/better calibration images").to_dict())
                if not ok:
                    accuracy_failed.append(f"{name}:map50_drop")
            if gates.min_map50 is not None and v["map50"] is not None:
                ok = v["map50"] >= gates.min_map50
                v["checks"].append(Check("accuracy.min_map50", Verdict.PASS if ok else Verdict.FAIL, f">= {gates.min_map50}",
                                         round(v["map50"], 6), "", "" if ok else "the model is not accurate enough").to_dict())
                if not ok:
                    accuracy_failed.append(f"{name}:min_map50")
    if lint_failed:
        from liteship.errors import LintFailed

        return LintFailed(f"variants break the app contracts they must satisfy: {', '.join(lint_failed)} (see report.json)")
    if parity_failed:
        return ParityFailed(f"parity with the desktop reference failed: {', '.join(parity_failed)} (see report.json)")
    if accuracy_failed:
        return AccuracyGateFailed(f"accuracy gates failed: {', '.join(accuracy_failed)} (see report.json)")
    return None


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
    ds = calibration.representative_dataset(
        paths, preprocess, req.convert.calibration_images, expected.range(),
        source=req.images, already_skipped=skipped,
    )
    rep = _Representative(ds)
    next(iter(ds()))  # fail now (typed) when no image is usable
    return rep


def _calibration_check(representative: _Representative, exported: Any) -> dict[str, Any]:
    """Calibration sanity: the representative inputs must span the model's input range."""
    from liteship.converter.calibration import check_stats_against_range
    from liteship.types import Check

    stats = representative.calibration.stats()
    problems = check_stats_against_range(stats)
    found = [round(stats.min, 4), round(stats.max, 4)]
    expected = [round(x, 4) for x in stats.expected_range]
    if problems:
        model_norm = exported.model_normalization
        if model_norm is not None and model_norm != exported.normalization:
            problems.append(
                f"the calibration images were normalized with {exported.normalization_source} {_norm_text(exported.normalization)} "
                f"but the model's feature extractor {exported.feature_extractor} expects {_norm_text(model_norm)}")
            fix = (f"drop --norm-mean/--norm-std (the feature extractor's normalization is then used) or pass "
                   f"--norm-mean {_csv(model_norm.mean)} --norm-std {_csv(model_norm.std)}")
        else:
            fix = (f"preprocess calibration images like the model ({exported.normalization_source} "
                   f"normalization mean {list(exported.normalization.mean)}, std {list(exported.normalization.std)})")
        return Check("calibration.input_range", Verdict.FAIL, expected, found, "; ".join(problems), fix).to_dict()
    return Check("calibration.input_range", Verdict.PASS, expected, found).to_dict()


def _norm_text(n: Normalization) -> str:
    return f"mean {_csv(n.mean)} std {_csv(n.std)}"


def _csv(values: Any) -> str:
    vals = [f"{v:g}" for v in values]
    return vals[0] if len(set(vals)) == 1 else ",".join(vals)


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
    converting: dict[Variant, Any] | None = None,
) -> dict[str, Any]:
    from liteship.converter import convert, metadata, reorder, verify
    from liteship.tflite_inspect import inspect_model

    if converting is not None:
        converted = convert.pooled_result(converting[variant], exported, variant, representative, req.convert.int8_input)
    else:
        converted = convert.convert_variant(exported, variant, representative, req.convert.int8_input)
    model = reorder.reorder_outputs(converted.model, req.convert.output_order)
    md_summary = None
    if labels_txt is not None and req.until in (Stage.METADATA, Stage.RUN):
        letterboxed = exported.resize is not None and exported.resize.letterbox
        from liteship.converter.letterbox import app_instructions

        note = app_instructions(exported.resize) if letterboxed else None
        model = metadata.write_metadata(model, exported.normalization, labels_txt, note)
        md_summary = metadata.verify(model, exported.normalization, labels_txt.count("\n"))
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
        "ops": dict(sorted(info.op_counts.items())),
        "postprocess": info_d["postprocess"][0]["options"] if info_d["postprocess"] else None,
        "op_versions": [list(p) for p in info.op_versions],
        "conversion_seconds": round(converted.seconds, 3),
        "metadata": md_summary.to_dict() if md_summary else None,
        "runtime": run_facts,
        "checks": [c.to_dict() for c in checks],
    }


def _s(p: Path | None) -> str | None:
    return str(p) if p is not None else None


def _error(exc: LiteshipError) -> dict[str, Any]:
    return {"kind": exc.kind, "exit_code": exc.exit_code, "message": exc.message}
