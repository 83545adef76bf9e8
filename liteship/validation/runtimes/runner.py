"""Run several models through one runtime child process, surviving a runtime that aborts.

One child per runtime serves a list of jobs (the variants of a run, the models of a test
corpus): the runtime is imported once. The child reports, on stdout, ``<MARKER> {"job": i,
"event": "start"}`` before job ``i`` and ``<MARKER> {"job": i, "event": "done", ...}`` after
it, and writes ``<MARKER>-JOB i`` to stderr before it, so that what the native runtime
prints (its error texts go to stderr) can be told apart per job. When the child dies
inside a job (CompiledModel can abort the process), that job is reported as crashed (or
timed out) and the jobs after it run in a fresh child.

A child that cannot import its runtime emits ``{"event": "env", "message": ...}``: every
job is then unavailable (the runtime cannot start here), which is never a verdict on a model.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship import child

#: a TFLite kernel's failed check, as TF_LITE_ENSURE prints it: "path/file.cc:92 condition (a != b)"
_KERNEL_CHECK = re.compile(r"^[\w./-]+\.cc:\d+ \S")


@dataclass(frozen=True)
class Job:
    model: Path
    #: uint8 images [K, H, W, 3] at the model's input size (.npy)
    images: Path
    #: the model's input tensors for those images [K, 1, H, W, C] (.npy), for raw runtimes
    inputs: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": str(self.model), "images": str(self.images), "inputs": str(self.inputs) if self.inputs else None}


@dataclass(frozen=True)
class JobOutcome:
    #: the child's ``done`` line for this job; None when it did not get that far
    payload: dict[str, Any] | None
    #: what the runtime printed to stderr during this job
    stderr: str = ""
    #: set when there is no payload: ``crashed`` | ``timeout`` | ``unavailable`` | ``lost``
    ended: str | None = None
    #: how the child ended, or why the runtime is unavailable
    reason: str = ""
    elapsed_s: float | None = None

    def native_errors(self) -> list[str]:
        """The runtime's own error lines printed during this job: TFLite's ``ERROR: ...`` lines
        (not the bare source locations) and kernel checks (``reshape.cc:92 num_input_elements
        != ...``)."""
        out = []
        for line in self.stderr.splitlines():
            line = line.strip()
            if line.startswith("ERROR: ") and not line.startswith("ERROR: ["):
                out.append(line[len("ERROR: "):])
            elif _KERNEL_CHECK.match(line):
                out.append(line)
        return list(dict.fromkeys(out))


def run_jobs(code: str, marker: str, jobs: Sequence[Job], *, timeout_s: float, per_job_s: float,
             env: dict[str, str] | None = None) -> list[JobOutcome]:
    """``python -c code JOBS.json`` until every job has an outcome (in ``jobs`` order)."""
    outcomes: dict[int, JobOutcome] = {}
    pending = list(range(len(jobs)))
    with tempfile.TemporaryDirectory(prefix="liteship-rt-") as tmp:
        spec = Path(tmp) / "jobs.json"
        while pending:
            spec.write_text(json.dumps([{"job": i, **jobs[i].to_dict()} for i in pending]))
            res = child.run_python(code, [str(spec)], timeout_s=timeout_s + per_job_s * len(pending),
                                   marker=marker, env=env)
            lines = child.payloads(res.stdout, marker)
            errs = _stderr_by_job(res.stderr, marker)
            env_line = next((p for p in lines if p.get("event") == "env"), None)
            if env_line is not None or not res.started:
                reason = env_line["message"] if env_line else f"the runtime child {res.describe()}"
                for i in pending:
                    outcomes[i] = JobOutcome(None, ended="unavailable", reason=reason)
                break
            started = [p["job"] for p in lines if p.get("event") == "start"]
            for p in lines:
                if p.get("event") == "done" and p.get("job") in pending:
                    outcomes[p["job"]] = JobOutcome(p, errs.get(p["job"], ""), elapsed_s=p.get("elapsed_s"))
            unfinished = [i for i in started if i not in outcomes]
            if unfinished:  # the child died inside this job
                i = unfinished[-1]
                ended = "timeout" if res.outcome == "timeout" else "crashed"
                outcomes[i] = JobOutcome(None, errs.get(i, ""), ended=ended, reason=res.describe(),
                                         elapsed_s=res.elapsed_s)
            elif res.outcome != "ok" and not any(i not in outcomes for i in started):
                # died before starting the next job: report it on that job rather than loop
                rest = [i for i in pending if i not in outcomes]
                if rest:
                    outcomes[rest[0]] = JobOutcome(None, res.stderr[-2000:], ended="lost", reason=res.describe())
            remaining = [i for i in pending if i not in outcomes]
            if remaining == pending:  # no progress at all: do not start the same child again
                for i in remaining:
                    outcomes[i] = JobOutcome(None, res.stderr[-2000:], ended="lost", reason=res.describe())
                break
            pending = remaining
    return [outcomes[i] for i in range(len(jobs))]


def _stderr_by_job(stderr: str, marker: str) -> dict[int, str]:
    parts: dict[int, list[str]] = {}
    current: int | None = None
    tag = f"{marker}-JOB "
    for line in stderr.splitlines():
        if line.startswith(tag):
            try:
                current = int(line[len(tag):].strip())
            except ValueError:
                current = None
            continue
        if current is not None:
            parts.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in parts.items()}


#: the child-side helpers every runtime child starts with (``job_loop`` drives the jobs)
CHILD_PRELUDE = r"""
import json, sys, time
def _emit(**kw):
    from liteship.child import emit
    emit(MARKER, **kw)
def first_line(exc, n=400):
    # the message lines without LiteRT's source locations ("ERROR: [file.h:123]", tree glyphs)
    import re
    parts = [re.sub(r"^(\u2514\s*)?(ERROR: )?(\[[^\]]*\])?\s*", "", line.strip()) for line in str(exc).splitlines()]
    return " / ".join(p for p in parts if p)[:n]
def env_failure(message):
    _emit(event="env", message=message); sys.exit(0)
def job_loop(run_one):
    import numpy as np
    for job in json.load(open(sys.argv[1])):
        i = job["job"]
        print(f"{MARKER}-JOB {i}", file=sys.stderr, flush=True)
        _emit(job=i, event="start")
        t0 = time.perf_counter()
        try:
            result = run_one(job, np.load(job["images"]), np.load(job["inputs"]) if job["inputs"] else None)
        except Exception as exc:  # the runtime's own failure, reported as data
            result = {"status": "failed", "stage": "run", "kind": type(exc).__name__, "error": first_line(exc)}
        sys.stdout.flush(); sys.stderr.flush()
        _emit(job=i, event="done", elapsed_s=time.perf_counter() - t0, **result)
"""
