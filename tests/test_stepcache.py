"""The step cache in whole runs (liteship/stepcache.py): what a rerun takes from the cache.

Input (b): the tiny SavedModel (converts in about a second per variant), its own synthetic
ground truth; `liteship run` in-process, conversions in-process (no worker start-up).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from liteship.cache import HIT, MISS, OFF, REBUILT, Cache
from liteship.demo import synth
from tests.conftest import read_report, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

VARIANTS = ("fp32", "fp16", "dynamic", "int8")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, calib_images: Path) -> dict[str, Path]:
    from tests.fixtures.bad_tiny_saved_model import shared_tiny_saved_model

    root = tmp_path_factory.mktemp("stepcache_input")
    (root / "label_map.pbtxt").write_text(synth.label_map_pbtxt())
    gt = root / "gt"
    gt.mkdir()
    for sample in synth.generate(3, 6, "gt"):
        sample.image.save(gt / f"{sample.name}.jpg")
        (gt / f"{sample.name}.xml").write_text(synth.voc_xml(sample, f"{sample.name}.jpg"))
    return {"saved_model": shared_tiny_saved_model(tmp_path_factory.getbasetemp()),
            "label_map": root / "label_map.pbtxt", "images": calib_images, "gt": gt}


def args(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["run", "--saved-model", str(inputs["saved_model"]), "--label-map", str(inputs["label_map"]),
            "--images", str(inputs["images"]), "--calibration-images", "4", "--ground-truth", str(inputs["gt"]),
            "--min-map50", "0", "--max-map50-drop", "1", "--contract", "task-library", "--out", str(out),
            "--quiet", *extra]


def run(argv: list[str]) -> dict[str, Any]:
    code = run_cli(argv)
    out = Path(argv[argv.index("--out") + 1])
    report = read_report(out)
    assert code == 0, (code, report.get("errors"))
    return report


def shas(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("models/*.tflite"))}


@pytest.fixture(scope="module")
def first(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LITESHIP_CONVERT_WORKERS", "1")
    try:
        out = tmp_path_factory.mktemp("stepcache") / "out"
        report = run(args(inputs, out))
    finally:
        mp.undo()
    return out, report


@pytest.fixture(autouse=True)
def _in_process_conversions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITESHIP_CONVERT_WORKERS", "1")


def copy_out(first: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(first[0], out)
    return out


def test_a_first_run_misses_every_step(first: tuple[Path, dict[str, Any]]) -> None:
    steps = first[1]["cache"]["steps"]
    assert steps["run"] == MISS and steps["export"] == MISS
    assert {steps[f"model.{v}"] for v in VARIANTS} == {MISS}
    assert {steps[f"convert.{v}"] for v in VARIANTS} == {MISS}
    assert first[1]["cache"]["dir"] == str(first[0] / ".liteship-cache")


def test_the_report_has_every_variants_desktop_latency(first: tuple[Path, dict[str, Any]]) -> None:
    report = first[1]
    assert "not phone latency" in report["latency"]["note"] and 1 in report["latency"]["threads"]
    for v in report["variants"]:
        one = v["latency"]["threads"]["1"]
        assert one["runs"] >= 5 and 0 < one["median_ms"] <= one["p90_ms"]
    html = (first[0] / "report.html").read_text()
    assert "Which variant to ship" in html and '<svg id="latency-map"' in html


def test_unchanged_inputs_replay_the_run_with_byte_identical_models(
        inputs: dict[str, Path], first: tuple[Path, dict[str, Any]]) -> None:
    out, report = first
    before = shas(out)
    again = run(args(inputs, out))
    assert again["cache"]["replayed"] is True and again["cache"]["steps"] == {"run": HIT}
    assert shas(out) == before and {v["name"]: v["sha256"] for v in again["variants"]} == {
        v["name"]: v["sha256"] for v in report["variants"]}
    for v in again["variants"]:  # latency is measured again, the rest is the first run's
        assert v["latency"]["threads"]["1"]["runs"] >= 5
        assert v["checks"] == next(w for w in report["variants"] if w["name"] == v["name"])["checks"]
    assert json.loads((out / "report.json").read_text())["status"] == "ok"


def test_a_gates_only_change_reruns_only_validation(
        inputs: dict[str, Path], first: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out = copy_out(first, tmp_path)
    report = run(args(inputs, out, "--max-map50-drop", "0.9"))
    steps = report["cache"]["steps"]
    assert steps["run"] == MISS
    others = {k: o for k, o in steps.items() if k != "run"}
    assert others and set(others.values()) == {HIT}, steps  # export, models, parity: nothing converted
    assert not any(k.startswith("convert.") for k in steps), steps
    assert report["validation"]["gates"]["max_map50_drop"] == 0.9
    assert shas(out) == shas(first[0])


def test_a_ground_truth_change_reruns_validation_but_not_export_or_conversion(
        inputs: dict[str, Path], first: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out = copy_out(first, tmp_path)
    gt = tmp_path / "gt"
    shutil.copytree(inputs["gt"], gt)
    victim = sorted(gt.glob("*.xml"))[0]
    victim.unlink()
    victim.with_suffix(".jpg").unlink()
    report = run(args({**inputs, "gt": gt}, out))
    steps = report["cache"]["steps"]
    assert steps["export"] == HIT and {steps[f"model.{v}"] for v in VARIANTS} == {HIT}
    assert not any(k.startswith("convert.") for k in steps), steps
    assert report["variants"][0]["map_detail"]["num_images"] == 5


def test_one_variant_option_reconverts_only_that_variant(
        inputs: dict[str, Path], first: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out = copy_out(first, tmp_path)
    argv = args(inputs, out)
    argv[argv.index("--calibration-images") + 1] = "3"  # an int8-only option
    report = run(argv)
    steps = report["cache"]["steps"]
    assert steps["model.int8"] == MISS and steps["convert.int8"] == MISS
    assert {steps[f"model.{v}"] for v in ("fp32", "fp16", "dynamic")} == {HIT}
    assert not any(k.startswith("convert.") and k != "convert.int8" for k in steps), steps
    assert report["calibration"]["count"] == 3
    before, after = shas(first[0]), shas(out)
    assert {k for k in after if after[k] != before[k]} <= {"int8.tflite"}


def test_a_corrupted_entry_is_detected_and_rebuilt_never_used(
        inputs: dict[str, Path], first: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out = copy_out(first, tmp_path)
    entries = out / ".liteship-cache" / "entries"
    for kind, name in (("model", "model.tflite"), ("convert", "converted.tflite")):
        for manifest in (entries / kind).glob("*/manifest.json"):
            if json.loads(manifest.read_text())["meta"]["variant"] == "fp16":
                target = manifest.parent / name
                data = bytearray(target.read_bytes())
                data[len(data) // 2] ^= 0x55  # one flipped byte, same size
                target.write_bytes(bytes(data))
    report = run(args(inputs, out, "--max-map50-drop", "0.8"))
    steps = report["cache"]["steps"]
    assert steps["model.fp16"] == REBUILT and steps["convert.fp16"] == REBUILT, steps
    assert steps["model.fp32"] == HIT
    fp16 = next(v for v in report["variants"] if v["name"] == "fp16")
    assert all(c["verdict"] != "fail" for c in fp16["checks"]), fp16["checks"]
    assert hashlib.sha256((out / "models" / "fp16.tflite").read_bytes()).hexdigest() == fp16["sha256"]
    c = Cache(out / ".liteship-cache")
    verdicts = {c.get(p.parent.parent.name, p.parent.name)[1]
                for p in entries.glob("*/*/manifest.json")}
    assert verdicts == {HIT}, "every entry verifies again after the rebuild"


def test_no_cache_reads_and_writes_nothing(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = args(inputs, out, "--no-cache", "--variants", "fp32")
    report = run(argv)
    assert set(report["cache"]["steps"].values()) == {OFF}
    assert report["cache"]["dir"] is None
    assert not (out / ".liteship-cache").exists()


def test_a_killed_run_leaves_only_complete_entries_and_the_rerun_completes(
        inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    cache_dir = out / ".liteship-cache"
    command = [sys.executable, "-m", "liteship", *args(inputs, out)[:-1], "--variants", "fp32,fp16,dynamic"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "LITESHIP_CONVERT_WORKERS": "1"})
    deadline = time.monotonic() + 300
    try:  # killed as soon as the second model entry is being written or exists
        while proc.poll() is None and time.monotonic() < deadline:
            models = list((cache_dir / "entries" / "model").glob("*")) if cache_dir.exists() else []
            if len(models) >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    c = Cache(cache_dir)  # a later run: leftovers of the dead one are removed, entries verify
    manifests = list((cache_dir / "entries").glob("*/*/manifest.json"))
    dirs = [p for p in (cache_dir / "entries").glob("*/*") if p.is_dir()]
    assert len(manifests) == len(dirs), "an entry folder without its manifest"
    assert {c.get(p.parent.parent.name, p.parent.name)[1] for p in manifests} <= {HIT}
    assert not any((cache_dir / "tmp").iterdir())
    report = run(args(inputs, out, "--variants", "fp32,fp16,dynamic"))
    assert report["cache"]["steps"]["export"] == HIT
    assert report["status"] == "ok"
