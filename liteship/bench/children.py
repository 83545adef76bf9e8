"""The measurements that run in a fresh child process each (``runner.run_child``).

``python -c "...children import main..." KIND PARAMS_JSON`` prints one ``BENCH_RESULT {...}``
line (``child.emit``). Each child measures only; the parent judges.
"""

from __future__ import annotations

import dataclasses
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
    detections read back, then the comparison, parity.accumulate) vs a bare
    set_tensor + invoke of every variant on plain Interpreters, same inputs, same threads."""
    from ai_edge_litert.interpreter import Interpreter

    from liteship.validation import parity

    _quiet_native()
    models = _models(p)
    from liteship.validation.reference import Reference

    ref = Reference(Path(p["reference"]))
    variants = {v: parity.VariantModel(m) for v, m in models.items()}
    bare = {}
    for v, m in models.items():
        it = Interpreter(model_content=m, num_threads=2)
        it.allocate_tensors()
        bare[v] = (it, it.get_input_details()[0]["index"])
    accs = {v: parity.new_accumulator() for v in variants}
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
            chunk.append((pre, ref_heads, ref_dets))
        if not chunk:
            break
        for pre, ref_heads, ref_dets in chunk:
            inputs = {v: var.input_for(pre).copy() for v, var in variants.items()}  # untimed, for the bare calls

            def liteship_step() -> float:
                t0 = perf()
                outs = {v: var.run(pre) for v, var in variants.items()}
                t1 = perf()
                for v, (heads, dets) in outs.items():
                    parity.accumulate(accs[v], heads, dets, ref_heads, ref_dets, threshold, 0.0,
                                      variants[v].max_detections)
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
    every variant and the reference over all N (app_run.run_models: threads over the images)
    with their mAP, then parity on the first --parity-images (50). Time per image, CPU time /
    wall time (cores used), peak RSS."""
    from liteship.validation import app_run, parity
    from liteship.validation.groundtruth import load_ground_truth
    from liteship.validation.metrics import coco_map

    _quiet_native()
    names = Path(p["labels"]).read_text(encoding="utf-8").splitlines()
    models = _models(p)
    gt_path = Path(p["ground_truth"])
    t0, c0 = time.perf_counter(), time.process_time()
    gt = load_ground_truth(gt_path, names)
    first_load: list[float] = []

    def timed(load: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            if not first_load:
                first_load.append(time.perf_counter())  # setup (reference, interpreters) is over
            return load()
        return call

    images = [dataclasses.replace(i, load_rgb=timed(i.load_rgb)) for i in app_run.images_from_ground_truth(gt)]
    runs, _ = app_run.run_models(models, Path(p["reference"]), images)
    loop_end = time.perf_counter()
    maps = {v: coco_map(gt, runs[v].detections, names).map50 for v in models}
    t1 = time.perf_counter()
    parity.measure(Path(p["reference"]), models, (g.load_rgb() for g in gt[: p["parity_images"]]))
    t2, c2 = time.perf_counter(), time.process_time()
    hwm = None
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    wall = t2 - t0
    loop = loop_end - first_load[0]
    return {"images": len(gt), "wall_s": wall, "per_image_ms": loop / len(gt) * 1e3,
            "wall_per_image_ms": wall / len(gt) * 1e3, "setup_s": first_load[0] - t0, "loop_s": loop,
            "app_runs_and_map_s": t1 - t0, "parity_s": t2 - t1,
            "cpu_s": c2 - c0, "cores_used": (c2 - c0) / wall, "threads": app_run.usable_cores(), "vmhwm_bytes": hwm,
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
    """The model zoo's SSD MobileNet v2 320x320 at full size with random weights shaped like a
    trained SSD's (the tests' builder, tests/fixtures/odapi_models.py: batch norms calibrated
    on synthetic photos, heads scaled), and what its activations look like."""
    _quiet_native()
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "tests" / "fixtures" / "odapi_models.py").is_file():
        raise BenchmarkProblem(f"the 320x320 model is built with tests/fixtures/odapi_models.py, not found under {repo}: "
                               "run `liteship bench` from a clone of the repository, or pass --skip-ssd320")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from tests.fixtures.odapi_models import write_zoo_checkpoint

    t0 = time.perf_counter()
    files = write_zoo_checkpoint(Path(p["root"]), "mobilenet_v2", small=False, num_classes=p.get("classes", 90),
                                 seed=p.get("seed", 0))
    seconds = time.perf_counter() - t0
    return {"pipeline_config": str(files.config), "checkpoint_dir": str(files.checkpoint_dir),
            "label_map": str(files.label_map), "seconds": seconds, "activations": activation_stats(files.config,
                                                                                               files.checkpoint_dir),
            "checkpoint_bytes": sum(f.stat().st_size for f in Path(files.checkpoint_dir).iterdir())}


def activation_stats(config: Path, checkpoint_dir: Path, images: int = 8) -> dict[str, Any]:
    """What "neither vanishing nor saturating" means, measured on synthetic photos with the
    checkpoint restored: per ReLU6 of the backbone the fraction of outputs at 0 and at 6
    (worst layer), the sigmoid class scores' spread and how much the heads vary from image
    to image (0 = every input gives the same heads: vanished)."""
    import numpy as np
    import tensorflow as tf

    from liteship import odapi
    from liteship.demo import synth

    configs = odapi.config_util().get_configs_from_pipeline_file(str(config))
    model = odapi.model_builder().build(configs["model"], is_training=False)
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(str(checkpoint_dir))).expect_partial()
    size = configs["model"].ssd.image_resizer.fixed_shape_resizer.height
    batch = np.stack([np.asarray(s.image.convert("RGB").resize((size, size)), np.float32)
                      for s in synth.generate(1000, images, "act")])
    pre, shapes = model.preprocess(tf.constant(batch))
    pred = model.predict(pre, shapes)  # creates the variables, then the checkpoint's values apply
    backbone = getattr(model._feature_extractor, "classification_backbone", None)  # noqa: SLF001
    relu: dict[str, Any] = {"worst_zero_fraction": None, "worst_six_fraction": None, "layers": 0}
    if backbone is not None:
        acts = [layer for layer in backbone.layers if "relu" in layer.name.lower()]
        outs = [o.numpy() for o in tf.keras.Model(backbone.inputs, [a.output for a in acts])(pre)]
        relu = {"worst_zero_fraction": round(max(float(np.mean(o <= 0)) for o in outs), 4),
                "worst_six_fraction": round(max(float(np.mean(o >= 6)) for o in outs), 4), "layers": len(outs)}
    scores = tf.sigmoid(pred["class_predictions_with_background"][..., 1:]).numpy()
    boxes = pred["box_encodings"].numpy()
    return {
        "images": images,
        "relu6": relu,
        "scores": {"below_0.01": round(float(np.mean(scores < 0.01)), 4), "above_0.99": round(float(np.mean(scores > 0.99)), 4),
                   "above_0.5": round(float(np.mean(scores > 0.5)), 5), "median": round(float(np.median(scores)), 4),
                   "std_across_images": round(float(scores.std(axis=0).mean()), 4)},
        "box_encodings": {"std": round(float(boxes.std()), 4), "std_across_images": round(float(boxes.std(axis=0).mean()), 4)},
    }


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
