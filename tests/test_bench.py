"""`liteship bench` (liteship/bench/; scripts/bench.py is a wrapper): the JSON it writes has
every key, with the right types and a goal each.

The measurements themselves are machine-dependent; here only their shape is checked, on the
session's tiny model (`run_a`) in --quick mode without the manual path, `liteship run`, push
or the 320x320 model (those run in the full benchmark: docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

MODEL_KEYS = (
    "pipeline_vs_manual_wall_ratio",
    "harness_overhead_ratio",
    "int8_fp32_latency_ratio",
    "int8_fp32_latency_ratio_2threads",
    "fp16_fp32_latency_ratio",
    "fp16_fp32_latency_ratio_2threads",
    "int8_fp32_size_ratio",
    "fp16_fp32_size_ratio",
)
DEMO_KEYS = (
    "map50",
    "scale_time_per_image_ratio",
    "scale_peak_rss_ratio",
    "scale_cores_used",
    "run_peak_rss_bytes",
    "rerun_cached_wall_ratio",
    "push_throughput_ratio",
)
SKIPPED = ("pipeline_vs_manual_wall_ratio", "run_peak_rss_bytes", "rerun_cached_wall_ratio", "push_throughput_ratio")
ROOT = Path(__file__).resolve().parents[1]


def test_bad_scale_sizes_are_refused_before_measuring(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = run_cli(["bench", "--out", str(out), "--quick", "--scale-images", "10", "5", "--work", str(tmp_path)])
    assert code == 2
    assert not out.exists()


def test_models_folder_without_models_is_a_usage_error(tmp_path: Path) -> None:
    code = run_cli(["bench", "--out", str(tmp_path / "b.json"), "--models", str(tmp_path)])
    assert code == 2


def test_unknown_only_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["bench", "--out", str(tmp_path / "b.json"), "--only", "ssd320.nope", "--work", str(tmp_path)])
    assert code == 2
    assert "ssd320.int8_fp32_latency_ratio" in capsys.readouterr().err  # the message lists what exists


def test_the_script_is_a_wrapper_of_the_package_command() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and "--skip-ssd320" in done.stdout


@pytest.mark.tf
@pytest.mark.slow
def test_quick_bench_json_has_every_key_with_the_right_type(run_a: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = run_cli([
        "bench", "--out", str(out), "--quick", "--skip-manual", "--skip-push", "--skip-ssd320", "--models", str(run_a),
        "--work", str(tmp_path), "--latency-runs", "5", "--harness-images", "3", "--scale-images", "3", "6",
    ])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {*MODEL_KEYS, *DEMO_KEYS, "ssd320", "details", "machine", "goals", "notes"}
    assert set(result["ssd320"]) == set(MODEL_KEYS)
    assert all(v is None for v in result["ssd320"].values())
    assert all("--skip-ssd320" in result["notes"][f"ssd320.{k}"] for k in MODEL_KEYS)
    for key in (*MODEL_KEYS, *DEMO_KEYS):
        value = result[key]
        if key in SKIPPED:
            assert value is None and result["notes"][key], key
        elif key == "map50":
            assert set(value) == {"fp32", "fp16", "dynamic", "int8"}
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in value.values())
        else:
            assert isinstance(value, float) and value > 0, (key, value)
            assert key in result["details"]
    for key in (*MODEL_KEYS, *DEMO_KEYS, *(f"ssd320.{k}" for k in MODEL_KEYS)):
        assert result["goals"][key]["met"] in (True, False, None)
        assert result["goals"][key]["goal"]
    assert result["goals"]["ssd320.int8_fp32_latency_ratio"]["goal"] == "<= 0.5"
    assert result["details"]["harness_overhead_ratio"]["bare_ms"]["n"] == 3
    assert set(result["details"]["int8_fp32_latency_ratio"]["ms"]) == {
        f"{v}@{t}" for v in ("fp32", "fp16", "dynamic", "int8") for t in (1, 2)
    }
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["python"] and len(machine["load_average_start"]) == 3
    assert not list(tmp_path.glob("liteship-bench-*")), "the temporary work folder was left behind"
