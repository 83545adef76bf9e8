"""Processes of the benchmark: every heavy measurement runs in a fresh child (liteship/child.py).

:func:`run_measured` times a command and samples the memory of its process tree;
:func:`run_child` runs one of :mod:`liteship.bench.children` and returns its JSON result.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship import child
from liteship.errors import BenchmarkProblem

MARKER = "BENCH_RESULT"
CHILD_CODE = "import sys; from liteship.bench.children import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Measured:
    command: list[str]
    returncode: int | None
    wall_s: float
    #: ru_maxrss of the process (the largest of it and its waited-for descendants), bytes
    maxrss_bytes: int
    #: sampled (every 0.25 s) peak of the summed RSS / PSS of the process and its descendants
    tree_rss_peak_bytes: int
    tree_pss_peak_bytes: int
    stdout: str
    log: Path
    payload: dict[str, Any] | None = None


def tree_memory(root: int) -> tuple[int, int]:
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


def tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    keep = [t for t in text if not t.startswith(("W0000", "I0000", "E0000", "WARNING: All log", "INFO: Created"))]
    return " | ".join(keep[-lines:])


def run_measured(command: list[str], log: Path, *, timeout_s: float = 3600, marker: str | None = None,
                 env: dict[str, str] | None = None) -> Measured:
    """Run ``command`` (no shell); wall time, peak RSS (wait4) and sampled process-tree memory.
    Its stderr is appended to ``log``."""
    peak = [0, 0]

    def watch(pid: int) -> None:
        rss, pss = tree_memory(pid)
        peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    result = child.run_measured(command, timeout_s=timeout_s, marker=marker, env=env, watch=watch)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write("\n$ " + " ".join(result.command) + "\n" + result.stderr)
        if result.outcome not in ("ok", "failed"):
            f.write(f"\n[bench] the process {result.describe()}\n")
    maxrss = result.max_rss_bytes or 0
    return Measured(list(result.command), result.returncode, result.elapsed_s, maxrss, max(peak[0], maxrss),
                    max(peak[1], maxrss), result.stdout, log, result.payload)


def run_child(kind: str, params: dict[str, Any], work: Path, *, timeout_s: float = 3600) -> tuple[dict[str, Any], Measured]:
    """One :mod:`liteship.bench.children` measurement in a fresh process; its JSON result."""
    command = [sys.executable, "-c", CHILD_CODE, kind, json.dumps(params)]
    m = run_measured(command, work / "logs" / f"{kind}.log", timeout_s=timeout_s, marker=MARKER,
                     env={"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")})
    if m.returncode != 0 or m.payload is None:
        raise BenchmarkProblem(f"the {kind} measurement exited {m.returncode} without a result: {tail(m.log)} "
                               f"(log: {m.log})")
    return m.payload, m


def summary(values: list[float]) -> dict[str, Any]:
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
