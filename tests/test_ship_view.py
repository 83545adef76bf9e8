"""report.html's "Which variant to ship" (liteship/report/html/ship.py) from report data only,
and the desktop latency the rows are made of (liteship/validation/latency.py, real LiteRT)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from liteship.report.html import ship


def _lat(median: float, p90: float) -> dict[str, Any]:
    return {"cpu": "Test CPU, 2 cores", "runtime": "ai-edge-litert", "input": "x", "warmup": 3, "note": "n",
            "threads": {"1": {"threads": 1, "runs": 20, "median_ms": median, "p90_ms": p90, "min_ms": median,
                              "max_ms": p90},
                        "2": {"threads": 2, "runs": 20, "median_ms": median / 2, "p90_ms": p90 / 2,
                              "min_ms": median / 2, "max_ms": p90 / 2}}}


def _report() -> dict[str, Any]:
    passing = [{"id": "parity.detections.recall", "verdict": "pass"}]
    variants = [
        {"name": "fp32", "size_bytes": 4_000_000, "map50": 0.90, "latency": _lat(10.0, 12.0), "checks": passing},
        {"name": "fp16", "size_bytes": 2_000_000, "map50": 0.89, "latency": _lat(9.5, 11.0), "checks": passing},
        {"name": "int8", "size_bytes": 1_100_000, "map50": 0.88, "latency": _lat(4.0, 5.0),
         "checks": [{"id": "parity.detections.recall", "verdict": "fail"}]},  # fastest, but fails
    ]
    consumers = {
        "consumers": ["litert-interpreter", "task-library", "mediapipe"],
        "variants": {
            "fp32": {"litert-interpreter": {"verdict": "pass", "reason": "runs"},
                     "task-library": {"verdict": "pass", "reason": "loads"},
                     "mediapipe": {"verdict": "fail", "reason": "per-channel normalization"}},
            "fp16": {"litert-interpreter": {"verdict": "pass", "reason": "runs"},
                     "task-library": {"verdict": "skip", "reason": "not verified: no runtime"},
                     "mediapipe": {"verdict": "pass", "reason": "loads"}},
            "int8": {"litert-interpreter": {"verdict": "pass", "reason": "runs"}},
        },
    }
    return {"variants": variants, "validation": {"consumers": consumers}}


def _row(html: str, name: str) -> str:
    match = re.search(rf"<tr[^>]*><td><strong>{name}</strong>.*?</tr>", html)
    assert match, f"no row for {name}"
    return match.group(0)


def test_the_table_has_size_latency_map_parity_and_the_consumer_matrix_column() -> None:
    html = ship.render(_report())
    for head in ("size", "latency 1 thread, ms", "latency 2 threads, ms", "mAP@0.5", "parity", "apps that load it"):
        assert f"<th>{head}</th>" in html or f'<th class="l">{head}</th>' in html, head
    fp32, fp16, int8 = (_row(html, n) for n in ("fp32", "fp16", "int8"))
    assert "4.00 MB" in fp32 and "1.10 MB" in int8 and "(28% of fp32)" in int8
    assert "10.00" in fp32 and "(p90 12.00)" in fp32 and "5.00" in fp32  # 1 thread, and 2 threads
    assert "(-0.020)" in int8  # mAP vs fp32
    # the app column is the consumer matrix of validation.consumers, verdict by verdict
    assert '<span class="pass" title="loads">✓ task-library</span>' in fp32
    assert '<span class="fail" title="per-channel normalization">✗ mediapipe</span>' in fp32
    assert '<span class="skip" title="not verified: no runtime">? task-library</span>' in fp16
    assert "mediapipe" not in int8  # no data for it: not shown as passing
    assert '<td class="fail">fail</td>' in int8 and '<td class="pass">pass</td>' in fp16


def test_the_fastest_variant_that_passes_every_check_is_named_and_phone_latency_is_pointed_to() -> None:
    report = _report()
    assert ship.best_variant(report)["name"] == "fp16"  # int8 is faster but fails a check
    html = ship.render(report)
    assert "← fastest passing" in _row(html, "fp16") and "← fastest passing" not in _row(html, "int8")
    assert "not phone latency" in html and "<code>liteship deploy</code>" in html and "Test CPU, 2 cores" in html


def test_the_plot_has_one_point_per_variant_at_its_latency_and_map() -> None:
    svg = ship.latency_map_svg(_report())
    assert svg is not None and svg.startswith('<svg id="latency-map"')
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert len(titles) == 3
    assert any(t.startswith("int8: 4.000 ms (p90 5.000), mAP@0.5 0.880") for t in titles)
    circles = re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="5" fill="[^"]*"><title>(\w+)', svg)
    cx = {name: float(x) for x, name in circles}
    assert cx["int8"] < cx["fp16"] < cx["fp32"]  # faster is further left


def test_without_latency_or_map_the_section_says_why() -> None:
    report = _report()
    for v in report["variants"]:
        del v["latency"]
    html = ship.render(report)
    assert "No latency: this run did not measure it" in html and "<svg" not in html
    report = _report()
    for v in report["variants"]:
        v["map50"] = None
    assert "No latency-vs-mAP plot" in ship.render(report)
    assert ship.render({"variants": []}) == ""


@pytest.mark.tf
@pytest.mark.slow
def test_desktop_latency_of_real_models_at_1_and_all_threads(run_a: Path) -> None:
    from liteship.validation import latency

    variants = [{"name": n, "path": f"models/{n}.tflite"} for n in ("fp32", "int8")]
    image = latency.first_image(Path(__file__).resolve().parents[1] / "liteship" / "demo" / "data" / "calibration")
    assert image is not None
    results = latency.measure_variants(run_a, variants, image, runs=12, budget_s=None)
    threads = sorted({1, os.cpu_count() or 1})
    for v in variants:
        lat = v["latency"]
        assert sorted(int(k) for k in lat["threads"]) == threads
        for t in lat["threads"].values():
            assert t["runs"] == 12 and 0 < t["min_ms"] <= t["median_ms"] <= t["p90_ms"] <= t["max_ms"]
        assert lat["input"] == "one real image, preprocessed like an app"
        assert "not phone latency" in lat["note"]
    summary = latency.summary(results)
    assert summary is not None and summary["threads"] == threads and "liteship deploy" in summary["note"]


def test_labels_of_variants_with_equal_map_stay_inside_the_plot_and_apart() -> None:
    report = _report()
    report["variants"].append({"name": "dynamic", "size_bytes": 900_000, "map50": 0.90, "latency": _lat(10.2, 40.0),
                               "checks": []})
    for v in report["variants"]:
        v["map50"] = 0.977  # one horizontal line of points, as on the demo
    svg = ship.latency_map_svg(report, height=320)
    assert svg is not None
    labels = [(float(x), float(y), text) for x, y, text in
              re.findall(r'<text x="([\d.]+)" y="([\d.]+)" fill="#[0-9a-f]{6}">([^<]*)</text>', svg)]
    assert len(labels) == 4
    top, bottom = 30, 320 - 46
    assert all(top + 10 <= y <= bottom - 3 for _, y, _ in labels), labels
    for i, (x0, y0, t0) in enumerate(labels):
        for x1, y1, t1 in labels[i + 1:]:
            apart_x = x0 + 6.5 * len(t0) <= x1 or x1 + 6.5 * len(t1) <= x0
            assert apart_x or abs(y0 - y1) >= 13, (t0, t1)
