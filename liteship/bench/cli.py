"""``liteship bench``: benchmarks of liteship on this machine, side by side, as ratios.

    liteship bench --out bench.json                      # the full run (about 40 min on 2 idle cores)
    liteship bench --out b.json --quick --skip-manual --skip-ssd320 --models liteship-out   # smoke test

Two models: the embedded demo (top-level keys) and a full-size SSD MobileNet v2 320x320
with random weights, built in the same run (keys under ``ssd320``). Every heavy measurement
runs in a fresh child process. The JSON has one value per key, ``details`` (raw figures:
medians, ranges, N, the exact commands), ``machine``, ``goals`` (met/missed) and ``notes``
(why a value is null). docs/benchmarks.md explains every key.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from liteship.bench import goals, measure, output
from liteship.errors import BenchmarkProblem, Interrupted, LiteshipError, UsageProblem


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liteship bench", description=(__doc__ or "").splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="where to write the JSON (written atomically)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the results as a markdown table")
    p.add_argument("--work", type=Path, help="folder under which a temporary folder holds every artefact "
                   "(default: the system temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--quick", action="store_true", help="tiny N everywhere (a smoke test, not a measurement)")
    p.add_argument("--skip-manual", action="store_true", help="no wall-time comparison with the manual path")
    p.add_argument("--skip-run", action="store_true",
                   help="no whole `liteship run` (run_peak_rss_bytes) and so no cached rerun")
    p.add_argument("--skip-push", action="store_true", help="no push throughput measurement")
    p.add_argument("--skip-ssd320", action="store_true", help="no full-size 320x320 model (the ssd320 keys)")
    p.add_argument("--only", type=lambda t: tuple(k.strip() for k in t.split(",") if k.strip()), metavar="KEYS",
                   help="measure only these comma-separated keys (ssd320's as ssd320.KEY; the others are null)")
    p.add_argument("--models", type=Path, metavar="DIR",
                   help="measure this liteship output folder (models/, export/reference, labelmap.txt) as the demo "
                        "instead of the one the bench's own runs write")
    p.add_argument("--val", type=Path, metavar="DIR", help="ground truth + images (default: the demo's data/val)")
    p.add_argument("--wall-runs", type=int, help="rounds of pipeline vs manual per model (default 3; quick 1)")
    p.add_argument("--latency-runs", type=int, help="invokes per variant and thread count (default 200; quick 20)")
    p.add_argument("--harness-images", type=int, help="images of the harness comparison (default 200; quick 5)")
    p.add_argument("--scale-images", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                   help="ground-truth images of the two scale runs (default 100 1000; quick 10 20)")
    p.add_argument("--rerun-runs", type=int, help="cached reruns of `liteship run` (default 3; quick 1)")
    p.add_argument("--push-mb", type=int, help="MiB pushed (default 50; quick 2)")
    p.add_argument("--push-repeats", type=int, help="pushes each, best taken (default 3; quick 1)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    for name, full, small in (("wall_runs", 3, 1), ("latency_runs", 200, 20), ("harness_images", 200, 5),
                              ("scale_images", [100, 1000], [10, 20]), ("rerun_runs", 3, 1), ("push_mb", 50, 2),
                              ("push_repeats", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    for name in ("wall_runs", "latency_runs", "harness_images", "rerun_runs", "push_mb", "push_repeats"):
        if getattr(args, name) < 1:
            raise UsageProblem(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    unknown = [k for k in args.only or () if k not in goals.KEYS]
    if unknown:
        raise UsageProblem(f"--only: unknown key(s) {', '.join(unknown)}; choose from {', '.join(goals.KEYS)}")
    small, large = args.scale_images
    if not 0 < small < large:
        raise UsageProblem(f"--scale-images SMALL LARGE must satisfy 0 < SMALL < LARGE, got {small} {large}")


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from liteship import atomic
    from liteship.pipeline import DEMO_DIR

    _defaults(args)
    started = datetime.now(timezone.utc)
    base = args.work or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="liteship-bench-", dir=base))
    s = measure.Setup(sys.executable, work, args.quick, (args.val or DEMO_DIR / "data" / "val").resolve(), args)
    demo = measure.demo_model(args.models.resolve() if args.models else None)
    values: dict[str, Any] = {k: None for k in goals.KEYS}
    details: dict[str, Any] = {}
    notes: dict[str, str] = {}
    errors: list[str] = []
    info = measure.machine()

    def section(keys: tuple[str, ...], fn: Callable[[], Any], skip: str | None = None) -> None:
        if args.only and not set(keys) & set(args.only):
            skip = skip or "not selected (--only)"
        if skip:
            for k in keys:
                notes.setdefault(k, skip)
            return
        label = ", ".join(keys)
        print(f"bench: measuring {label} ... (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - one failing measurement must not lose the rest
            message = exc.message if isinstance(exc, LiteshipError) else f"{type(exc).__name__}: {exc}"
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
        if args.out is not None:  # an interrupted run keeps what it measured
            atomic.write_json(_partial(args.out), {**_shaped(values), "details": details, "notes": notes,
                                                   "partial": True})

    def model_sections(m: measure.BenchModel, prefix: str) -> None:
        k = (lambda key: prefix + key)
        section((k("pipeline_vs_manual_wall_ratio"),), lambda: measure.measure_wall(s, m),
                "skipped (--skip-manual): the manual path was not run" if args.skip_manual else None)
        section((k("int8_fp32_size_ratio"), k("fp16_fp32_size_ratio")), lambda: _with_models(s, m, measure.measure_sizes, m))
        section((k("int8_fp32_latency_ratio"), k("int8_fp32_latency_ratio_2threads"), k("fp16_fp32_latency_ratio"),
                 k("fp16_fp32_latency_ratio_2threads")), lambda: _with_models(s, m, measure.measure_latency, s, m))
        section((k("harness_overhead_ratio"),), lambda: _with_models(s, m, measure.measure_harness, s, m))

    # --- the demo -------------------------------------------------------------------------
    run_skip = None
    if args.skip_run:
        run_skip = "skipped (--skip-run): no whole `liteship run` was measured"
    elif args.models is not None:
        run_skip = "skipped: --models given, so no `liteship run` was measured"
    section(("run_peak_rss_bytes",), lambda: measure.measure_run(s, demo), run_skip)
    section(("rerun_cached_wall_ratio",), lambda: measure.measure_rerun(s), run_skip)
    model_sections(demo, "")
    section(("map50",), lambda: _with_models(s, demo, measure.measure_map, s, demo))
    section(("scale_time_per_image_ratio", "scale_peak_rss_ratio", "scale_cores_used"),
            lambda: _with_models(s, demo, measure.measure_scale, s, demo))
    push_skip = "skipped (--skip-push)" if args.skip_push else measure.pushbench_available()
    section(("push_throughput_ratio",), lambda: measure.measure_push(s), push_skip)

    # --- the full-size model ----------------------------------------------------------------
    ssd320_keys = tuple(f"ssd320.{k}" for k in goals.MODEL_KEYS)
    if args.skip_ssd320 or (args.only and not set(ssd320_keys) & set(args.only)):
        why = "skipped (--skip-ssd320)" if args.skip_ssd320 else "not selected (--only)"
        for key in ssd320_keys:
            notes.setdefault(key, why)
    else:
        print(f"bench: building the 320x320 model ... (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        try:
            m320 = measure.build_ssd320(s)
        except Exception as exc:  # noqa: BLE001 - the demo's figures are still written
            message = exc.message if isinstance(exc, LiteshipError) else f"{type(exc).__name__}: {exc}"
            errors.append(f"ssd320 model: {message}")
            for key in ssd320_keys:
                notes[key] = f"not measured: the 320x320 model could not be built: {message}"
        else:
            details["ssd320.model"] = m320.built
            model_sections(m320, "ssd320.")

    finished = datetime.now(timezone.utc)
    info.update(
        load_average_end=list(os.getloadavg()),
        measured_from_utc=started.isoformat(timespec="seconds"),
        measured_to_utc=finished.isoformat(timespec="seconds"),
    )
    details["bench"] = {
        "command": [sys.executable, *sys.argv],
        "quick": args.quick,
        "work": str(work),
        "elapsed_s": (finished - started).total_seconds(),
        "demo_models": str(demo.models_out) if demo.models_out else None,
        "val": str(s.val),
        "errors": errors,
    }
    result = {**_shaped(values), "details": details, "machine": info,
              "goals": goals.judge(values, details), "notes": notes}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"bench: artefacts kept in {work}", file=sys.stderr)
    return result


def _with_models(s: measure.Setup, m: measure.BenchModel, fn: Callable[..., Any], *a: Any) -> Any:
    measure.ensure_models(s, m)
    return fn(*a)


def _shaped(values: dict[str, Any]) -> dict[str, Any]:
    """Flat keys -> the JSON's shape: demo keys at the top, ssd320's under ``ssd320``."""
    top = {k: v for k, v in values.items() if not k.startswith("ssd320.")}
    top["ssd320"] = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("ssd320.")}
    return top


def main(argv: list[str] | None = None) -> int:
    """The CLI boundary of ``liteship bench``: errors -> message + exit code, never a traceback
    without --debug."""
    from liteship import atomic

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.out is None:
            raise UsageProblem("--out FILE is required")
        out = args.out.resolve()
        if out.is_dir() or not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
            raise UsageProblem(f"--out {args.out}: give a file path in an existing, writable folder")
        if args.models is not None and not (args.models / "models").is_dir():
            raise UsageProblem(f"--models {args.models} has no models/ folder; give a folder written by "
                               "`liteship run` or `liteship metadata`")
        result = run_bench(args)
        atomic.write_json(out, result)
        _partial(out).unlink(missing_ok=True)
        if args.markdown is not None:
            atomic.write_text(args.markdown, output.markdown(result))
        print(output.table(result))
        print(f"written: {out}")
        errors = result["details"]["bench"]["errors"]
        if errors:
            problem = BenchmarkProblem(f"{len(errors)} measurement(s) failed (see notes in {out}): {errors[0]}")
            print(f"liteship bench: error: {problem.message}", file=sys.stderr)
            return problem.exit_code
        return 0
    except KeyboardInterrupt:
        exc: LiteshipError = Interrupted("interrupted; nothing written (what was measured is in OUT.partial)")
        print(f"liteship bench: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except LiteshipError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"liteship bench: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # the boundary: a bug, never a user error
        if args.debug:
            traceback.print_exc()
        print(f"liteship bench: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return 1
