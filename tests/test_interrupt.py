"""Interruption safety: `liteship metadata` killed with SIGINT (Ctrl-C: the whole process group,
conversion workers included) or SIGKILL at several points, in a subprocess.

After every kill: (a) nothing in the output folder looks complete but is not — every
models/*.tflite parses and passes its static and runtime checks, report.json (if present)
is valid JSON whose variants are exactly the files there (same sha256), no temporary file
carries a final name, and no process of the run is left behind; (b) SIGINT exits 130 with
one line and no traceback. The kills go to the SAME output folder one after the other (a
user pressing Ctrl-C, rerunning, pressing it again...); then (c) rerunning the command
gives the same set of files as an uninterrupted run into a fresh folder, each valid.

Input: a 2-conv SSD-like SavedModel with TFLite_Detection_PostProcess (32x32, 3 classes,
tests/fixtures/tiny_ssd.py), so that a whole run takes seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from liteship.converter import verify
from liteship.tflite_inspect import inspect_file
from liteship.types import Int8Input, OutputOrder, Variant

pytestmark = [pytest.mark.tf, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261122
#: TensorFlow's C++ notices (absl logging) that reach stderr from code outside liteship's capture
NATIVE_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")


@pytest.fixture(scope="module")
def tiny_input(tmp_path_factory: pytest.TempPathFactory, calib_images: Path) -> list[str]:
    """The model arguments: a seconds-to-convert SavedModel (input b), its labels, images."""
    from tests.fixtures.bad_tiny_saved_model import LABELS, shared_tiny_saved_model

    root = tmp_path_factory.mktemp("interrupt_input")
    (root / "label_map.pbtxt").write_text(LABELS)
    saved_model = shared_tiny_saved_model(tmp_path_factory.getbasetemp())
    return ["--saved-model", str(saved_model), "--label-map", str(root / "label_map.pbtxt"),
            "--images", str(calib_images), "--calibration-images", "4"]


def command(inputs: list[str], out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "liteship", "metadata", *inputs, "--out", str(out), *extra]


@dataclass
class Outcome:
    code: int
    stderr: str
    seconds: float
    killed: bool  # False: the run ended before the kill point


#: (seconds since the start, wall-clock start in ns) -> kill now?
Trigger = Callable[[float, int], bool]


def after(seconds: float) -> Trigger:
    return lambda elapsed, _: elapsed >= seconds


def written(out: Path, pattern: str) -> Trigger:
    """A file matching ``pattern`` was written by THIS run (the folder holds earlier runs' files)."""
    return lambda _, start_ns: any(p.stat().st_mtime_ns > start_ns for p in out.glob(pattern))


def never(elapsed: float, start_ns: int) -> bool:
    return False


def run_and_kill(cmd: list[str], sig: signal.Signals | None, trigger: Trigger) -> Outcome:
    """Start the command in its own session; at the trigger send SIGINT to the group (what Ctrl-C
    does) or SIGKILL to the main process (what the OOM killer does); wait for the group to end."""
    t0, start_ns = time.monotonic(), time.time_ns()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    killed = False
    try:
        while sig is not None and proc.poll() is None:
            if trigger(time.monotonic() - t0, start_ns):
                if sig is signal.SIGINT:
                    os.killpg(proc.pid, signal.SIGINT)
                else:
                    proc.send_signal(sig)
                killed = True
                break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=120)  # the workers hold stderr too: this also waits for them
        _assert_group_ends(proc.pid)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # only our own session; nothing left if all went well
        except ProcessLookupError:
            pass
    return Outcome(proc.returncode, err, time.monotonic() - t0, killed)


def _assert_group_ends(pgid: int, within: float = 30.0) -> None:
    """Conversion workers must not outlive the run (after SIGKILL they notice the parent is gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the killed run are still alive {within} s later (orphaned workers)")


def liteship_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not NATIVE_LOG.match(line)]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_looks_complete_but_is_not(out: Path) -> None:
    """(a): every final name holds a complete, valid file; the report describes what is there."""
    if not out.exists():
        return
    files = [p for p in out.rglob("*") if p.is_file()]
    temporaries = [p for p in files if any(part.startswith(".") and part.endswith(".partial")
                                           for part in p.relative_to(out).parts)]
    finals = [p for p in files if p not in temporaries]
    # a file under a final name is never a temporary (whatever it is named)
    assert not [p for p in finals if "partial" in p.name], finals
    for model in sorted(out.glob("models/*.tflite")):
        variant = Variant(model.stem)
        info = inspect_file(model)
        int8_input = Int8Input.UINT8
        checks = verify.static_checks(info, variant, OutputOrder.PORT, int8_input)
        assert [c.id for c in checks if c.verdict == "fail"] == [], model
        check, _ = verify.runtime_check(model.read_bytes(), 5)
        assert check.verdict == "pass", (model, check)
    labels = out / "labelmap.txt"
    if labels.exists():
        assert labels.read_text() == "a\nb\nc\n"
    report_path = out / "report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        assert report["status"] in ("ok", "partial", "fail", "error")
        listed = {v["path"]: v["sha256"] for v in report.get("variants", [])}
        present = {str(p.relative_to(out)): sha(p) for p in out.glob("models/*.tflite")}
        assert listed == present, "report.json describes other models than the ones in the folder"


def assert_interrupted_cleanly(outcome: Outcome, point: str) -> None:
    """(b): Ctrl-C exits 130 with one line, no traceback (a run that ended first exits 0)."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    if not outcome.killed:
        assert outcome.code == 0, outcome.stderr
        return
    assert outcome.code == 130, (point, outcome)
    assert liteship_lines(outcome.stderr) == [
        "liteship: interrupted; files already written are complete, rerun to finish"
    ], outcome.stderr


def test_interrupted_runs_leave_only_complete_files_and_a_rerun_completes(tiny_input: list[str], tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    full = run_and_kill(command(tiny_input, reference), None, never)
    assert full.code == 0, full.stderr
    assert_nothing_looks_complete_but_is_not(reference)
    expected = sorted(str(p.relative_to(reference)) for p in reference.rglob("*") if p.is_file())
    assert {f"models/{v.value}.tflite" for v in Variant} <= set(expected)

    out = tmp_path / "out"
    rng = random.Random(SEED)
    # Not covered: the first ~0.05 s (interpreter start, importing liteship.cli), where Python's
    # own KeyboardInterrupt handling applies.
    points: list[tuple[str, signal.Signals, Trigger]] = [
        ("SIGINT while importing / parsing arguments", signal.SIGINT, after(rng.uniform(0.15, 0.7))),
        ("SIGINT during TensorFlow import / pre-flight / SavedModel inspection", signal.SIGINT,
         after(rng.uniform(1.0, 0.4 * full.seconds))),
        ("SIGINT when labelmap.txt is written (conversions start)", signal.SIGINT, written(out, "labelmap.txt")),
        ("SIGKILL when the first model is written", signal.SIGKILL, written(out, "models/*.tflite")),
        ("SIGINT when the first model is written", signal.SIGINT, written(out, "models/*.tflite")),
    ]
    seen = []
    for name, sig, trigger in points:
        outcome = run_and_kill(command(tiny_input, out), sig, trigger)
        seen.append((name, outcome.code, round(outcome.seconds, 1), outcome.killed))
        assert_nothing_looks_complete_but_is_not(out)
        if sig is signal.SIGINT:
            assert_interrupted_cleanly(outcome, name)
        else:
            assert outcome.code in (-signal.SIGKILL, 0), (name, outcome)
    assert sum(killed for *_, killed in seen) >= 4, seen  # the points were really hit

    final = run_and_kill(command(tiny_input, out), None, never)
    assert final.code == 0, final.stderr
    assert_nothing_looks_complete_but_is_not(out)
    # the complete rerun also removed the temporaries the killed runs left behind
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == expected
    assert json.loads((out / "report.json").read_text())["status"] == "ok"

    # A rerun with other options killed once it replaced a model: the complete run's report.json
    # must not stay behind describing the models that were replaced.
    before = {p.name: sha(p) for p in out.glob("models/*.tflite")}

    def replaced(elapsed: float, start_ns: int) -> bool:
        return any(sha(p) != before.get(p.name) for p in out.glob("models/*.tflite"))

    outcome = run_and_kill(command(tiny_input, out, "--max-detections", "7"), signal.SIGKILL, replaced)
    assert outcome.killed, "the rerun ended before a model was replaced"
    assert_nothing_looks_complete_but_is_not(out)
