"""Benchmarks of liteship on this machine, side by side, as ratios (noisy machines still compare).

    python scripts/bench.py --out bench.json            # the full run (about 15-20 min on 2 cores)
    liteship bench --out bench.json                     # the same
    python scripts/bench.py --out b.json --quick --skip-manual --models liteship-out   # smoke test

Every heavy measurement runs in a fresh child process (its peak RSS is that process's own,
from ``wait4``). The JSON has one value per key (``KEYS``), and ``details`` (raw figures:
medians, ranges, N, the exact commands), ``machine``, ``goals`` (met/missed) and ``notes``
(why a value is null). docs/benchmarks.md explains every key.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's liteship
    sys.path.insert(0, str(ROOT))

VARIANTS = ("fp32", "fp16", "dynamic", "int8")
RESULT_MARK = "BENCH_RESULT "


@dataclass(frozen=True)
class Goal:
    text: str
    judge: Callable[[Any], bool | None]


def _le(limit: float) -> Goal:
    return Goal(f"<= {limit:g}", lambda v: None if v is None else v <= limit)


def _ge(limit: float) -> Goal:
    return Goal(f">= {limit:g}", lambda v: None if v is None else v >= limit)


MAX_MAP50_DROP = 0.02  # liteship's default --max-map50-drop


def _map_goal(value: Any) -> bool | None:
    if not value or value.get("fp32") is None:
        return None
    return all(v is not None and v >= value["fp32"] - MAX_MAP50_DROP for v in value.values())


GOALS: dict[str, Goal] = {
    "pipeline_vs_manual_wall_ratio": _le(0.6),
    "harness_overhead_ratio": _le(1.10),
    "int8_fp32_latency_ratio": _le(0.5),
    "int8_fp32_size_ratio": _le(0.3),
    "fp16_fp32_size_ratio": _le(0.55),
    "map50": Goal(f"every variant >= fp32 - {MAX_MAP50_DROP} (liteship's default --max-map50-drop)", _map_goal),
    "scale_time_per_image_ratio": _le(1.1),
    "scale_peak_rss_ratio": _le(1.2),
    "run_peak_rss_bytes": _le(2.5e9),
    "push_throughput_ratio": _ge(0.9),
}
KEYS = tuple(GOALS)


class BenchError(Exception):
    """A measurement could not be made; the message says what was expected and found."""


# --- processes --------------------------------------------------------------------------


@dataclass
class Measured:
    command: list[str]
    returncode: int
    wall_s: float
    #: ru_maxrss of the process (the largest of it and its waited-for descendants), bytes
    maxrss_bytes: int
    #: sampled (every 0.25 s) peak of the summed RSS / PSS of the process and its descendants
    tree_rss_peak_bytes: int
    tree_pss_peak_bytes: int
    stdout: str
    log: Path


def _tree_memory(root: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) over ``root`` and its descendants, from /proc (0 where unreadable).

    Summed RSS counts the pages of shared libraries (TensorFlow's ~0.3 GB of .so files) once
    per process that maps them; PSS splits each shared page among its sharers, so summed PSS
    is the memory the process tree actually occupies.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    rss = pss = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return rss, pss


def run_measured(command: list[str], log: Path, *, timeout_s: float = 3600, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> Measured:
    """Run ``command`` (no shell); wall time, peak RSS (wait4) and sampled process-tree RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err, tempfile.TemporaryFile() as out:
        err.write(("\n$ " + " ".join(command) + "\n").encode())
        err.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        peak = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                rss, pss = _tree_memory(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            done.set()
        wall = time.perf_counter() - t0
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    maxrss = usage.ru_maxrss * 1024
    return Measured(command, proc.returncode, wall, maxrss, max(peak[0], maxrss), max(peak[1], maxrss), stdout, log)


def _tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    keep = [t for t in text if not t.startswith(("W0000", "I0000", "WARNING: All log"))]
    return " | ".join(keep[-lines:])


def run_child(kind: str, params: dict[str, Any], work: Path, *, timeout_s: float = 3600) -> tuple[dict[str, Any], Measured]:
    """``python scripts/bench.py --child KIND`` in a fresh process; its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--params", json.dumps(params)]
    m = run_measured(command, work / "logs" / f"{kind}.log", timeout_s=timeout_s)
    line = next((ln for ln in reversed(m.stdout.splitlines()) if ln.startswith(RESULT_MARK)), None)
    if m.returncode != 0 or line is None:
        raise BenchError(f"the {kind} measurement exited {m.returncode} without a result: {_tail(m.log)} (log: {m.log})")
    return json.loads(line[len(RESULT_MARK) :]), m


def _summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    n = len(ordered)
    return {
        "n": n,
        "median": statistics.median(ordered) if n else None,
        "min": ordered[0] if n else None,
        "max": ordered[-1] if n else None,
        "p10": ordered[int(0.1 * (n - 1))] if n else None,
        "p90": ordered[int(0.9 * (n - 1))] if n else None,
        "mean": statistics.fmean(ordered) if n else None,
    }


# --- children (each runs in its own process) -------------------------------------------


def _emit(result: dict[str, Any]) -> None:
    print(RESULT_MARK + json.dumps(result), flush=True)


def _quiet_native() -> None:
    import liteship  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
    from liteship import nativelog

    nativelog.quiet(True)


def _val_images(val: str, count: int) -> Iterator[Any]:
    """``count`` decoded images from the validation folder, cycling, ONE in memory at a time."""
    from liteship.converter.calibration import find_images, load_rgb

    paths = find_images(Path(val))[0]
    if not paths:
        raise BenchError(f"no images in {val}")
    for i in range(count):
        yield load_rgb(paths[i % len(paths)])


def child_latency(p: dict[str, Any]) -> dict[str, Any]:
    """Median invoke() latency per variant and thread count (ai-edge-litert, default XNNPack)."""
    from ai_edge_litert.interpreter import Interpreter

    from liteship.validation.detect import TFLiteDetector

    rgb = next(_val_images(p["val"], 1))
    configs = []
    for variant in p["variants"]:
        path = Path(p["models"]) / f"{variant}.tflite"
        x = TFLiteDetector(path, 1, mean=p["mean"], std=p["std"]).preprocess(rgb)
        for threads in p["threads"]:
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
            it.set_tensor(it.get_input_details()[0]["index"], x)
            for _ in range(p["warmup"]):
                it.invoke()
            configs.append((variant, threads, it))
    times: dict[tuple[str, int], list[float]] = {(v, t): [] for v, t, _ in configs}
    block = max(1, min(10, p["runs"]))
    while min(len(x) for x in times.values()) < p["runs"]:
        for variant, threads, it in configs:  # blocks of runs, configurations in turn: drift hits all
            for _ in range(block):
                t0 = time.perf_counter()
                it.invoke()
                times[(variant, threads)].append(time.perf_counter() - t0)
    return {f"{v}@{t}": _summary([s * 1e3 for s in ts[: p["runs"]]]) for (v, t), ts in times.items()}


def child_harness(p: dict[str, Any]) -> dict[str, Any]:
    """Per image: liteship's per-variant parity step vs a bare set_tensor+invoke, same input."""
    from ai_edge_litert.interpreter import Interpreter

    from liteship.validation import parity
    from liteship.validation.reference import Reference

    _quiet_native()
    models = {v: (Path(p["models"]) / f"{v}.tflite").read_bytes() for v in p["variants"]}
    ref = Reference(Path(p["reference"]))
    variants = {v: parity._Variant(m) for v, m in models.items()}
    bare = {}
    for v, m in models.items():
        it = Interpreter(model_content=m, num_threads=2)
        it.allocate_tensors()
        bare[v] = (it, it.get_input_details()[0]["index"])
    acc = {v: parity._new_accumulator() for v in variants}
    times: dict[str, dict[str, list[float]]] = {v: {"parity": [], "bare": []} for v in variants}
    threshold = 0.3
    images = _val_images(p["val"], p["images"] + 1)
    k = 0
    while True:
        # the reference (TensorFlow, not timed) for a chunk of images first: TF's thread pool
        # keeps spinning for a moment after each call and would slow whatever comes next
        chunk = []
        for rgb in itertools.islice(images, 8):
            pre, ref_heads, ref_dets = ref.run(rgb)
            chunk.append((pre, ref_heads, parity._above(ref_dets, threshold)))
        if not chunk:
            break
        for pre, ref_heads, ref_kept in chunk:
            for v, var in variants.items():
                # per image and variant one bare call and one parity step, in alternating order,
                # so that both find the caches (and the other's thread pool) in the same state
                it, index = bare[v]
                x = var.input_for(pre)  # the same input, prepared untimed for the bare call
                t0 = time.perf_counter()
                if k % 2:
                    it.set_tensor(index, x)
                    it.invoke()
                    t1 = time.perf_counter()
                    parity.compare_step(acc[v], var, pre, ref_heads, ref_kept, threshold)
                    t2 = time.perf_counter()
                    tb, tp = t1 - t0, t2 - t1
                else:
                    parity.compare_step(acc[v], var, pre, ref_heads, ref_kept, threshold)
                    t1 = time.perf_counter()
                    it.set_tensor(index, x)
                    it.invoke()
                    t2 = time.perf_counter()
                    tp, tb = t1 - t0, t2 - t1
                if k > 0:  # the first image warms up
                    times[v]["bare"].append(tb)
                    times[v]["parity"].append(tp)
            k += 1
    per_variant = {
        v: {
            "parity_ms": _summary([s * 1e3 for s in t["parity"]]),
            "bare_ms": _summary([s * 1e3 for s in t["bare"]]),
            "preserve_all_tensors": variants[v].preserve_all_tensors,
        }
        for v, t in times.items()
    }
    parity_total = sum(x["parity_ms"]["median"] for x in per_variant.values())
    bare_total = sum(x["bare_ms"]["median"] for x in per_variant.values())
    return {"per_variant": per_variant, "parity_ms_per_image": parity_total, "bare_ms_per_image": bare_total,
            "ratio": parity_total / bare_total, "images": p["images"]}


def child_map(p: dict[str, Any]) -> dict[str, Any]:
    from liteship.validation import evaluate

    _quiet_native()
    names = (Path(p["labels"])).read_text(encoding="utf-8").splitlines()
    out: dict[str, Any] = {"variants": {}}
    for v in p["variants"]:
        r = evaluate.evaluate_map(Path(p["models"]) / f"{v}.tflite", Path(p["val"]), names)
        out["variants"][v] = {"map50": r.map50, "map": r.map}
    if p.get("reference"):
        r = evaluate.reference_map(Path(p["reference"]), Path(p["val"]), names)
        out["reference"] = {"map50": r.map50, "map": r.map}
    return out


def child_scale(p: dict[str, Any]) -> dict[str, Any]:
    """parity.measure over ``images`` decoded images (cycling the val set), streamed."""
    from liteship.validation import parity

    _quiet_native()
    models = {v: (Path(p["models"]) / f"{v}.tflite").read_bytes() for v in p["variants"]}
    t_start = time.perf_counter()
    first: list[float] = []

    def images() -> Iterator[Any]:
        first.append(time.perf_counter())  # setup (reference + interpreters) is done here
        yield from _val_images(p["val"], p["images"])

    results = parity.measure(Path(p["reference"]), models, images())
    t_end = time.perf_counter()
    loop = t_end - first[0]
    hwm = None
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return {
        "images": p["images"],
        "setup_s": first[0] - t_start,
        "loop_s": loop,
        "per_image_ms": loop / p["images"] * 1e3,
        "vmhwm_bytes": hwm,
        "recall": {v: r.recall for v, r in results.items()},
    }


EMULATOR_SNIPPET = (
    "import sys; from pathlib import Path; from liteship.device.emulator import serve_forever; "
    "serve_forever(Path(sys.argv[1]), int(sys.argv[2]))"
)


def child_push(p: dict[str, Any]) -> dict[str, Any]:
    """liteship's push vs adb-shell's, to the emulated device running in ITS OWN process."""
    import socket

    from liteship.device.pushbench import measure_push

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(p["root"])
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", EMULATOR_SNIPPET, str(root), str(port)]
    with open(Path(p["log"]), "ab") as log:
        emulator = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if emulator.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the emulated device did not listen on port {port} (exit {emulator.poll()})")
                time.sleep(0.2)
        result = measure_push(f"tcp:127.0.0.1:{port}", p["size_bytes"], key_path=root / "adbkey", repeats=p["repeats"])
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return {**result, "emulator_command": command, "repeats": p["repeats"]}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "latency": child_latency,
    "harness": child_harness,
    "map": child_map,
    "scale": child_scale,
    "push": child_push,
}


# --- the measurements (parent) ----------------------------------------------------------


@dataclass
class Setup:
    python: str
    work: Path
    quick: bool
    models_out: Path | None  # a liteship output folder: models/, export/reference, labelmap.txt
    val: Path
    args: argparse.Namespace


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


def measure_wall(s: Setup) -> tuple[float, dict[str, Any]]:
    """``liteship metadata`` (no validation) vs the manual path, alternating, N rounds each."""
    sys.path.insert(0, str(ROOT / "scripts" / "manual"))
    import manual_path

    from liteship.pipeline import DEMO_DIR

    model = DEMO_DIR / "model"
    images = DEMO_DIR / "data" / "calibration"
    labels = s.work / "labelmap.txt"
    labels.write_text(manual_path.labelmap_txt(model / "label_map.pbtxt"), encoding="utf-8")
    pipeline_runs: list[dict[str, Any]] = []
    manual_runs: list[dict[str, Any]] = []
    for i in range(s.args.wall_runs):
        out = s.work / f"pipeline-{i}"
        command = [s.python, "-m", "liteship", "metadata", "--out", str(out), "--quiet"]
        m = run_measured(command, s.work / "logs" / f"pipeline-{i}.log")
        if m.returncode != 0:
            raise BenchError(f"`{' '.join(command)}` exited {m.returncode}: {_tail(m.log)}")
        report = json.loads((out / "report.json").read_text())
        pipeline_runs.append({"wall_s": m.wall_s, "tree_pss_peak_bytes": m.tree_pss_peak_bytes,
                              "export_s": report["export"]["seconds"],
                              "conversion_s": {v["name"]: v["conversion_seconds"] for v in report["variants"]},
                              "sizes": {v["name"]: v["size_bytes"] for v in report["variants"]}})
        work = s.work / f"manual-{i}"
        (work / "models").mkdir(parents=True, exist_ok=True)
        steps = manual_path.steps(s.python, model / "pipeline.config", model / "checkpoint", images, labels, work)
        run: dict[str, Any] = {"steps": {}, "wall_s": 0.0}
        for name, command in steps:
            m = run_measured(command, s.work / "logs" / f"manual-{i}.log")
            if m.returncode != 0:
                raise BenchError(f"manual step {name} exited {m.returncode}: {_tail(m.log)}")
            run["steps"][name] = m.wall_s
            run["wall_s"] += m.wall_s
        run["sizes"] = {v: (work / "shipped" / f"{v}.tflite").stat().st_size for v in VARIANTS}
        manual_runs.append(run)
        if s.models_out is None and i == s.args.wall_runs - 1:
            s.models_out = out
    pipe = _summary([r["wall_s"] for r in pipeline_runs])
    manual = _summary([r["wall_s"] for r in manual_runs])
    steps_median = {name: statistics.median(r["steps"][name] for r in manual_runs) for name in manual_runs[0]["steps"]}
    return pipe["median"] / manual["median"], {
        "pipeline_s": pipe,
        "manual_s": manual,
        "manual_step_median_s": steps_median,
        "pipeline_runs": pipeline_runs,
        "manual_runs": manual_runs,
        "pipeline_command": [s.python, "-m", "liteship", "metadata", "--out", "DIR", "--quiet"],
        "manual_commands": [[name, command] for name, command in
                            manual_path.steps(s.python, model / "pipeline.config", model / "checkpoint", images,
                                              Path("WORK/labelmap.txt"), Path("WORK"))],
        "convert_workers": os.environ.get("LITESHIP_CONVERT_WORKERS", "auto"),
        "order": "each round: liteship metadata, then the manual steps",
    }


def measure_run(s: Setup) -> tuple[int, dict[str, Any]]:
    out = s.work / "run"
    command = [s.python, "-m", "liteship", "run", "--out", str(out), "--quiet"]
    m = run_measured(command, s.work / "logs" / "run.log")
    if not (out / "report.json").is_file():
        raise BenchError(f"`{' '.join(command)}` exited {m.returncode} without a report: {_tail(m.log)}")
    report = json.loads((out / "report.json").read_text())
    s.models_out = out
    return m.tree_pss_peak_bytes, {
        "command": command,
        "exit_code": m.returncode,
        "status": report.get("status"),
        "wall_s": m.wall_s,
        "largest_process_maxrss_bytes": m.maxrss_bytes,
        "process_tree_pss_peak_bytes": m.tree_pss_peak_bytes,
        "process_tree_rss_sum_peak_bytes": m.tree_rss_peak_bytes,
        "n": 1,
        "how": "value = peak of the summed PSS of the process and its children (conversion workers, "
               "lint / Task Library children), sampled every 0.25 s from /proc/PID/smaps_rollup, or "
               "wait4's ru_maxrss of the largest process when that is larger. Summed RSS (also given) "
               "counts TensorFlow's shared library pages once per process",
        "map50_in_report": {v["name"]: v.get("map50") for v in report.get("variants", [])},
    }


def _models(s: Setup) -> Path:
    if s.models_out is None:
        raise BenchError("no models to measure: give --models DIR (a liteship output folder) or let the bench run liteship")
    models = s.models_out / "models"
    missing = [v for v in VARIANTS if not (models / f"{v}.tflite").is_file()]
    if missing:
        raise BenchError(f"{models} lacks {', '.join(missing)}.tflite; give a folder written by `liteship run/metadata`")
    return models


def measure_sizes(s: Setup) -> tuple[dict[str, float], dict[str, Any]]:
    models = _models(s)
    sizes = {v: (models / f"{v}.tflite").stat().st_size for v in VARIANTS}
    return ({"int8": sizes["int8"] / sizes["fp32"], "fp16": sizes["fp16"] / sizes["fp32"]},
            {"bytes": sizes, "models": str(models), "n": 1, "note": "files as written, metadata and labels included"})


def _norm(s: Setup) -> tuple[float, float]:
    report = s.models_out / "report.json" if s.models_out else None
    if report and report.is_file():
        norm = json.loads(report.read_text()).get("export", {}).get("normalization") or {}
        if norm.get("mean") and norm.get("std"):
            return float(norm["mean"][0]), float(norm["std"][0])
    return 127.5, 127.5


def measure_latency(s: Setup) -> tuple[float, dict[str, Any]]:
    mean, std = _norm(s)
    params = {"models": str(_models(s)), "val": str(s.val), "variants": list(VARIANTS), "threads": [1, 2],
              "runs": s.args.latency_runs, "warmup": 10 if not s.quick else 3, "mean": mean, "std": std}
    result, m = run_child("latency", params, s.work)
    ratio = result["int8@2"]["median"] / result["fp32@2"]["median"]
    return ratio, {"ms": result, "ratio_at_1_thread": result["int8@1"]["median"] / result["fp32@1"]["median"],
                   "ratio_at_2_threads": ratio, "runtime": "ai-edge-litert Interpreter(num_threads=T), default "
                   "op resolver (XNNPack delegate applied), invoke() only, one real val image",
                   "command": m.command}


def _reference(s: Setup) -> Path:
    ref = (s.models_out / "export" / "reference") if s.models_out else None
    if ref is None or not ref.is_dir():
        raise BenchError(f"no desktop reference at {ref}: the models must come from input (a) (pipeline.config + checkpoint)")
    return ref


def measure_harness(s: Setup) -> tuple[float, dict[str, Any]]:
    params = {"models": str(_models(s)), "reference": str(_reference(s)), "val": str(s.val),
              "variants": list(VARIANTS), "images": s.args.harness_images}
    result, m = run_child("harness", params, s.work)
    return result["ratio"], {**result, "command": m.command,
                             "how": "per image and variant: parity.compare_step (what liteship run does per variant: "
                                    "input quantization, set_tensor, invoke, heads + detections read back, head "
                                    "diffs, matching, accumulation) vs set_tensor+invoke on a plain Interpreter "
                                    "(num_threads=2) with the same input, one right after the other in alternating "
                                    "order; the reference is run untimed for 8 images at a time before; ratio of "
                                    "the sums over variants of the per-variant medians; first image discarded"}


def measure_map(s: Setup) -> tuple[dict[str, float], dict[str, Any]]:
    labels = s.models_out / "labelmap.txt" if s.models_out else None
    if labels is None or not labels.is_file():
        raise BenchError(f"no labelmap.txt next to the models ({labels})")
    ref = s.models_out / "export" / "reference" if s.models_out else None
    params = {"models": str(_models(s)), "val": str(s.val), "labels": str(labels), "variants": list(VARIANTS),
              "reference": str(ref) if ref is not None and ref.is_dir() else None}
    result, m = run_child("map", params, s.work)
    return ({v: r["map50"] for v, r in result["variants"].items()},
            {**result, "ground_truth": str(s.val), "command": m.command,
             "how": "liteship.validation.evaluate.evaluate_map (pycocotools, one image at a time like an app)"})


def measure_scale(s: Setup) -> tuple[float, float, dict[str, Any]]:
    small, large = s.args.scale_images
    runs = {}
    for n in (small, large):
        params = {"models": str(_models(s)), "reference": str(_reference(s)), "val": str(s.val),
                  "variants": list(VARIANTS), "images": n}
        result, m = run_child("scale", params, s.work)
        runs[n] = {**result, "wait4_maxrss_bytes": m.maxrss_bytes, "wall_s": m.wall_s, "command": m.command}
    time_ratio = runs[large]["per_image_ms"] / runs[small]["per_image_ms"]
    rss_ratio = runs[large]["wait4_maxrss_bytes"] / runs[small]["wait4_maxrss_bytes"]
    return time_ratio, rss_ratio, {
        "runs": {str(k): v for k, v in runs.items()},
        "how": "parity.measure (reference + all variants) in a fresh process each; images decoded one at a time "
               "from the val set, cycling; time per image = loop time (after setup) / images; peak RSS = wait4 ru_maxrss",
        "n": 1,
    }


def measure_push(s: Setup) -> tuple[float, dict[str, Any]]:
    params = {"size_bytes": s.args.push_mb * 2**20, "repeats": s.args.push_repeats, "root": str(s.work / "phone"),
              "log": str(s.work / "logs" / "emulator.log")}
    result, m = run_child("push", params, s.work)
    return result["push_throughput_ratio"], {**result, "command": m.command}


def pushbench_available() -> str | None:
    """None when liteship.device.pushbench and the emulator import; else why not."""
    try:
        from liteship.device.emulator import serve_forever  # noqa: F401
        from liteship.device.pushbench import measure_push as _  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means: not available here
        return f"liteship.device.pushbench / liteship.device.emulator not importable: {type(exc).__name__}: {exc}"
    return None


# --- orchestration ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liteship bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="where to write the JSON (written atomically)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the results as a markdown table")
    p.add_argument("--work", type=Path, help="folder under which a temporary folder holds every artefact "
                   "(default: the system temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--quick", action="store_true", help="tiny N everywhere (a smoke test, not a measurement)")
    p.add_argument("--skip-manual", action="store_true", help="no wall-time comparison with the manual path")
    p.add_argument("--skip-run", action="store_true", help="no whole `liteship run` (run_peak_rss_bytes)")
    p.add_argument("--skip-push", action="store_true", help="no push throughput measurement")
    p.add_argument("--only", type=lambda t: tuple(k.strip() for k in t.split(",") if k.strip()), metavar="KEYS",
                   help="measure only these comma-separated keys (the others are null, with a note)")
    p.add_argument("--models", type=Path, metavar="DIR",
                   help="measure this liteship output folder (models/, export/reference, labelmap.txt) "
                        "instead of the one the bench's own `liteship run` writes")
    p.add_argument("--val", type=Path, metavar="DIR", help="ground truth + images (default: the demo's data/val)")
    p.add_argument("--wall-runs", type=int, help="rounds of pipeline vs manual (default 3; quick 1)")
    p.add_argument("--latency-runs", type=int, help="invokes per variant and thread count (default 200; quick 20)")
    p.add_argument("--harness-images", type=int, help="images of the harness comparison (default 200; quick 5)")
    p.add_argument("--scale-images", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                   help="parity images of the two scale runs (default 100 1000; quick 10 20)")
    p.add_argument("--push-mb", type=int, help="MiB pushed (default 50; quick 2)")
    p.add_argument("--push-repeats", type=int, help="pushes each, best taken (default 3; quick 1)")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--params", help=argparse.SUPPRESS)
    return p


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    for name, full, small in (("wall_runs", 3, 1), ("latency_runs", 200, 20), ("harness_images", 200, 5),
                              ("scale_images", [100, 1000], [10, 20]), ("push_mb", 50, 2), ("push_repeats", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    for name in ("wall_runs", "latency_runs", "harness_images", "push_mb", "push_repeats"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    unknown = [k for k in args.only or () if k not in KEYS]
    if unknown:
        raise BenchError(f"--only: unknown key(s) {', '.join(unknown)}; choose from {', '.join(KEYS)}")
    small, large = args.scale_images
    if not 0 < small < large:
        raise BenchError(f"--scale-images SMALL LARGE must satisfy 0 < SMALL < LARGE, got {small} {large}")


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "null"
    if key == "map50":
        return " ".join(f"{k}={v:.3f}" for k, v in value.items())
    if key == "run_peak_rss_bytes":
        return f"{value / 1e9:.2f} GB"
    return f"{value:.3f}"


def table(result: dict[str, Any]) -> str:
    rows = [f"{'key':<30} {'value':<44} {'goal':<12} verdict"]
    for key in KEYS:
        g = result["goals"][key]
        verdict = {True: "met", False: "MISSED", None: "-"}[g["met"]]
        goal = g["goal"] if len(g["goal"]) <= 12 else g["goal"].split(" (")[0][:12]
        rows.append(f"{key:<30} {_fmt(key, result[key]):<44} {goal:<12} {verdict}")
    return "\n".join(rows)


def _rng(x: dict[str, Any], unit: str = "", digits: int = 2) -> str:
    return f"{x['median']:.{digits}f}{unit} ({x['min']:.{digits}f}-{x['max']:.{digits}f})"


def _figures(key: str, d: dict[str, Any]) -> tuple[str, str]:
    """(medians and ranges, N) of one key's details, for the markdown table."""
    if key == "pipeline_vs_manual_wall_ratio":
        return (f"liteship metadata {_rng(d['pipeline_s'], ' s', 1)} vs manual {_rng(d['manual_s'], ' s', 1)}",
                str(d["pipeline_s"]["n"]))
    if key == "harness_overhead_ratio":
        pv = d["per_variant"]
        return (f"{d['parity_ms_per_image']:.2f} vs {d['bare_ms_per_image']:.2f} ms per image (4 variants); "
                + ", ".join(f"{v} {x['parity_ms']['median']:.2f}/{x['bare_ms']['median']:.2f}" for v, x in pv.items()),
                f"{d['images']} images")
    if key == "int8_fp32_latency_ratio":
        ms = d["ms"]
        return (f"2 threads: int8 {_rng(ms['int8@2'], ' ms')} vs fp32 {_rng(ms['fp32@2'], ' ms')}; 1 thread: "
                f"int8 {_rng(ms['int8@1'], ' ms')} vs fp32 {_rng(ms['fp32@1'], ' ms')} (ratio {d['ratio_at_1_thread']:.2f})",
                f"{ms['fp32@2']['n']} invokes each")
    if key in ("int8_fp32_size_ratio", "fp16_fp32_size_ratio"):
        b = d["bytes"]
        return ", ".join(f"{v} {b[v]:,} B" for v in ("fp32", "fp16", "int8")), "1"
    if key == "map50":
        ref = d.get("reference") or {}
        extra = f"; desktop reference {ref['map50']:.3f}" if ref.get("map50") is not None else ""
        return ("mAP@0.5 per variant" + extra, "50 val images" if "demo" in d.get("ground_truth", "") else "val set")
    if key in ("scale_time_per_image_ratio", "scale_peak_rss_ratio"):
        runs = d["runs"]
        small, large = sorted(runs, key=int)
        if key == "scale_time_per_image_ratio":
            return (f"{runs[small]['per_image_ms']:.1f} ms/image at {small} vs {runs[large]['per_image_ms']:.1f} at {large}",
                    "1 run each")
        return (f"{runs[small]['wait4_maxrss_bytes'] / 1e6:.0f} MB at {small} vs "
                f"{runs[large]['wait4_maxrss_bytes'] / 1e6:.0f} MB at {large}", "1 run each")
    if key == "run_peak_rss_bytes":
        return (f"tree PSS {d['process_tree_pss_peak_bytes'] / 1e9:.2f} GB; tree RSS sum "
                f"{d['process_tree_rss_sum_peak_bytes'] / 1e9:.2f} GB; largest process "
                f"{d['largest_process_maxrss_bytes'] / 1e9:.2f} GB; wall {d['wall_s']:.0f} s", "1")
    if key == "push_throughput_ratio":
        return (f"liteship {d['liteship_mb_s']:.1f} MB/s vs adb-shell {d['adb_shell_mb_s']:.1f} MB/s, "
                f"{d['size_bytes'] / 2**20:.0f} MiB", f"best of {d['repeats']}")
    return "", ""


def markdown(result: dict[str, Any]) -> str:
    rows = ["| key | value | figures (median (min-max)) | N | goal | verdict |", "|---|---|---|---|---|---|"]
    for key in KEYS:
        g = result["goals"][key]
        verdict = {True: "met", False: "**missed**", None: "-"}[g["met"]]
        if result[key] is None:
            figures, n = result["notes"].get(key, ""), "-"
        else:
            try:
                figures, n = _figures(key, result["details"][key])
            except (KeyError, TypeError, ValueError):
                figures, n = "", ""
        rows.append(f"| `{key}` | {_fmt(key, result[key])} | {figures} | {n} | {g['goal']} | {verdict} |")
    return "\n".join(rows) + "\n"


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from liteship.pipeline import DEMO_DIR

    _defaults(args)
    started = datetime.now(timezone.utc)
    base = args.work or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="liteship-bench-", dir=base))
    models_out = args.models.resolve() if args.models else None
    s = Setup(sys.executable, work, args.quick, models_out, (args.val or DEMO_DIR / "data" / "val").resolve(), args)
    values: dict[str, Any] = {k: None for k in KEYS}
    details: dict[str, Any] = {}
    notes: dict[str, str] = {}
    errors: list[str] = []
    info = machine()

    def section(keys: tuple[str, ...], fn: Callable[[], Any], skip: str | None = None) -> None:
        if args.only and not set(keys) & set(args.only):
            skip = "not selected (--only)"
        if skip:
            for k in keys:
                notes[k] = skip
            return
        label = ", ".join(keys)
        print(f"bench: measuring {label} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            out = fn()
        except (BenchError, Exception) as exc:  # noqa: BLE001 - one failing measurement must not lose the rest
            message = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            for k in keys:
                notes[k] = f"not measured: {message}"
            errors.append(f"{label}: {message}")
            print(f"bench: {label} FAILED: {message}", file=sys.stderr, flush=True)
            return
        *vals, detail = out
        for k, v in zip(keys, vals):
            values[k] = v
            details[k] = detail
        print(f"bench: {label} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if args.out is not None:  # so that an interrupted run keeps what it measured
            from liteship import atomic

            atomic.write_json(_partial(args.out), {**values, "details": details, "notes": notes, "partial": True})

    section(("pipeline_vs_manual_wall_ratio",), lambda: measure_wall(s),
            "skipped (--skip-manual): the manual path was not run" if args.skip_manual else None)
    run_skip = None
    if args.skip_run:
        run_skip = "skipped (--skip-run): no whole `liteship run` was measured"
    elif args.models is not None:
        run_skip = "skipped: --models given, so no `liteship run` was measured"
    section(("run_peak_rss_bytes",), lambda: measure_run(s), run_skip)

    def sizes() -> tuple[float, float, dict[str, Any]]:
        ratios, detail = measure_sizes(s)
        return ratios["int8"], ratios["fp16"], detail

    section(("int8_fp32_size_ratio", "fp16_fp32_size_ratio"), sizes)
    section(("int8_fp32_latency_ratio",), lambda: measure_latency(s))
    section(("harness_overhead_ratio",), lambda: measure_harness(s))
    section(("map50",), lambda: measure_map(s))
    section(("scale_time_per_image_ratio", "scale_peak_rss_ratio"), lambda: measure_scale(s))
    push_skip = "skipped (--skip-push)" if args.skip_push else pushbench_available()
    section(("push_throughput_ratio",), lambda: measure_push(s), push_skip)

    finished = datetime.now(timezone.utc)
    info.update(
        load_average_end=list(os.getloadavg()),
        measured_from_utc=started.isoformat(timespec="seconds"),
        measured_to_utc=finished.isoformat(timespec="seconds"),
    )
    details["bench"] = {
        "command": [sys.executable, *sys.argv] if args.child is None else None,
        "quick": args.quick,
        "work": str(work),
        "elapsed_s": (finished - started).total_seconds(),
        "models": str(s.models_out) if s.models_out else None,
        "val": str(s.val),
        "errors": errors,
    }
    goals = {}
    for k in KEYS:
        met = GOALS[k].judge(values[k])
        goals[k] = {"goal": GOALS[k].text, "value": values[k], "met": met}
    result = {**values, "details": details, "machine": info, "goals": goals, "notes": notes}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"bench: artefacts kept in {work}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child is not None:
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") is None:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        _emit(CHILDREN[args.child](json.loads(args.params or "{}")))
        return 0
    if args.out is None:
        parser.error("--out FILE is required")
    out = args.out.resolve()
    if out.is_dir() or not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        print(f"bench: error: --out {args.out}: give a file path in an existing, writable folder", file=sys.stderr)
        return 2
    if args.models is not None and not (args.models / "models").is_dir():
        print(f"bench: error: --models {args.models} has no models/ folder; give a folder written by "
              "`liteship run` or `liteship metadata`", file=sys.stderr)
        return 2
    try:
        result = run_bench(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; nothing written", file=sys.stderr)
        return 130
    from liteship import atomic

    atomic.write_json(out, result)
    _partial(out).unlink(missing_ok=True)
    if args.markdown is not None:
        atomic.write_text(args.markdown, markdown(result))
    print(table(result))
    print(f"written: {out}")
    return 1 if result["details"]["bench"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
