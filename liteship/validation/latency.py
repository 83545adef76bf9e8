"""Desktop latency of converted variants: what one ``invoke()`` costs on THIS machine's CPU.

The LiteRT interpreter (``ai_edge_litert``, XNNPACK: its default delegate, what apps get
on CPU) at 1 thread and at ``os.cpu_count()`` threads; per configuration a warm-up, then
timed ``invoke()`` calls (``set_tensor`` once: the input does not change) until ``runs``
calls or the time budget is spent; median and p90. The configurations take turns in
blocks of a few calls, so that a drift of the machine's speed (other processes) hits them
all alike and their ratios stay meaningful.

Desktop latency is not phone latency: x86 XNNPACK kernels, caches and clock speeds differ
from a phone's (int8 gains the most from ARM dot-product instructions). On the phone,
measure with ``liteship deploy``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NOTE = ("desktop CPU latency (this machine, LiteRT + XNNPACK), not phone latency; "
        "measure on the phone with `liteship deploy`")


@dataclass(frozen=True)
class ThreadLatency:
    threads: int
    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "runs": self.runs, "median_ms": round(self.median_ms, 4),
                "p90_ms": round(self.p90_ms, 4), "min_ms": round(self.min_ms, 4), "max_ms": round(self.max_ms, 4)}


@dataclass(frozen=True)
class Latency:
    """One variant's latency at each thread count (ordered by threads)."""

    runtime: str
    cpu: str
    input: str
    warmup: int
    by_threads: tuple[ThreadLatency, ...]
    note: str = NOTE

    def at(self, threads: int) -> ThreadLatency | None:
        return next((t for t in self.by_threads if t.threads == threads), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "cpu": self.cpu,
            "input": self.input,
            "warmup": self.warmup,
            "threads": {str(t.threads): t.to_dict() for t in self.by_threads},
            "note": self.note,
        }


def thread_counts() -> tuple[int, ...]:
    """1 and every core (``os.cpu_count()``): an app's single-thread and default pool."""
    return tuple(sorted({1, os.cpu_count() or 1}))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        name = ""
    return f"{name or 'unknown CPU'}, {os.cpu_count()} cores"


def _runtime() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("ai-edge-litert")
    except PackageNotFoundError:
        v = "?"
    return f"ai-edge-litert {v} Interpreter, XNNPACK delegate (default)"


def _p90(ordered: Sequence[float]) -> float:
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def _summary(threads: int, seconds: Sequence[float]) -> ThreadLatency:
    ms = sorted(s * 1e3 for s in seconds)
    return ThreadLatency(threads, len(ms), statistics.median(ms), _p90(ms), ms[0], ms[-1])


def random_input(detail: Mapping[str, Any], seed: int = 0) -> np.ndarray:
    """A seeded input of the model's shape and type (when no real image is at hand)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def measure(
    models: Mapping[str, bytes],
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    threads: Sequence[int] | None = None,
    warmup: int = 3,
    runs: int = 50,
    min_runs: int = 5,
    budget_s: float | None = 3.0,
    block: int = 5,
    input_text: str = "",
) -> dict[str, Latency]:
    """Latency of every model at every thread count, taking turns in blocks of ``block`` calls.

    Stops when each configuration has ``runs`` timed calls, or once ``budget_s`` seconds of
    timed calls are spent and each has at least ``min_runs`` (``budget_s=None``: no budget).
    ``inputs[name]`` is the model's input tensor; missing ones are :func:`random_input`.
    """
    from ai_edge_litert.interpreter import Interpreter

    from liteship import nativelog

    threads = tuple(threads or thread_counts())
    configs: list[tuple[str, int, Any]] = []
    used_input: dict[str, str] = {}
    with nativelog.captured():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        for name, model in models.items():
            for t in threads:
                it = Interpreter(model_content=model, num_threads=t)
                it.allocate_tensors()
                detail = it.get_input_details()[0]
                x = (inputs or {}).get(name)
                used_input[name] = input_text if x is not None else "seeded random input"
                it.set_tensor(detail["index"], x if x is not None else random_input(detail))
                for _ in range(warmup):
                    it.invoke()
                configs.append((name, t, it))
    times: dict[tuple[str, int], list[float]] = {(n, t): [] for n, t, _ in configs}
    spent = 0.0
    perf = time.perf_counter
    while True:
        for name, t, it in configs:
            acc = times[(name, t)]
            if len(acc) >= runs:
                continue
            for _ in range(min(block, runs - len(acc))):
                t0 = perf()
                it.invoke()
                dt = perf() - t0
                acc.append(dt)
                spent += dt
        counts = [len(v) for v in times.values()]
        if min(counts) >= runs:
            break
        if budget_s is not None and spent >= budget_s and min(counts) >= min_runs:
            break
    runtime, cpu = _runtime(), _cpu_model()
    return {
        name: Latency(runtime, cpu, used_input[name], warmup,
                      tuple(_summary(t, times[(name, t)]) for t in threads))
        for name in models
    }


def measure_variants(out_dir: Path, variants: list[dict[str, Any]], image: np.ndarray | None = None,
                     **options: Any) -> dict[str, Latency]:
    """``liteship run``: every variant of the report (``variants[].path`` under ``out_dir``),
    on ``image`` (uint8 HxWx3, preprocessed like an app does) or a seeded random input;
    sets ``variants[i]["latency"]`` and returns the results."""
    from liteship.validation import app_run

    models = {v["name"]: (Path(out_dir) / v["path"]).read_bytes() for v in variants}
    inputs: dict[str, np.ndarray] = {}
    if image is not None:
        for v in variants:
            try:  # the normalization the metadata states, as an app applies it
                inputs[v["name"]] = app_run.detector_for(models[v["name"]], 1).preprocess(image)
            except Exception:  # noqa: BLE001 - a model the detector refuses still gets timed (random input)
                continue
    results = measure(models, inputs, input_text="one real image, preprocessed like an app", **options)
    for v in variants:
        v["latency"] = results[v["name"]].to_dict()
    return results


def first_image(folder: Path | None) -> np.ndarray | None:
    """The first decodable image of ``folder`` (the calibration images), else None."""
    if folder is None:
        return None
    from liteship.converter.calibration import find_images, load_rgb
    from liteship.errors import LiteshipError

    try:
        paths = find_images(Path(folder))[0]
    except LiteshipError:
        return None
    for p in paths[:5]:
        try:
            return load_rgb(p)
        except Exception:  # noqa: BLE001 - an undecodable file: try the next
            continue
    return None


def summary(results: Mapping[str, Latency]) -> dict[str, Any] | None:
    """The report's top-level ``latency``: how it was measured (each variant has its figures)."""
    first = next(iter(results.values()), None)
    if first is None:
        return None
    return {"runtime": first.runtime, "cpu": first.cpu, "warmup": first.warmup,
            "threads": [t.threads for t in first.by_threads], "note": first.note}
