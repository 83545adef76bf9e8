"""The measurements, as the parent process runs them (heavy work goes to children).

Each ``measure_*`` returns ``(value, ..., details)``; the values are judged in goals.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from liteship.bench.manual import manual_path
from liteship.bench.runner import run_child, run_measured, summary, tail
from liteship.errors import BenchmarkProblem

VARIANTS = ("fp32", "fp16", "dynamic", "int8")


@dataclass
class BenchModel:
    """One model the benchmark measures: its training outputs and, once converted, its
    liteship output folder (models/, export/reference, labelmap.txt, report.json)."""

    name: str
    pipeline_config: Path
    checkpoint_dir: Path
    label_map: Path
    images: Path
    size: tuple[int, int]
    models_out: Path | None = None
    built: dict[str, Any] = field(default_factory=dict)

    def inputs(self) -> list[str]:
        return ["--pipeline-config", str(self.pipeline_config), "--checkpoint-dir", str(self.checkpoint_dir),
                "--label-map", str(self.label_map), "--images", str(self.images)]


@dataclass
class Setup:
    python: str
    work: Path
    quick: bool
    val: Path
    args: argparse.Namespace


def demo_model(models_out: Path | None = None) -> BenchModel:
    from liteship.pipeline import DEMO_DIR

    model = DEMO_DIR / "model"
    return BenchModel("demo", model / "pipeline.config", model / "checkpoint", model / "label_map.pbtxt",
                      DEMO_DIR / "data" / "calibration", _config_size(model / "pipeline.config"), models_out)


def build_ssd320(s: Setup) -> BenchModel:
    """The full-size SSD MobileNet v2 320x320 with random weights, built in a child."""
    from liteship.pipeline import DEMO_DIR

    result, m = run_child("build_ssd320", {"root": str(s.work / "ssd320-model")}, s.work)
    # The zoo's "ssd_mobilenet_v2_320x320" config resizes to 300x300 (fixed_shape_resizer), so
    # the size comes from the config, never from the name (the manual int8 calibration fed
    # 320x320 images into a 300x300 graph: RESHAPE 8136 != 7668).
    config = Path(result["pipeline_config"])
    model = BenchModel("ssd320", config, Path(result["checkpoint_dir"]),
                       Path(result["label_map"]), DEMO_DIR / "data" / "calibration", _config_size(config))
    model.built = {**result, "wall_s": m.wall_s, "command": m.command}
    return model


def _config_size(config: Path) -> tuple[int, int]:
    text = config.read_text(encoding="utf-8")
    h = re.search(r"height:\s*(\d+)", text)
    w = re.search(r"width:\s*(\d+)", text)
    if not (h and w):
        raise BenchmarkProblem(f"{config}: no fixed_shape_resizer height/width")
    return int(h.group(1)), int(w.group(1))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    ram = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            ram = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemTotal:"))
    except OSError:
        pass
    os_name = platform.platform()
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            os_name = next((ln.split("=", 1)[1].strip().strip('"') for ln in f if ln.startswith("PRETTY_NAME=")), os_name)
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": ram,
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "ai_edge_litert": version("ai-edge-litert"),
        "tflite_support": version("tflite-support"),
        "od_api": version("tf-models-research-object-detection"),
        "adb_shell": version("adb-shell"),
        "load_average_start": list(os.getloadavg()),
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- per model ----------------------------------------------------------------------------


def measure_wall(s: Setup, m: BenchModel) -> tuple[float, dict[str, Any]]:
    """``liteship metadata`` (no validation, no cache) vs the manual path, alternating, N rounds."""
    labels = s.work / f"{m.name}-labelmap.txt"
    labels.write_text(manual_path.labelmap_txt(m.label_map), encoding="utf-8")
    pipeline_runs: list[dict[str, Any]] = []
    manual_runs: list[dict[str, Any]] = []
    command_of = lambda out: [s.python, "-m", "liteship", "metadata", *m.inputs(), "--no-cache",  # noqa: E731
                              "--out", str(out), "--quiet"]
    steps_of = lambda work, lab: manual_path.steps(s.python, m.pipeline_config, m.checkpoint_dir, m.images,  # noqa: E731
                                                   lab, work, size=m.size)
    for i in range(s.args.wall_runs):
        out = s.work / f"{m.name}-pipeline-{i}"
        command = command_of(out)
        r = run_measured(command, s.work / "logs" / f"{m.name}-pipeline-{i}.log")
        if r.returncode != 0:
            raise BenchmarkProblem(f"`{' '.join(command)}` exited {r.returncode}: {tail(r.log)}")
        report = json.loads((out / "report.json").read_text())
        pipeline_runs.append({"wall_s": r.wall_s, "tree_pss_peak_bytes": r.tree_pss_peak_bytes,
                              "export_s": report["export"]["seconds"],
                              "conversion_s": {v["name"]: v["conversion_seconds"] for v in report["variants"]},
                              "sizes": {v["name"]: v["size_bytes"] for v in report["variants"]}})
        work = s.work / f"{m.name}-manual-{i}"
        (work / "models").mkdir(parents=True, exist_ok=True)
        run: dict[str, Any] = {"steps": {}, "wall_s": 0.0}
        for name, step in steps_of(work, labels):
            r = run_measured(step, s.work / "logs" / f"{m.name}-manual-{i}.log")
            if r.returncode != 0:
                raise BenchmarkProblem(f"manual step {name} exited {r.returncode}: {tail(r.log)}")
            run["steps"][name] = r.wall_s
            run["wall_s"] += r.wall_s
        run["sizes"] = {v: (work / "shipped" / f"{v}.tflite").stat().st_size for v in VARIANTS}
        manual_runs.append(run)
        if m.models_out is None and i == s.args.wall_runs - 1 and (out / "export" / "reference").is_dir():
            m.models_out = out  # else (`metadata --no-cache` writes no reference) ensure_models makes them
        for folder in (work / "exported",):  # the biggest leftovers (SavedModels)
            shutil.rmtree(folder, ignore_errors=True)
    pipe = summary([r["wall_s"] for r in pipeline_runs])
    manual = summary([r["wall_s"] for r in manual_runs])
    steps_median = {name: statistics.median(r["steps"][name] for r in manual_runs) for name in manual_runs[0]["steps"]}
    return pipe["median"] / manual["median"], {
        "pipeline_s": pipe,
        "manual_s": manual,
        "manual_step_median_s": steps_median,
        "pipeline_runs": pipeline_runs,
        "manual_runs": manual_runs,
        "pipeline_command": command_of(Path("OUT")),
        "manual_commands": [[name, c] for name, c in steps_of(Path("WORK"), Path("WORK/labelmap.txt"))],
        "convert_workers": os.environ.get("LITESHIP_CONVERT_WORKERS", "auto"),
        "order": "each round: liteship metadata, then the manual steps",
    }


def _models(m: BenchModel) -> Path:
    if m.models_out is None:
        raise BenchmarkProblem(f"{m.name}: no models to measure (the pipeline was not run: "
                               "drop --skip-manual / --skip-run, or give --models DIR)")
    models = m.models_out / "models"
    missing = [v for v in VARIANTS if not (models / f"{v}.tflite").is_file()]
    if missing:
        raise BenchmarkProblem(f"{models} lacks {', '.join(missing)}.tflite; give a folder written by `liteship run/metadata`")
    return models


def ensure_models(s: Setup, m: BenchModel) -> None:
    """When no pipeline round made them: one ``liteship metadata`` (used by the other keys)."""
    if m.models_out is not None:
        return
    out = s.work / f"{m.name}-models"
    command = [s.python, "-m", "liteship", "metadata", *m.inputs(), "--out", str(out), "--quiet"]
    r = run_measured(command, s.work / "logs" / f"{m.name}-models.log")
    if r.returncode != 0:
        raise BenchmarkProblem(f"`{' '.join(command)}` exited {r.returncode}: {tail(r.log)}")
    m.models_out = out


def measure_sizes(m: BenchModel) -> tuple[float, float, dict[str, Any]]:
    models = _models(m)
    sizes = {v: (models / f"{v}.tflite").stat().st_size for v in VARIANTS}
    return (sizes["int8"] / sizes["fp32"], sizes["fp16"] / sizes["fp32"],
            {"bytes": sizes, "models": str(models), "n": 1, "note": "files as written, metadata and labels included"})


def _norm(m: BenchModel) -> tuple[float, float]:
    report = m.models_out / "report.json" if m.models_out else None
    if report and report.is_file():
        norm = json.loads(report.read_text()).get("export", {}).get("normalization") or {}
        if norm.get("mean") and norm.get("std"):
            return float(norm["mean"][0]), float(norm["std"][0])
    from liteship.types import DEFAULT_NORMALIZATION

    return DEFAULT_NORMALIZATION.mean[0], DEFAULT_NORMALIZATION.std[0]


def measure_latency(s: Setup, m: BenchModel) -> tuple[float, float, float, float, dict[str, Any]]:
    """(int8/fp32 at 1 thread, at 2 threads, fp16/fp32 at 1, at 2)."""
    mean, std = _norm(m)
    params = {"models": str(_models(m)), "val": str(s.val), "variants": list(VARIANTS), "threads": [1, 2],
              "runs": s.args.latency_runs, "warmup": 10 if not s.quick else 3, "mean": mean, "std": std}
    ms, r = run_child("latency", params, s.work)

    def ratio(v: str, t: int) -> float:
        return ms[f"{v}@{t}"]["median"] / ms[f"fp32@{t}"]["median"]

    return (ratio("int8", 1), ratio("int8", 2), ratio("fp16", 1), ratio("fp16", 2), {
        "ms": ms, "command": r.command,
        "runtime": "liteship.validation.latency.measure: ai-edge-litert Interpreter(num_threads=T), default op "
                   "resolver (XNNPack delegate), invoke() only, one real val image, configurations in turn "
                   "(blocks of 10 invokes)"})


def _reference(m: BenchModel) -> Path:
    ref = (m.models_out / "export" / "reference") if m.models_out else None
    if ref is None or not ref.is_dir():
        raise BenchmarkProblem(f"no desktop reference at {ref}: the models must come from input (a)")
    return ref


def measure_harness(s: Setup, m: BenchModel) -> tuple[float, dict[str, Any]]:
    params = {"models": str(_models(m)), "reference": str(_reference(m)), "val": str(s.val),
              "variants": list(VARIANTS), "images": s.args.harness_images}
    result, r = run_child("harness", params, s.work)
    return result["ratio"], {**result, "command": r.command,
                             "how": "per image: liteship's parity step for all four variants (set_tensor, invoke, "
                                    "heads + detections read back, then the comparison: "
                                    "parity.accumulate) vs set_tensor+invoke of the four variants on plain "
                                    "Interpreters (num_threads=2), same inputs, in alternating order; the reference "
                                    "is run untimed for 8 images at a time before; ratio of the medians per image; "
                                    "first image discarded"}


# --- demo only ------------------------------------------------------------------------------


def measure_run(s: Setup, m: BenchModel) -> tuple[int, dict[str, Any]]:
    out = s.work / "run"
    command = [s.python, "-m", "liteship", "run", "--out", str(out), "--quiet"]
    r = run_measured(command, s.work / "logs" / "run.log")
    if not (out / "report.json").is_file():
        raise BenchmarkProblem(f"`{' '.join(command)}` exited {r.returncode} without a report: {tail(r.log)}")
    report = json.loads((out / "report.json").read_text())
    if m.models_out is None:
        m.models_out = out
    s.first_run = {"command": command, "out": out, "wall_s": r.wall_s}  # type: ignore[attr-defined]
    return r.tree_pss_peak_bytes, {
        "command": command,
        "exit_code": r.returncode,
        "status": report.get("status"),
        "wall_s": r.wall_s,
        "largest_process_maxrss_bytes": r.maxrss_bytes,
        "process_tree_pss_peak_bytes": r.tree_pss_peak_bytes,
        "process_tree_rss_sum_peak_bytes": r.tree_rss_peak_bytes,
        "n": 1,
        "how": "value = peak of the summed PSS of the process and its children (conversion workers, "
               "lint / Task Library children), sampled every 0.25 s from /proc/PID/smaps_rollup, or "
               "wait4's ru_maxrss of the largest process when that is larger. Summed RSS (also given) "
               "counts TensorFlow's shared library pages once per process",
        "map50_in_report": {v["name"]: v.get("map50") for v in report.get("variants", [])},
        "latency_in_report": {v["name"]: v.get("latency") for v in report.get("variants", [])},
    }


def measure_rerun(s: Setup) -> tuple[float, dict[str, Any]]:
    """The same `liteship run` again into the same folder (its cache): wall time vs the first."""
    first = getattr(s, "first_run", None)
    if first is None:
        raise BenchmarkProblem("no first `liteship run` to compare with (run_peak_rss_bytes was not measured)")
    out: Path = first["out"]
    before = {p.name: _sha(p) for p in sorted(out.glob("models/*.tflite"))}
    walls = []
    reports = []
    for i in range(s.args.rerun_runs):
        r = run_measured(first["command"], s.work / "logs" / f"rerun-{i}.log")
        if r.returncode != 0:
            raise BenchmarkProblem(f"the rerun exited {r.returncode}: {tail(r.log)}")
        walls.append(r.wall_s)
        reports.append(json.loads((out / "report.json").read_text()))
    after = {p.name: _sha(p) for p in sorted(out.glob("models/*.tflite"))}
    rerun = summary(walls)
    return rerun["median"] / first["wall_s"], {
        "first_wall_s": first["wall_s"], "rerun_s": rerun, "command": first["command"],
        "models_byte_identical": before == after and bool(before), "sha256": after,
        "cache": reports[-1].get("cache"),
        "how": "the demo's `liteship run` (the run_peak_rss_bytes run: empty cache) then the same command "
               f"{s.args.rerun_runs} times into the same folder (its OUT/.liteship-cache); median rerun wall / first wall"}


def measure_map(s: Setup, m: BenchModel) -> tuple[dict[str, float], dict[str, Any]]:
    labels = m.models_out / "labelmap.txt" if m.models_out else None
    if labels is None or not labels.is_file():
        raise BenchmarkProblem(f"no labelmap.txt next to the models ({labels})")
    ref = m.models_out / "export" / "reference" if m.models_out else None
    params = {"models": str(_models(m)), "val": str(s.val), "labels": str(labels), "variants": list(VARIANTS),
              "reference": str(ref) if ref is not None and ref.is_dir() else None}
    result, r = run_child("map", params, s.work)
    return ({v: x["map50"] for v, x in result["variants"].items()},
            {**result, "ground_truth": str(s.val), "command": r.command,
             "how": "liteship.validation.evaluate.evaluate_map (pycocotools, one image at a time like an app)"})


def cycled_ground_truth(val: Path, count: int, dest: Path) -> Path:
    """A VOC folder of ``count`` images: the val set's, cycled (hard links, renamed XML)."""
    xmls = sorted(val.glob("*.xml"))
    if not xmls:
        raise BenchmarkProblem(f"{val} has no Pascal VOC .xml files to cycle")
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        xml = xmls[i % len(xmls)]
        text = xml.read_text(encoding="utf-8")
        name = re.search(r"<filename>([^<]+)</filename>", text)
        image = val / (name.group(1) if name else xml.with_suffix(".jpg").name)
        target = dest / f"img_{i:05d}{image.suffix}"
        if not target.exists():
            try:
                os.link(image, target)
            except OSError:
                shutil.copyfile(image, target)
        new = text.replace(f"<filename>{image.name}</filename>", f"<filename>{target.name}</filename>")
        (dest / f"img_{i:05d}.xml").write_text(new, encoding="utf-8")
    return dest


def measure_scale(s: Setup, m: BenchModel) -> tuple[float, float, float, dict[str, Any]]:
    small, large = s.args.scale_images
    runs = {}
    for n in (small, large):
        gt = cycled_ground_truth(s.val, n, s.work / f"gt-{n}")
        params = {"models": str(_models(m)), "reference": str(_reference(m)), "ground_truth": str(gt),
                  "labels": str(m.models_out / "labelmap.txt"), "variants": list(VARIANTS),  # type: ignore[operator]
                  "parity_images": 50}
        result, r = run_child("scale", params, s.work)
        runs[n] = {**result, "wait4_maxrss_bytes": r.maxrss_bytes, "process_wall_s": r.wall_s, "command": r.command}
    time_ratio = runs[large]["per_image_ms"] / runs[small]["per_image_ms"]
    rss_ratio = runs[large]["wait4_maxrss_bytes"] / runs[small]["wait4_maxrss_bytes"]
    return time_ratio, rss_ratio, runs[large]["cores_used"], {
        "runs": {str(k): v for k, v in runs.items()},
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "how": "what `liteship run` measures in validation on a ground truth of N images (the demo's val set, "
               "cycled): the four variants and the desktop reference run on all N (app_run.run_models: images "
               "split among the usable cores' threads) and their mAP, then parity on the first 50; a fresh "
               "process per N; time per image = the loop's wall time (first image loaded to last image done, "
               "after loading the reference and the interpreters: setup_s) / N (wall_per_image_ms includes "
               "setup, mAP and parity); cores used = CPU time / wall time at the larger N; peak RSS = wait4 ru_maxrss",
        "n": 1,
    }


def measure_push(s: Setup) -> tuple[float, dict[str, Any]]:
    params = {"size_bytes": s.args.push_mb * 2**20, "repeats": s.args.push_repeats, "root": str(s.work / "phone"),
              "log": str(s.work / "logs" / "emulator.log")}
    result, r = run_child("push", params, s.work)
    return result["push_throughput_ratio"], {**result, "command": r.command}


def pushbench_available() -> str | None:
    """None when liteship.device.pushbench and the emulator import; else why not."""
    try:
        from liteship.device.emulator import serve_forever  # noqa: F401
        from liteship.device.pushbench import measure_push as _  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means: not available here
        return f"liteship.device.pushbench / liteship.device.emulator not importable: {type(exc).__name__}: {exc}"
    return None


