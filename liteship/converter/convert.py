"""Convert ONE export into the TFLite variants (fp32, fp16, dynamic range, full int8).

Converter settings per variant (verified on TF 2.21, all keep exactly one
CUSTOM:TFLite_Detection_PostProcess and no Flex ops):

=========  ==========================================================================
fp32       defaults + allow_custom_ops
fp16       optimizations=[DEFAULT], target_spec.supported_types=[float16]
dynamic    optimizations=[DEFAULT]
int8       optimizations=[DEFAULT], representative dataset preprocessed like the
           model, supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type uint8
           (or int8); outputs of the custom op stay float32. A per-channel
           normalization is put into the graph first and calibration runs on 0-255
           pixels (:mod:`liteship.converter.pixel_input`): no uint8 input can express it
=========  ==========================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship import nativelog
from liteship.converter import pixel_input
from liteship.converter.export import ExportResult
from liteship.errors import ConversionProblem
from liteship.types import Int8Input, Variant

RepresentativeDataset = Callable[[], Iterator[list[np.ndarray]]]


@dataclass(frozen=True)
class Converted:
    variant: Variant
    model: bytes
    seconds: float


def make_converter(export: ExportResult) -> Any:
    import tensorflow as tf

    if export.frozen_graph is not None:  # inputs (c) and (d): a TF1 tflite_graph.pb
        fg = export.frozen_graph
        converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            str(export.source),
            input_arrays=[fg.input_name],
            output_arrays=list(fg.output_names),
            input_shapes={fg.input_name: list(export.input_shape)},
        )
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(export.source))
    converter.allow_custom_ops = True
    return converter


def convert_variant(
    export: ExportResult,
    variant: Variant,
    representative: RepresentativeDataset | None = None,
    int8_input: Int8Input = Int8Input.UINT8,
) -> Converted:
    """One TFLite flatbuffer for ``variant`` (bytes; the caller writes files)."""
    import tensorflow as tf

    t0 = time.perf_counter()
    converter = make_converter(export)
    if variant is Variant.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant is Variant.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant is Variant.INT8 and export.quantization_aware:
        _quantization_aware_int8(converter, export, int8_input)
    elif variant is Variant.INT8 and pixel_input.needed(export):
        return _pixel_input_int8(export, representative, int8_input, t0)
    elif variant is Variant.INT8:
        if representative is None:
            raise ConversionProblem("int8 needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8 if int8_input is Int8Input.UINT8 else tf.int8
        # The postprocess op's outputs (boxes, classes, scores, count) stay float32.
        converter.inference_output_type = tf.float32
    with nativelog.captured() as log:
        try:
            model = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
            failure: Exception | None = exc
        else:
            failure = None
    if failure is not None:
        text = str(failure).strip().splitlines() + log.text.strip().splitlines()
        detail = next((line for line in text if "error" in line.lower()), text[0] if text else type(failure).__name__)
        raise ConversionProblem(f"TFLite conversion to {variant.value} failed: {detail.strip()[:400]}") from failure
    return Converted(variant=variant, model=bytes(model), seconds=time.perf_counter() - t0)


def _pixel_input_int8(
    export: ExportResult, representative: RepresentativeDataset | None, int8_input: Int8Input, t0: float
) -> Converted:
    """int8 of ``export`` with its normalization in the graph: calibrated on the pixels the
    representative samples were made from, the uint8 input then stated as the raw pixel."""
    import shutil
    import tempfile

    if representative is None:
        raise ConversionProblem("int8 needs a representative dataset")
    scratch = tempfile.mkdtemp(prefix="liteship-pixel-input-")
    try:
        pixels = pixel_input.pixel_export(export, Path(scratch) / "source")
        converted = convert_variant(pixels, Variant.INT8, pixel_input.pixel_samples(representative, export.normalization),
                                    int8_input)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    model = pixel_input.pixel_quantized_input(converted.model)
    return Converted(variant=Variant.INT8, model=model, seconds=time.perf_counter() - t0)


def _quantization_aware_int8(converter: Any, export: ExportResult, int8_input: Int8Input) -> None:
    """A graph with FakeQuant ranges (TF1 QAT) converts to a full-integer model from those ranges
    alone, the way TF1's ``tflite_convert --inference_type=QUANTIZED_UINT8`` did: every tensor
    uint8, the input's ``(q - mean) / std`` the model's normalization, the postprocess op's
    outputs float32."""
    import tensorflow as tf

    if int8_input is not Int8Input.UINT8:
        raise ConversionProblem("a quantization-aware TF1 graph converts with uint8 input; drop --int8-input int8")
    fg = export.frozen_graph
    assert fg is not None
    norm = export.normalization
    if len(set(norm.mean)) != 1 or len(set(norm.std)) != 1:
        raise ConversionProblem(f"a quantization-aware graph needs one mean/std for all channels, found {norm}")
    converter.inference_type = tf.uint8
    converter.quantized_input_stats = {fg.input_name: (norm.mean[0], norm.std[0])}


# --- several variants at once, in worker processes ---------------------------------------

#: Peak resident memory of one conversion worker (TensorFlow + one SSD conversion), with a
#: margin: about 1.0 GB measured for the demo, ~1.5 GB for a 320x320 MobileNetV2 SSD.
WORKER_BYTES = 2 * 2**30

#: Set to 1 to convert the variants one after another in this process.
WORKERS_ENV = "LITESHIP_CONVERT_WORKERS"


def worker_count(variants: int) -> int:
    """How many worker processes converting ``variants`` variants at once pays off.

    One per CPU this process may run on, at most one per variant, and no more than the
    available memory holds (``WORKER_BYTES`` each). 1 means: convert in this process.
    """
    import os

    forced = os.environ.get(WORKERS_ENV, "").strip()
    if forced:
        try:
            return max(1, min(variants, int(forced)))
        except ValueError:
            raise ConversionProblem(f"{WORKERS_ENV}={forced!r} must be a whole number (1 = no worker processes)") from None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(variants, cpus, _available_memory() // WORKER_BYTES))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return WORKER_BYTES  # unknown: room for one worker, i.e. stay in-process


@dataclass(frozen=True)
class _Job:
    """What a worker needs to convert one variant (picklable: paths, enums, numbers)."""

    export: ExportResult
    variant: Variant
    int8_input: Int8Input
    #: .npy with the representative samples [count, *input_shape] (int8 only)
    samples: str | None = None
    count: int = 0


def _worker_init(quiet_native_logs: bool) -> None:
    _exit_with_parent()
    nativelog.quiet(quiet_native_logs)
    with nativelog.captured():  # TF's import prints CUDA/absl notices from C++
        import tensorflow  # noqa: F401

        tensorflow.config.list_physical_devices("GPU")  # the "failed call to cuInit" notice, here


def _exit_with_parent() -> None:
    """A worker whose parent died (SIGKILL, OOM killer) would wait for work forever: its call
    queue never reaches EOF, the worker holds a writer end too. Watch the parent's sentinel."""
    import multiprocessing
    import os
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="liteship-exit-with-parent", daemon=True).start()


def _run_job(job: _Job) -> Converted:
    representative: RepresentativeDataset | None = None
    if job.samples is not None:
        samples = np.load(job.samples, mmap_mode="r")

        def representative() -> Iterator[list[np.ndarray]]:
            return ([np.array(samples[i])] for i in range(job.count))

    return convert_variant(job.export, job.variant, representative, job.int8_input)


class ConversionPool:
    """Worker processes (spawned: TensorFlow does not survive fork) that convert variants of
    ONE export side by side. Start it early: the workers import TensorFlow while the export
    runs. The models are the ones :func:`convert_variant` makes in-process (same converter
    settings, same representative samples), byte for byte. Always :meth:`close` it.
    """

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import signal
        import threading

        self.workers = workers
        self._scratch: str | None = None
        self._closed = False
        # Ctrl-C reaches the whole process group: each worker would print its own KeyboardInterrupt
        # traceback. Spawned while SIGINT is ignored (SIG_IGN survives exec, and Python then keeps
        # it), they never see it; the parent handles Ctrl-C and close() stops them.
        main_thread = threading.current_thread() is threading.main_thread()
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
        try:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(nativelog.enabled(),),  # the parent's --debug choice
            )
            with _main_module_hidden():  # workers are spawned on demand: ask for all of them now
                self._futures = [self._pool.submit(int, 0) for _ in range(workers)]
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, handler)

    def submit(
        self,
        export: ExportResult,
        variants: list[Variant],
        representative: RepresentativeDataset | None,
        int8_input: Int8Input,
    ) -> dict[Variant, Any] | None:
        """Futures of :class:`Converted`, one per variant (None: the pool is broken, convert
        in-process). int8's representative dataset is read once, here, into a .npy file that
        the worker streams from."""
        import tempfile

        jobs = {v: _Job(export, v, int8_input) for v in variants}
        if Variant.INT8 in jobs and not export.quantization_aware:
            if representative is None:
                raise ConversionProblem("int8 needs a representative dataset")
            self._scratch = tempfile.mkdtemp(prefix="liteship-calibration-")
            path, count = _save_samples(representative, self._scratch)
            jobs[Variant.INT8] = _Job(export, Variant.INT8, int8_input, str(path), count)
        # the slowest first (int8 calibrates), so the last one to finish is a short one
        order = sorted(jobs, key=lambda v: v is not Variant.INT8)
        try:
            futures = {v: self._pool.submit(_run_job, jobs[v]) for v in order}
        except BrokenProcessPool:  # a worker died while starting: the caller converts in-process
            return None
        self._futures += futures.values()
        return futures

    def close(self) -> None:
        """Stop the workers. After an error or Ctrl-C elsewhere, pending conversions are
        cancelled and busy workers terminated instead of waited for."""
        import shutil

        if self._closed:
            return
        self._closed = True
        busy = any(not f.done() for f in self._futures)
        # taken before shutdown(), which sets the executor's _processes to None
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=not busy, cancel_futures=True)
        if busy:
            for process in processes:
                if process.is_alive():
                    process.terminate()
                process.join(timeout=10)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def pooled_result(
    future: Any,
    export: ExportResult,
    variant: Variant,
    representative: RepresentativeDataset | None,
    int8_input: Int8Input = Int8Input.UINT8,
) -> Converted:
    """The worker's model; converted here instead when the worker process died (killed,
    out of memory). Conversion errors are raised as they are."""
    try:
        return future.result()
    except BrokenProcessPool:
        return convert_variant(export, variant, representative, int8_input)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Spawned processes re-import the parent's ``__main__`` to unpickle what it defines; a
    script that calls liteship without an ``if __name__ == "__main__"`` guard would then run
    again in every worker. The workers need nothing from ``__main__`` (their functions live
    in this module), so they are started while it is hidden."""
    import sys
    import types

    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _save_samples(representative: RepresentativeDataset, scratch: Any) -> tuple[Any, int]:
    """One pass over the dataset into ``scratch/calibration.npy``, one sample in memory at a time.

    A :class:`~liteship.converter.calibration.Calibration` says how many samples it can give
    at most (its ``limit`` and ``paths``): the file is then written in place (memory-mapped).
    Its statistics are those of this pass, as after an in-process conversion.
    """
    from pathlib import Path

    path = Path(scratch) / "calibration.npy"
    limit, paths = getattr(representative, "limit", None), getattr(representative, "paths", None)
    bound = min(int(limit), len(paths)) if limit is not None and paths is not None else None
    array: np.ndarray | None = None
    rows: list[np.ndarray] = []
    count = 0
    for sample in representative():
        value = np.asarray(sample[0])
        if bound is None:
            rows.append(value)
        else:
            if array is None:
                array = np.lib.format.open_memmap(path, mode="w+", dtype=value.dtype, shape=(bound, *value.shape))
            array[count] = value
        count += 1
    if array is not None:
        array.flush()
        del array
    else:
        np.save(path, np.stack(rows) if rows else np.zeros((0,), np.float32))
    return path, count
