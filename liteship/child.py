"""The one place liteship starts a child process (the pypa/build ``run_subprocess`` habit).

Children are used where a runtime must not share liteship's process: TensorFlow's analyzer
for a TensorFlow-free ``liteship lint``, the Task Library (its pybinds clash with
TensorFlow's), MediaPipe and CompiledModel (they can abort the process). Every call is a list
of arguments (never a shell), has a timeout, and reports what happened as data:
``ChildResult.outcome`` is ``ok`` (exited 0), ``failed`` (non-zero exit), ``crashed`` (killed
by a signal), ``timeout`` or ``not_started`` -- the caller turns that into a verdict.

A Python child reports its result on one stdout line ``<MARKER> <json>``; anything else it
prints (native runtimes write to stdout too) is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("liteship.child")


@dataclass(frozen=True)
class ChildResult:
    command: tuple[str, ...]
    outcome: str  # ok | failed | crashed | timeout | not_started
    returncode: int | None
    stdout: str
    stderr: str
    elapsed_s: float
    #: the JSON of the ``<MARKER> {...}`` line (the last one), None when there is none
    payload: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.outcome != "not_started"

    def last_stderr_line(self, width: int = 200) -> str:
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        return (lines[-1] if lines else "no output")[:width]

    def describe(self) -> str:
        """One line for a message: how the child ended."""
        if self.outcome == "timeout":
            return f"did not finish in {self.elapsed_s:.0f} s"
        if self.outcome == "not_started":
            return f"could not be started: {self.stderr}"
        if self.outcome == "crashed" and self.returncode is not None:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"crashed ({name}): {self.last_stderr_line()}"
        return f"exited {self.returncode}: {self.last_stderr_line()}"


def run(
    command: Sequence[str],
    *,
    timeout_s: float,
    marker: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> ChildResult:
    """Run ``command`` (no shell), capture its output, never raise for how it ended."""
    cmd = tuple(str(c) for c in command)
    log.debug("child: %s", " ".join(cmd))
    full_env = {**os.environ, **env} if env is not None else None
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s,
                              env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        return ChildResult(cmd, "timeout", None, _text(exc.stdout), _text(exc.stderr), time.perf_counter() - start)
    except OSError as exc:
        return ChildResult(cmd, "not_started", None, "", str(exc), time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    outcome = "ok" if proc.returncode == 0 else ("crashed" if proc.returncode < 0 else "failed")
    payload = _payload(proc.stdout, marker) if marker else None
    return ChildResult(cmd, outcome, proc.returncode, proc.stdout, proc.stderr, elapsed, payload)


def run_python(
    code: str,
    args: Sequence[str] = (),
    *,
    timeout_s: float,
    marker: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ChildResult:
    """``python -c code args...`` with this interpreter (the same environment as liteship)."""
    return run([sys.executable, "-c", code, *args], timeout_s=timeout_s, marker=marker, env=env)


def emit(marker: str, **payload: Any) -> None:
    """Called in a child: print the result line the parent looks for."""
    print(f"{marker} {json.dumps(payload)}", flush=True)


def payloads(stdout: str, marker: str) -> list[dict[str, Any]]:
    """Every ``<MARKER> {...}`` line of a child's stdout, in order (children that report
    several results, one line each); unparsable lines are left out."""
    prefix = marker + " "
    found = []
    for line in stdout.splitlines():
        if line.startswith(prefix):
            try:
                value = json.loads(line[len(prefix):])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def _payload(stdout: str, marker: str) -> dict[str, Any] | None:
    prefix = marker + " "
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            try:
                value = json.loads(line[len(prefix):])
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
