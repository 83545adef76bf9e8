"""scripts/bench.py (also `liteship bench`): the JSON it writes has every key, with the right types.

The measurements themselves are machine-dependent; here only their shape is checked, on the
session's tiny model (`run_a`) in --quick mode without the manual path, `liteship run` or push.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

KEYS = (
    "pipeline_vs_manual_wall_ratio",
    "harness_overhead_ratio",
    "int8_fp32_latency_ratio",
    "int8_fp32_size_ratio",
    "fp16_fp32_size_ratio",
    "map50",
    "scale_time_per_image_ratio",
    "scale_peak_rss_ratio",
    "run_peak_rss_bytes",
    "push_throughput_ratio",
)
SKIPPED = ("pipeline_vs_manual_wall_ratio", "run_peak_rss_bytes", "push_throughput_ratio")


def test_bad_scale_sizes_are_refused_before_measuring(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = run_cli(["bench", "--out", str(out), "--quick", "--scale-images", "10", "5", "--work", str(tmp_path)])
    assert code == 2
    assert not out.exists()


def test_models_folder_without_models_is_a_usage_error(tmp_path: Path) -> None:
    code = run_cli(["bench", "--out", str(tmp_path / "b.json"), "--models", str(tmp_path)])
    assert code == 2


@pytest.mark.tf
@pytest.mark.slow
def test_quick_bench_json_has_every_key_with_the_right_type(run_a: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = run_cli([
        "bench", "--out", str(out), "--quick", "--skip-manual", "--skip-push", "--models", str(run_a),
        "--work", str(tmp_path), "--latency-runs", "5", "--harness-images", "3", "--scale-images", "3", "6",
    ])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {*KEYS, "details", "machine", "goals", "notes"}
    for key in KEYS:
        value = result[key]
        if key in SKIPPED:
            assert value is None and result["notes"][key], key
        elif key == "map50":
            assert set(value) == {"fp32", "fp16", "dynamic", "int8"}
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in value.values())
        else:
            assert isinstance(value, float) and value > 0, (key, value)
            assert key in result["details"]
        assert result["goals"][key]["met"] in (True, False, None)
        assert result["goals"][key]["goal"]
    assert result["details"]["harness_overhead_ratio"]["per_variant"]["int8"]["bare_ms"]["n"] == 3
    assert set(result["details"]["int8_fp32_latency_ratio"]["ms"]) == {
        f"{v}@{t}" for v in ("fp32", "fp16", "dynamic", "int8") for t in (1, 2)
    }
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["python"] and len(machine["load_average_start"]) == 3
    assert not list(tmp_path.glob("liteship-bench-*")), "the temporary work folder was left behind"
