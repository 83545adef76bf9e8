"""Which steps of a liteship run are cached, under which keys (the store: liteship/cache.py).

Cached per output folder, in ``OUT/.liteship-cache/`` (``--cache-dir DIR`` shares one
between folders, ``--no-cache`` turns it off). Every key also covers the tool versions and
liteship's own code (:func:`liteship.cache.tool_versions`).

=========  ==========================================================================  ==============================
kind       key covers                                                                  holds
=========  ==========================================================================  ==============================
export     the input's bytes (pipeline.config + checkpoint files, or the SavedModel,   ``export/`` (SavedModel +
           or the frozen graph), export options, --norm-mean/--norm-std                reference), the ExportResult
convert    export key, variant; int8 also the calibration images' bytes, their        the converter's output, its
           number and --int8-input                                                     seconds; int8: calibration stats
model      convert key, --output-order, --no-fold-normalization, labelmap.txt,        the shipped .tflite bytes
           whether metadata is written
parity     export key, the model's bytes, the parity images (source + count)          ParityResult
run        all of the above inputs + the gates, --no-runtime                           report.json (models/export by
                                                                                        reference to their entries),
                                                                                        the overlays' detections
=========  ==========================================================================  ==============================

So: unchanged inputs replay the whole run from the ``run`` entry without importing
TensorFlow (latency is measured again: it describes the machine now); only the gates, the
ground truth or the parity images changed: export and conversions come from the cache and
validation runs (parity of an unchanged model on unchanged images from the cache); one
variant's option changed: only that variant is converted. ``report.json`` says per step
where it came from (``cache.steps``: hit, miss, rebuilt = a corrupt entry was found and
replaced, off). Lint (which loads every variant in the real runtimes) and the app runs
behind mAP are measured again on every run that is not a replay.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.cache import MISS, OFF, Cache, digest_bytes, digest_files, digest_tree, key_of, tool_versions
from liteship.types import (
    FrozenGraphOptions,
    InputKind,
    InputStats,
    Normalization,
    Variant,
)

DIR_NAME = ".liteship-cache"
#: parity's detection score threshold (parity.measure's default), part of the parity key
PARITY_SCORE_THRESHOLD = 0.3


def cache_root(req: Any) -> Path | None:
    if not getattr(req, "cache", True):
        return None
    given = getattr(req, "cache_dir", None)
    return Path(given) if given is not None else Path(req.out) / DIR_NAME


def _s(p: Path | None) -> str | None:
    return str(Path(p).resolve()) if p is not None else None


def _ground_truth_digest(path: Path) -> str:
    """Folder / file bytes; a TFRecord shard pattern (``x.record-?????-of-N``): its shards."""
    path = Path(path)
    if path.exists():
        return digest_tree(path)
    stem = re.sub(r"-(?:\d{5}|\?{5})-of-(?:\d{5}|\?{5})$", "", path.name)
    return digest_files(sorted(path.parent.glob(stem + "-*-of-*")))


def _checkpoint_digest(folder: Path) -> str:
    files = [p for p in sorted(Path(folder).glob("*")) if p.is_file()
             and (p.name == "checkpoint" or p.suffix == ".index" or ".data-" in p.name)]
    return digest_files(files)


def _label_map_candidates(req: Any) -> list[Path]:
    """The label map(s) the run reads: --label-map, else what pipeline.config names (read
    as text, without the OD API, so that a replay needs no TensorFlow)."""
    if req.label_map is not None:
        return [Path(req.label_map)]
    if req.pipeline_config is None or not Path(req.pipeline_config).is_file():
        return []
    text = Path(req.pipeline_config).read_text(encoding="utf-8", errors="replace")
    found = []
    for name in re.findall(r'label_map_path\s*:\s*["\']([^"\']*)["\']', text):
        p = Path(name)
        found.append(p if p.is_absolute() else Path(req.pipeline_config).parent / p)
    return found


# --- typed results back from JSON -----------------------------------------------------


def _norm(d: Mapping[str, Any] | None) -> Normalization | None:
    return Normalization(tuple(d["mean"]), tuple(d["std"])) if d else None


def export_from_dict(d: Mapping[str, Any], root: Path | None) -> Any:
    """An ExportResult from its JSON form; paths marked relative are under ``root``."""
    from liteship.converter.export import ExportResult

    def path(value: Any) -> Path | None:
        if value is None:
            return None
        return root / value[len("@export/"):] if str(value).startswith("@export/") and root else Path(value)

    fg = d.get("frozen_graph")
    known = {f.name for f in dataclasses.fields(ExportResult)}
    return ExportResult(**{
        **{k: v for k, v in d.items() if k in known},
        "kind": InputKind(d["kind"]), "source": path(d["source"]), "input_shape": tuple(d["input_shape"]),
        "normalization": _norm(d["normalization"]), "reference_dir": path(d.get("reference_dir")),
        "frozen_graph": FrozenGraphOptions(**{**fg, "output_names": tuple(fg["output_names"])}) if fg else None,
        "notes": tuple(d.get("notes") or ()), "model_normalization": _norm(d.get("model_normalization")),
    })


def _export_to_dict(exported: Any, root: Path) -> dict[str, Any]:
    d = exported.to_dict()
    for k in ("source", "reference_dir"):
        if d.get(k) is not None:
            p = Path(d[k])
            if p.is_relative_to(root):
                d[k] = "@export/" + str(p.relative_to(root))
    return d


def stats_from_dict(d: Mapping[str, Any]) -> InputStats:
    return InputStats(d["count"], d["min"], d["max"], d["mean"], d["std"], tuple(d["expected_range"]),
                      tuple(d.get("files_skipped") or ()))


class CachedCalibration:
    """int8's calibration when its conversion comes from the cache: the statistics recorded
    with it (for the report and the calibration check); the images are read again only if
    something needs them (the per-layer attribution of a failing int8)."""

    def __init__(self, stats: InputStats, build: Callable[[], Any]) -> None:
        self._stats = stats
        self._build = build
        self._built: Any = None
        self.calibration = self

    def stats(self) -> InputStats:
        return self._stats

    def stats_dict(self) -> dict[str, Any]:
        return asdict(self._stats)

    def __call__(self) -> Any:
        if self._built is None:
            self._built = self._build()
        return self._built()


class StepCache:
    """The cache of one run (``req``: a pipeline.Request). ``record`` is the report's ``cache``."""

    def __init__(self, req: Any, cache: Cache) -> None:
        self.req = req
        self.cache = cache
        self.steps: dict[str, str] = {}
        self.record: dict[str, Any] = {"dir": str(cache.root) if cache.root else None, "steps": self.steps}
        self._export_saved = False
        self._models: dict[str, str] = {}  # variant -> model key (for the run entry)
        self._raw_meta: dict[Variant, dict[str, Any]] = {}

    @classmethod
    def for_request(cls, req: Any) -> StepCache:
        return cls(req, Cache(cache_root(req)))

    def _note(self, step: str, outcome: str) -> None:
        self.steps[step] = outcome

    # --- keys ------------------------------------------------------------------------

    @cached_property
    def tools(self) -> dict[str, Any]:
        return tool_versions()

    @cached_property
    def export_parts(self) -> dict[str, Any]:
        req = self.req
        if req.kind is InputKind.CHECKPOINT:
            source = {"pipeline_config": digest_tree(req.pipeline_config),
                      "checkpoint_files": _checkpoint_digest(req.checkpoint_dir), "checkpoint": req.checkpoint}
        elif req.kind is InputKind.SAVED_MODEL:
            source = {"saved_model": digest_tree(req.saved_model), "path": _s(req.saved_model)}
        else:
            source = {"frozen_graph": digest_tree(req.frozen_graph), "path": _s(req.frozen_graph),
                      "frozen_graph_options": asdict(req.frozen_graph_options)}
        return {"kind": req.kind.value if req.kind else None, **source,
                "export_options": asdict(req.export),
                "normalization": asdict(req.normalization) if req.normalization else None, "tools": self.tools}

    @cached_property
    def export_key(self) -> str:
        return key_of("export", self.export_parts)

    @cached_property
    def calibration_digest(self) -> str | None:
        return digest_tree(self.req.images) if self.req.images is not None else None

    def convert_key(self, variant: Variant) -> str:
        parts: dict[str, Any] = {"export": self.export_key, "variant": variant.value, "tools": self.tools}
        if variant is Variant.INT8:
            parts.update(images=self.calibration_digest, count=self.req.convert.calibration_images,
                         int8_input=self.req.convert.int8_input.value)
        return key_of("convert", parts)

    def model_key(self, variant: Variant, labels_txt: str | None) -> str:
        from liteship.pipeline import Stage

        return key_of("model", {
            "convert": self.convert_key(variant), "output_order": self.req.convert.output_order.value,
            "fold_normalization": self.req.convert.fold_normalization,
            "labels": digest_bytes(labels_txt.encode()) if labels_txt is not None else None,
            "metadata": labels_txt is not None and self.req.until in (Stage.METADATA, Stage.RUN), "tools": self.tools,
        })

    @cached_property
    def ground_truth_digest(self) -> str | None:
        return _ground_truth_digest(self.req.ground_truth) if self.req.ground_truth is not None else None

    @cached_property
    def parity_source(self) -> dict[str, Any]:
        if self.req.ground_truth is not None:
            return {"ground_truth": self.ground_truth_digest, "count": self.req.parity_images}
        return {"images": self.calibration_digest, "count": self.req.parity_images}

    @cached_property
    def run_key(self) -> str:
        req = self.req
        labels = [(str(p), digest_tree(p)) for p in _label_map_candidates(req)]
        gates = req.gates.to_dict() if req.gates is not None else None
        return key_of("run", {
            "export": self.export_parts, "images": self.calibration_digest, "label_map": labels,
            "convert": {"variants": [v.value for v in req.convert.variants], "int8_input": req.convert.int8_input.value,
                        "calibration_images": req.convert.calibration_images,
                        "output_order": req.convert.output_order.value,
                        "fold_normalization": req.convert.fold_normalization,
                        "gpu_precision": req.convert.gpu_precision.value},
            "runtime_checks": req.runtime_checks,
            "until": req.until, "ground_truth": self.ground_truth_digest, "ground_truth_path": _s(req.ground_truth),
            "parity_images": req.parity_images, "gates": gates,
            "inputs": [_s(req.pipeline_config), _s(req.checkpoint_dir), _s(req.label_map), _s(req.images)],
        })

    # --- export ----------------------------------------------------------------------

    def export(self) -> Any:
        """The cached export (its folder restored into ``OUT/export``), or None."""
        entry, outcome = self.cache.get("export", self.export_key)
        self._note("export", outcome)
        if entry is None:
            return None
        root = Path(self.req.out) / "export"
        if self.req.kind is InputKind.CHECKPOINT:
            _restore_tree(entry, "export", root)
        self._export_saved = True
        return export_from_dict(entry.meta["export"], root)

    def save_export(self, exported: Any) -> None:
        """Store the export once it is complete (input a: the reference written too)."""
        if self._export_saved or not self.cache.enabled:
            return
        root = Path(self.req.out) / "export"
        trees = {}
        if exported.kind is InputKind.CHECKPOINT:
            if exported.reference_dir is None or not Path(exported.reference_dir).is_dir():
                return  # the desktop reference is still being written
            trees = {"export": root}
        self.cache.put("export", self.export_key, meta={"export": _export_to_dict(exported, root)}, trees=trees)
        self._export_saved = True
        self.cache.prune("export", keep=3)

    # --- conversions -----------------------------------------------------------------

    def _raw(self, variant: Variant) -> tuple[Any, str]:
        return self.cache.get("convert", self.convert_key(variant))

    def to_convert(self, variants: list[Variant]) -> list[Variant]:
        """The variants the converter must run for (no cached conversion)."""
        if not self.cache.enabled:
            return list(variants)
        return [v for v in variants if not (self.cache.root / "entries" / "convert" / self.convert_key(v)).is_dir()]

    def calibration(self, build: Callable[[], Any]) -> Any:
        """int8's representative dataset (``build()``), or the cached statistics when int8's
        conversion is cached (the images are then not read)."""
        entry, _ = self._raw(Variant.INT8) if self.cache.enabled else (None, OFF)
        if entry is not None and entry.meta.get("calibration"):
            return CachedCalibration(stats_from_dict(entry.meta["calibration"]), build)
        return build()

    def model(self, variant: Variant, labels_txt: str | None) -> Any:
        """The shipped model (a converter.convert.Converted) from the cache, or None."""
        from liteship.converter.convert import Converted

        key = self.model_key(variant, labels_txt)
        entry, outcome = self.cache.get("model", key)
        self._note(f"model.{variant.value}", outcome)
        if entry is None:
            return None
        self._models[variant.value] = key
        raw = self.cache.root / "entries" / "convert" / entry.meta["convert_key"] / "manifest.json"
        try:  # keep the conversion as recently used as the model made from it (prune)
            raw.touch(exist_ok=True) if raw.exists() else None
        except OSError:
            pass
        return Converted(variant, entry.read_bytes("model.tflite"), float(entry.meta["seconds"]))

    def converted(self, variant: Variant) -> Any:
        """The converter's output from the cache, or None."""
        from liteship.converter.convert import Converted

        entry, outcome = self._raw(variant)
        self._note(f"convert.{variant.value}", outcome)
        if entry is None:
            return None
        return Converted(variant, entry.read_bytes("converted.tflite"), float(entry.meta["seconds"]))

    def save_converted(self, converted: Any, representative: Any = None) -> None:
        meta: dict[str, Any] = {"seconds": converted.seconds, "variant": converted.variant.value}
        if converted.variant is Variant.INT8 and representative is not None:
            meta["calibration"] = asdict(representative.calibration.stats())
        self.cache.put("convert", self.convert_key(converted.variant), meta=meta,
                       blobs={"converted.tflite": converted.model})
        self.cache.prune("convert", keep=16)

    def save_model(self, variant: Variant, labels_txt: str | None, model: bytes, seconds: float) -> None:
        key = self.model_key(variant, labels_txt)
        self.cache.put("model", key, meta={"seconds": seconds, "variant": variant.value,
                                           "convert_key": self.convert_key(variant)},
                       blobs={"model.tflite": model})
        self._models[variant.value] = key
        self.cache.prune("model", keep=16)

    # --- validation measurements ---------------------------------------------------------

    def parity(self, models: Mapping[str, bytes], compute: Callable[[dict[str, bytes]], dict[str, Any]],
               settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """ParityResult per variant; ``compute(models)`` runs for the uncached ones only.
        ``settings``: per variant name, whatever else the measurement depends on (score ties, resize)."""
        from liteship.validation.parity import ParityResult

        settings = settings or {}
        keys = {name: key_of("parity", {"export": self.export_key, "model": digest_bytes(m),
                                        "images": self.parity_source, "threshold": PARITY_SCORE_THRESHOLD,
                                        "settings": settings.get(name), "tools": self.tools})
                for name, m in models.items()}
        results: dict[str, Any] = {}
        for name, key in keys.items():
            entry, outcome = self.cache.get("parity", key)
            self._note(f"parity.{name}", outcome)
            if entry is not None:
                results[name] = ParityResult.from_dict(entry.meta["result"])
        missing = {name: m for name, m in models.items() if name not in results}
        if missing:
            fresh = compute(missing)
            for name, r in fresh.items():
                self.cache.put("parity", keys[name], meta={"result": r.to_dict()})
            results.update(fresh)
            self.cache.prune("parity", keep=32)
        return {name: results[name] for name in models}

    # --- the whole run -------------------------------------------------------------------

    def _replayable(self) -> bool:
        return self.cache.enabled and not getattr(self.req, "devices", ())

    def save_run(self, report: Any, labels_txt: str | None, overlays: Any) -> None:
        """After a run the judge passed (before any device stage): the report, pointing at the
        export and model entries, and the overlays' detections."""
        if not self._replayable():
            return
        data = report.to_dict("ok")
        data["export"] = _relocatable(data.get("export"), Path(self.req.out) / "export", "@export/")
        # a variant made without a cached step (the gpu variant, from the reference) is kept here
        inline = {f"models/{v['name']}.tflite": (Path(self.req.out) / v["path"]).read_bytes()
                  for v in data.get("variants", []) if v["name"] not in self._models}
        self.cache.put("run", self.run_key, meta={
            "report": data, "export_key": self.export_key if self._export_saved else None,
            "models": dict(self._models), "labels_txt": labels_txt, "overlays": _overlays_to_dict(overlays),
        }, blobs=inline)
        self.cache.prune("run", keep=8)

    def replay(self, state: Any, progress: Any = None) -> bool:
        """The whole run from the cache into ``state`` (a pipeline._Run; no TensorFlow):
        False when any piece is missing."""
        if not self._replayable():
            if self.cache.enabled:
                self._note("run", MISS)
            elif self.cache.root is None:
                self._note("run", OFF)
            return False
        entry, outcome = self.cache.get("run", self.run_key)
        self._note("run", outcome)
        if entry is None:
            return False
        meta = entry.meta
        stored: dict[str, Any] = meta["report"]
        models: dict[str, bytes] = {}
        for v in stored.get("variants", []):
            key = meta["models"].get(v["name"])
            if key:
                m, _ = self.cache.get("model", key)
                data = m.read_bytes("model.tflite") if m is not None else None
            else:
                rel = f"models/{v['name']}.tflite"
                data = entry.read_bytes(rel) if rel in entry.files else None
            if data is None or digest_bytes(data) != v["sha256"]:
                self._note("run", f"{MISS} (model {v['name']} not in the cache)")
                return False
            models[v["name"]] = data
        export_entry = None
        if meta.get("export_key"):
            export_entry, _ = self.cache.get("export", meta["export_key"])
            if export_entry is None:
                self._note("run", f"{MISS} (export not in the cache)")
                return False
        self._write_replay(state, stored, models, export_entry, meta.get("labels_txt"), progress)
        state.overlays = _overlays_from_dict(meta.get("overlays"), self.req, meta.get("labels_txt"))
        return True

    def _write_replay(self, state: Any, stored: dict[str, Any], models: dict[str, bytes], export_entry: Any,
                      labels_txt: str | None, progress: Any) -> None:
        from liteship.pipeline import Stage

        out = Path(self.req.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_temporaries(out)
        for name in ("report.json", "junit.xml", "report.html"):
            (out / name).unlink(missing_ok=True)
        if export_entry is not None and self.req.kind is InputKind.CHECKPOINT:
            _restore_tree(export_entry, "export", out / "export")
        if labels_txt is not None:
            atomic.write_text(out / "labelmap.txt", labels_txt)
        variants = [dict(v) for v in stored.get("variants", [])]
        for v in variants:
            atomic.write_bytes(out / v["path"], models[v["name"]])
        for stale in set(Variant) - {Variant(v["name"]) for v in variants}:
            (out / "models" / f"{stale.value}.tflite").unlink(missing_ok=True)
        self.record["replayed"] = True  # every step as recorded in the run entry; latency measured now
        report = state.report
        report.inputs, report.calibration = stored["inputs"], stored["calibration"]
        report.export = _relocatable(stored["export"], out / "export", "@export/", back=True)
        report.labels, report.validation, report.errors = stored["labels"], stored["validation"], stored["errors"]
        report.variants = variants
        report.latency = stored.get("latency")
        if self.req.until == Stage.RUN and variants:
            from liteship.validation import latency

            step = progress.step("desktop latency") if progress is not None else _null()
            with step:
                report.latency = latency.summary(
                    latency.measure_variants(out, variants, latency.first_image(self.req.images)))


def _overlays_to_dict(overlays: Any) -> dict[str, Any] | None:
    """The overlays' detections (the images are read again from the ground truth)."""
    if overlays is None:
        return None
    return {"labels": list(overlays.labels), "images": [
        {"filename": im.filename, "detections": {
            name: d if d is None or isinstance(d, str) else {"boxes": d.boxes.tolist(), "classes": d.classes.tolist(),
                                          "scores": d.scores.tolist()}
            for name, d in im.detections.items()}}
        for im in overlays.images]}


def _overlays_from_dict(d: Mapping[str, Any] | None, req: Any, labels_txt: str | None) -> Any:
    if not d or req.ground_truth is None or not labels_txt:
        return None
    import numpy as np

    from liteship.report.html.overlays import OverlayImage, Overlays
    from liteship.validation.detect import Detections
    from liteship.validation.groundtruth import load_ground_truth

    by_name = {g.filename: g for g in load_ground_truth(req.ground_truth, labels_txt.splitlines())}
    images = []
    for im in d["images"]:
        g = by_name.get(im["filename"])
        if g is None:
            continue
        dets = {name: x if x is None or isinstance(x, str) else Detections(np.asarray(x["boxes"], np.float32).reshape(-1, 4),
                                                        np.asarray(x["classes"], np.int64),
                                                        np.asarray(x["scores"], np.float32))
                for name, x in im["detections"].items()}
        images.append(OverlayImage(g.filename, g.load_rgb(), tuple(g.boxes), dets))
    return Overlays(tuple(d["labels"]), tuple(images))


def _relocatable(export: dict[str, Any] | None, root: Path, mark: str, back: bool = False) -> dict[str, Any] | None:
    """The report's export paths under ``root`` as ``mark``-relative (or back): a replay
    into another output folder (a shared --cache-dir, a copied folder) names its own files."""
    if not export:
        return export
    export = dict(export)
    for k in ("source", "reference_dir"):
        value = export.get(k)
        if value is None:
            continue
        if back and str(value).startswith(mark):
            export[k] = str(root / str(value)[len(mark):])
        elif not back and Path(value).is_relative_to(root):
            export[k] = mark + str(Path(value).relative_to(root))
    return export


def _map_from_dict(d: Mapping[str, Any]) -> Any:
    from liteship.validation.metrics import MapResult

    return MapResult(**{**d, "notes": tuple(d.get("notes") or ())})


def _restore_tree(entry: Any, prefix: str, dest: Path) -> None:
    """The entry's ``prefix/`` files as folder ``dest``, replaced atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        entry.copy_tree(prefix, staging)
        atomic.make_public(staging, directory=True)
        atomic.replace_dir(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


__all__ = ["DIR_NAME", "CachedCalibration", "StepCache", "cache_root", "export_from_dict"]
