"""The measurements that run in a fresh child process each (``runner.run_child``).

``python -c "...children import main..." KIND PARAMS_JSON`` prints one ``BENCH_RESULT {...}``
line (``child.emit``). Each child measures only; the parent judges.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from liteship.bench.runner import MARKER, summary
from liteship.errors import BenchmarkProblem


def _quiet_native() -> None:
    import liteship  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
    from liteship import nativelog

    nativelog.quiet(True)


def _val_images(val: str, count: int) -> Iterator[Any]:
    """``count`` decoded images from the validation folder, cycling, ONE in memory at a time."""
    from liteship.converter.calibration import find_images, load_rgb

    paths = find_images(Path(val))[0]
    if not paths:
        raise BenchmarkProblem(f"no images in {val}")
    for i in range(count):
        yield load_rgb(paths[i % len(paths)])


def _models(p: dict[str, Any]) -> dict[str, bytes]:
    return {v: (Path(p["models"]) / f"{v}.tflite").read_bytes() for v in p["variants"]}


def child_latency(p: dict[str, Any]) -> dict[str, Any]:
    """liteship.validation.latency.measure (what `liteship run` reports), with more runs and
    no time budget: per variant and thread count, blocks of invokes taking turns."""
    from liteship.validation import latency
    from liteship.validation.detect import TFLiteDetector

    _quiet_native()
    rgb = next(_val_images(p["val"], 1))
    models = _models(p)
    inputs = {v: TFLiteDetector(m, 1, mean=p["mean"], std=p["std"]).preprocess(rgb) for v, m in models.items()}
    results = latency.measure(models, inputs, threads=p["threads"], warmup=p["warmup"], runs=p["runs"],
                              budget_s=None, block=10, input_text="one real val image")
    return {f"{v}@{t.threads}": {"n": t.runs, "median": t.median_ms, "p90": t.p90_ms, "min": t.min_ms, "max": t.max_ms}
            for v, r in results.items() for t in r.by_threads}


def child_harness(p: dict[str, Any]) -> dict[str, Any]:
    """Per image: liteship's parity step for every variant (set_tensor, invoke, heads and
    detections read back, then the batched comparison, parity_batch.compare_image) vs a bare
    set_tensor + invoke of every variant on plain Interpreters, same inputs, same threads."""
    from ai_edge_litert.interpreter import Interpreter

    from liteship.validation import parity, parity_batch

    _quiet_native()
    models = _models(p)
    ref = parity._Reference(Path(p["reference"]))
    variants = {v: parity._Variant(m) for v, m in models.items()}
    bare = {}
    for v, m in models.items():
        it = Interpreter(model_content=m, num_threads=2)
        it.allocate_tensors()
        bare[v] = (it, it.get_input_details()[0]["index"])
    accs = [parity._new_accumulator() for _ in variants]
    parity_s: list[float] = []
    bare_s: list[float] = []
    compare_s: list[float] = []
    threshold = 0.3
    images = _val_images(p["val"], p["images"] + 1)
    perf = time.perf_counter
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
            inputs = {v: var.input_for(pre).copy() for v, var in variants.items()}  # untimed, for the bare calls

            def liteship_step() -> float:
                t0 = perf()
                outs = [parity_batch.run_raw(var, pre) for var in variants.values()]
                t1 = perf()
                parity_batch.compare_image(accs, [h for h, _ in outs], [r for _, r in outs], ref_heads, ref_kept,
                                           threshold)
                compare_s.append(perf() - t1)
                return perf() - t0

            def bare_step() -> float:
                t0 = perf()
                for v, (it, index) in bare.items():
                    it.set_tensor(index, inputs[v])
                    it.invoke()
                return perf() - t0

            # alternating order: both find the caches (and the other's thread pool) alike
            if k % 2:
                tp = liteship_step()
                tb = bare_step()
            else:
                tb = bare_step()
                tp = liteship_step()
            if k > 0:  # the first image warms up
                parity_s.append(tp)
                bare_s.append(tb)
            k += 1
    pm = summary([s * 1e3 for s in parity_s])
    bm = summary([s * 1e3 for s in bare_s])
    return {"parity_ms": pm, "bare_ms": bm, "compare_ms": summary([s * 1e3 for s in compare_s[1:]]),
            "parity_ms_per_image": pm["median"], "bare_ms_per_image": bm["median"],
            "ratio": pm["median"] / bm["median"], "images": len(parity_s), "variants": list(variants),
            "preserve_all_tensors": {v: var.preserve_all_tensors for v, var in variants.items()}}


def child_map(p: dict[str, Any]) -> dict[str, Any]:
    from liteship.validation import evaluate

    _quiet_native()
    names = Path(p["labels"]).read_text(encoding="utf-8").splitlines()
    out: dict[str, Any] = {"variants": {}}
    for v in p["variants"]:
        r = evaluate.evaluate_map(Path(p["models"]) / f"{v}.tflite", Path(p["val"]), names)
        out["variants"][v] = {"map50": r.map50, "map": r.map}
    if p.get("reference"):
        r = evaluate.reference_map(Path(p["reference"]), Path(p["val"]), names)
        out["reference"] = {"map50": r.map50, "map": r.map}
    return out


def child_scale(p: dict[str, Any]) -> dict[str, Any]:
    """The measuring part of `liteship run`'s validation on a ground truth of N images:
    parity on the first --parity-images (50) of them, the reference's and every variant's
    mAP on all N (evaluate.py, threads). Time per image, CPU time / wall time (cores used)."""
    from liteship.validation import evaluate, parity
    from liteship.validation.groundtruth import load_ground_truth

    _quiet_native()
    names = Path(p["labels"]).read_text(encoding="utf-8").splitlines()
    models = _models(p)
    gt_path = Path(p["ground_truth"])
    threads = os.cpu_count() or 1
    t0, c0 = time.perf_counter(), time.process_time()
    gt = load_ground_truth(gt_path, names)
    parity.measure(Path(p["reference"]), models, (g.load_rgb() for g in gt[: p["parity_images"]]))
    t1 = time.perf_counter()
    evaluate.reference_map(Path(p["reference"]), gt_path, names, num_threads=threads)
    t2 = time.perf_counter()
    maps = {v: evaluate.evaluate_map(Path(p["models"]) / f"{v}.tflite", gt_path, names, num_threads=threads).map50
            for v in models}
    t3, c3 = time.perf_counter(), time.process_time()
    hwm = None
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    wall = t3 - t0
    return {"images": len(gt), "wall_s": wall, "per_image_ms": wall / len(gt) * 1e3,
            "parity_s": t1 - t0, "reference_map_s": t2 - t1, "variants_map_s": t3 - t2,
            "cpu_s": c3 - c0, "cores_used": (c3 - c0) / wall, "threads": threads, "vmhwm_bytes": hwm,
            "maxrss_self_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "map50": maps}


EMULATOR_SNIPPET = (
    "import sys; from pathlib import Path; from liteship.device.emulator import serve_forever; "
    "serve_forever(Path(sys.argv[1]), int(sys.argv[2]))"
)


def child_push(p: dict[str, Any]) -> dict[str, Any]:
    """liteship's push vs adb-shell's, to the emulated device running in ITS OWN process."""
    from liteship.device.pushbench import measure_push

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(p["root"])
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", EMULATOR_SNIPPET, str(root), str(port)]
    # a long-running server next to this measurement: not a run-to-completion child
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
                    raise BenchmarkProblem(f"the emulated device did not listen on port {port} (exit {emulator.poll()})")
                time.sleep(0.2)
        result = measure_push(f"tcp:127.0.0.1:{port}", p["size_bytes"], key_path=root / "adbkey", repeats=p["repeats"])
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return {**result, "emulator_command": command, "repeats": p["repeats"]}


def child_build_ssd320(p: dict[str, Any]) -> dict[str, Any]:
    """The full-size SSD MobileNet v2 320x320 (random weights, activations calibrated)."""
    _quiet_native()
    from liteship.demo import random_ssd

    t0 = time.perf_counter()
    config, ckpt, labels = random_ssd.write_ssd_checkpoint(
        Path(p["root"]), seed=p.get("seed", 0), calibrate=True,
        config_text=random_ssd.ssd_mobilenet_v2_320_config_text(p.get("classes", 90)))
    stats = json.loads((Path(p["root"]) / "activations.json").read_text())
    return {"pipeline_config": str(config), "checkpoint_dir": str(ckpt), "label_map": str(labels),
            "seconds": time.perf_counter() - t0, "activations": stats,
            "checkpoint_bytes": sum(f.stat().st_size for f in Path(ckpt).iterdir())}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "latency": child_latency,
    "harness": child_harness,
    "map": child_map,
    "scale": child_scale,
    "push": child_push,
    "build_ssd320": child_build_ssd320,
}


def main(argv: list[str]) -> int:
    from liteship import child

    kind, params = argv[0], json.loads(argv[1] if len(argv) > 1 else "{}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child.emit(MARKER, **CHILDREN[kind](params))
    return 0
