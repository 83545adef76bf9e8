"""Long fuzzing run of the .tflite reader and the static lint (the CI run is tests/test_fuzz.py).

    .venv/bin/python scripts/fuzz_tflite.py --iterations 10000 [--seed 0] [--corpus DIR] [--atheris]

Default mode: a seeded mutation loop over small valid models (tests/fixtures/bad_seeds.py,
plus every .tflite under ``--corpus``): bit flips, byte writes, 32-bit interesting values,
insertions, deletions, truncations, splices of two seeds, and random buffers. Each input goes
through ``liteship.tflite_inspect.inspect_model`` and ``liteship.validation.lint.lint_bytes``
(static checks only: no GPU analyzer, no Task Library child). ``--atheris``: the same target
under atheris (libFuzzer, coverage-guided), seeded with the same models.

Prints counts per outcome (``ok`` or the error type), the total time and the slowest input;
exits 1 on any crash (an exception that is not a LiteshipError, or a reader error that is not
TFLiteFileProblem) or hang (an input over ``--max-seconds``, interrupted with SIGALRM). Crashing
inputs are saved to ``--crash-dir``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import liteship  # noqa: E402,F401  (environment before anything imports TensorFlow)


class Hang(Exception):
    """An input took longer than --max-seconds."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


class Target:
    """Runs one input through the reader and the lint and tallies the outcome."""

    def __init__(self, max_seconds: float, crash_dir: Path) -> None:
        from liteship.errors import LiteshipError, TFLiteFileProblem
        from liteship.tflite_inspect import inspect_model
        from liteship.validation import lint

        self.inspect, self.lint = inspect_model, lint
        self.LiteshipError, self.TFLiteFileProblem = LiteshipError, TFLiteFileProblem
        self.max_seconds = max_seconds
        self.crash_dir = crash_dir
        self.counts: Counter[str] = Counter()
        self.crashes: list[str] = []
        self.max_time = 0.0
        self.slowest = b""
        self.inputs = 0

    def __call__(self, data: bytes) -> None:
        self.inputs += 1
        signal.setitimer(signal.ITIMER_REAL, self.max_seconds)
        t0 = time.perf_counter()
        try:
            outcome = self._one(data)
        except Hang:
            outcome = "HANG"
            self._save(data, f"hang: over {self.max_seconds} s")
        except BaseException as exc:  # noqa: BLE001 — anything else is a crash
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome = f"CRASH {type(exc).__name__}"
            self._save(data, traceback.format_exc())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.perf_counter() - t0
        if elapsed > self.max_time:
            self.max_time, self.slowest = elapsed, data
        self.counts[outcome] += 1

    def _one(self, data: bytes) -> str:
        try:
            self.inspect(data, source="fuzz.tflite")
            reader = "ok"
        except self.TFLiteFileProblem:
            reader = "TFLiteFileProblem"
        try:
            result = self.lint.lint_bytes(data, source="fuzz.tflite", gpu=False, runtime=False)
            json.dumps(result.to_dict())
            self.lint.format_table(result)
            linted = "lint ok"
        except self.LiteshipError as exc:
            linted = type(exc).__name__
        if reader == "ok" and linted != "lint ok":
            raise AssertionError(f"the reader accepted the model but lint raised {linted}")
        return reader if reader != "ok" else f"ok ({'pass' if result.ok else 'contract failed'})"

    def _save(self, data: bytes, why: str) -> None:
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(data).hexdigest()[:16]
        (self.crash_dir / f"{name}.tflite").write_bytes(data)
        (self.crash_dir / f"{name}.txt").write_text(why)
        self.crashes.append(name)

    def summary(self, seconds: float, mode: str, seed: int) -> dict[str, Any]:
        return {
            "mode": mode,
            "seed": seed,
            "inputs": self.inputs,
            "seconds": round(seconds, 1),
            "inputs_per_second": round(self.inputs / seconds, 1) if seconds else None,
            "max_seconds_per_input": round(self.max_time, 4),
            "slowest_input_bytes": len(self.slowest),
            "outcomes": dict(self.counts.most_common()),
            "crashes_and_hangs": len(self.crashes),
            "crash_dir": str(self.crash_dir) if self.crashes else None,
        }


INTERESTING_U32: tuple[int, ...] = ()


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One input: a random buffer (5%), or a seed with 1-6 mutations (mostly 1)."""
    if rng.random() < 0.05:
        data = bytearray(rng.randbytes(rng.randrange(0, 4096)))
        if data and rng.random() < 0.5:
            data[4:8] = b"TFL3"
        return bytes(data)
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.choice((1, 1, 1, 2, 3, 6))):  # mostly small damage: deeper into the file
        op = rng.choice(("flip", "flip", "byte", "byte", "u32", "u32", "insert", "delete", "truncate", "splice"))
        pos = rng.randrange(len(data)) if data else 0
        if op == "flip" and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == "byte" and data:
            data[pos] = rng.randrange(256)
        elif op == "u32":
            pos -= pos % 4
            value = rng.choice(INTERESTING_U32 + (len(data), max(len(data) - pos, 0)))
            data[pos : pos + 4] = value.to_bytes(4, "little")
        elif op == "insert":
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == "delete":
            del data[pos : pos + rng.randint(1, 64)]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = rng.choice(seeds)
            data = data[:pos] + other[rng.randrange(len(other)) :]
    return bytes(data)


def run_loop(target: Target, seeds: list[bytes], iterations: int, seed: int) -> None:
    rng = random.Random(seed)
    for data in seeds:  # the seeds themselves must pass
        target(data)
    for _ in range(iterations - len(seeds)):
        target(mutate(rng, seeds))


def run_atheris(target: Target, seeds: list[bytes], iterations: int, seed: int, report: Any) -> None:
    import atheris

    corpus = Path(tempfile.mkdtemp(prefix="liteship-fuzz-corpus-"))
    for i, data in enumerate(seeds):
        (corpus / f"seed{i}.tflite").write_bytes(data)

    def one_input(data: bytes) -> None:
        target(data)
        if target.crashes:  # let libFuzzer keep its own reproducer too
            report()
            raise RuntimeError(f"crash or hang, saved in {target.crash_dir}")
        if target.inputs >= iterations:
            report()
            os._exit(0)

    # no -timeout: libFuzzer's own uses SIGALRM, which Target already uses per input (--max-seconds)
    atheris.Setup([sys.argv[0], f"-seed={seed or 1}", f"-runs={iterations + 1}", "-max_len=65536", str(corpus)],
                  one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=10_000, help="number of inputs (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed of the mutation loop (default 0)")
    p.add_argument("--atheris", action="store_true", help="coverage-guided fuzzing with atheris instead of the loop")
    p.add_argument("--corpus", type=Path, help="folder whose *.tflite files are added to the seeds")
    p.add_argument("--max-seconds", type=float, default=2.0, help="per-input limit; longer counts as a hang (default 2)")
    p.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"), help="where crashing inputs are saved")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)

    global INTERESTING_U32
    if args.atheris:
        import atheris

        with atheris.instrument_imports(include=["liteship", "flatbuffers", "tensorflow_lite_support"]):
            import liteship.tflite_inspect  # noqa: F401
            import liteship.validation.lint  # noqa: F401
    from tests.fixtures.bad_seeds import INTERESTING_U32 as values
    from tests.fixtures.bad_seeds import seed_models

    INTERESTING_U32 = values
    seeds = list(seed_models(args.corpus).values())
    signal.signal(signal.SIGALRM, _alarm)
    target = Target(args.max_seconds, args.crash_dir)
    t0 = time.perf_counter()
    mode = "atheris" if args.atheris else "mutation loop"

    def report() -> None:
        summary = target.summary(time.perf_counter() - t0, mode, args.seed)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(f"{summary['inputs']} inputs ({mode}, seed {args.seed}) in {summary['seconds']} s "
                  f"({summary['inputs_per_second']}/s); slowest input {summary['max_seconds_per_input']} s "
                  f"({summary['slowest_input_bytes']} bytes)")
            for outcome, count in summary["outcomes"].items():
                print(f"  {count:>7}  {outcome}")
            print(f"crashes and hangs: {summary['crashes_and_hangs']}"
                  + (f" (inputs in {summary['crash_dir']})" if summary["crash_dir"] else ""))
        sys.stdout.flush()

    if args.atheris:
        run_atheris(target, seeds, args.iterations, args.seed, report)
    run_loop(target, seeds, args.iterations, args.seed)
    report()
    return 1 if target.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
