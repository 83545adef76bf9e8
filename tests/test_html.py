"""report.html: one self-contained page, robust to partial reports, escaped."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from liteship.report.html import page, render_html, write_html, write_html_safely
from liteship.report.html.overlays import OverlayImage, Overlays
from liteship.validation.detect import Detections
from liteship.validation.groundtruth import GroundTruthBox
from tests.fixtures.chromium import chromium, console_errors, dump_dom, screenshot  # noqa: F401 (fixture)

NASTY = '<script>alert("x")</script> & \'quotes\''


def _checks(parity: bool, failing: bool = False) -> list[dict[str, Any]]:
    checks = [
        {"id": "postprocess_op", "verdict": "pass", "expected": 1, "found": 1, "message": "", "fix": ""},
        {"id": "no_flex_ops", "verdict": "pass", "expected": [], "found": [], "message": "", "fix": ""},
        {"id": "output_count", "verdict": "pass", "expected": 4, "found": 4, "message": "", "fix": ""},
        {"id": "litert_runs", "verdict": "pass", "expected": "[1,N,4]", "found": [1, 10, 4], "message": "", "fix": ""},
    ]
    if parity:
        checks.append({"id": "parity.detections.recall", "verdict": "fail" if failing else "pass",
                       "expected": ">= 0.85", "found": 0.61 if failing else 0.99,
                       "message": NASTY if failing else "", "fix": "calibrate with <your> images & retry" if failing else ""})
    else:
        checks.append({"id": "parity", "verdict": "n/a", "expected": None, "found": None,
                       "message": "no desktop reference", "fix": ""})
    return checks


def _variant(name: str, dtype: str, *, parity: bool, with_map: bool, failing: bool = False) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name,
        "path": f"models/{name}.tflite",
        "sha256": "ab" * 32,
        "size_bytes": 1_388_653,
        "input": {"name": "serving_default_input:0", "dtype": dtype, "shape": [1, 160, 160, 3],
                  "quantization": {"scales": [0.0078431], "zero_points": [127], "quantized_dimension": 0}
                  if dtype == "uint8" else None},
        "outputs": [{"position": i, "role": r, "name": f"StatefulPartitionedCall:{3 - i}", "shape": [], "dtype": "float32"}
                    for i, r in enumerate(["location", "category", "score", "number of detections"])],
        "output_order": "port",
        "conversion_seconds": 13.2,
        "metadata": {"norm_mean": [127.5], "norm_std": [127.5], "label_count": 3},
        "checks": _checks(parity, failing),
    }
    if parity:
        v["parity"] = {
            "images": 50, "score_threshold": 0.3,
            "heads": {"box_encodings": {"max_abs": 0.07, "mean_abs": 0.007},
                      "class_predictions": {"max_abs": 0.017, "mean_abs": 0.0001}},
            "reference_detections": 114, "variant_detections": 114, "matched": 113,
            "class_agreement": 0.99, "recall": 0.61 if failing else 0.99, "precision": 1.0,
            "iou": {"count": 113, "mean": 0.99, "max": 1.0, "min": 0.88,
                    "histogram": {"edges": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0], "counts": [0, 0, 0, 1, 2, 110]}},
            "score_delta": {"count": 113, "mean": 0.0019, "max": 0.0117, "min": 1e-7},
        }
    if with_map:
        v["map50"], v["map"] = 0.9765, 0.8017
    return v


def full_report(failing: bool = True, ground_truth: str | None = "/nonexistent/val") -> dict[str, Any]:
    """(a): every section has data; int8 fails a parity check whose message needs escaping."""
    return {
        "schema": "liteship.report", "schema_version": 1,
        "status": "fail" if failing else "ok",
        "created": "2026-11-22T00:36:28+0000", "wall_seconds": 120.9,
        "command": ["liteship", "run", "--out", "out & <dir>"],
        "platform": {"system": "Linux", "machine": "x86_64", "python": "3.11.7"},
        "versions": {"liteship": "0.1.0", "tensorflow": "2.21.0", "ai_edge_litert": "2.3.0"},
        "inputs": {"kind": "checkpoint", "demo": True, "pipeline_config": "/x/pipeline.config"},
        "labels": {"path": "labelmap.txt", "count": 3, "source": "/x/label_map.pbtxt"},
        "export": {"kind": "checkpoint", "input_shape": [1, 160, 160, 3]},
        "calibration": {"count": 64, "min": -1.0, "max": 1.0},
        "variants": [
            _variant("fp32", "float32", parity=True, with_map=True),
            _variant("fp16", "float32", parity=True, with_map=True),
            _variant("dynamic", "float32", parity=True, with_map=True),
            _variant("int8", "uint8", parity=True, with_map=True, failing=failing),
        ],
        "validation": {"ground_truth": ground_truth, "reference": {"map50": 0.9761, "map": 0.8085}}
        if ground_truth else None,
        "errors": [],
    }


def no_parity_report() -> dict[str, Any]:
    """(b)/(c): converted without a reference and without ground truth."""
    report = full_report(failing=False, ground_truth=None)
    report["variants"] = [_variant(n, d, parity=False, with_map=False)
                          for n, d in (("fp32", "float32"), ("int8", "uint8"))]
    return report


def error_report() -> dict[str, Any]:
    return {
        "schema": "liteship.report", "schema_version": 1, "status": "error", "command": ["liteship", "run"],
        "variants": [], "validation": None, "labels": None, "export": None,
        "errors": [{"kind": "ConversionProblem", "exit_code": 3, "message": "op <FlexFoo> & friends unsupported"}],
    }


def _no_external_urls(text: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower().replace("&lt;script", "")


def test_full_report_failing_first_escaped_self_contained(tmp_path: Path) -> None:
    report = full_report()
    text = render_html(copy.deepcopy(report))
    assert text.startswith("<!DOCTYPE html>")
    failing = text.index('id="failing-checks"')
    assert failing < text.index('id="variant-table"')
    assert text.index('id="failing"') < text.index('id="variants"')
    # the failing check is in the failing table with its variant, escaped
    failing_table = text[failing:text.index("</table>", failing)]
    assert "int8" in failing_table and "parity.detections.recall" in failing_table
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quotes&#x27;" in failing_table
    assert "calibrate with &lt;your&gt; images &amp; retry" in failing_table
    assert NASTY not in text
    assert "out &amp; &lt;dir&gt;" in text
    _no_external_urls(text)
    # plots: mAP bars with the reference line, 4 IoU histograms, score deltas
    assert text.count("<svg") == 6
    assert "mAP@0.5 per variant" in text and "desktop reference" in text
    # no overlays were given: a sentence instead of images (the renderer runs no model)
    assert "computed none for this page" in text and "data:image/jpeg" not in text
    assert "section could not be rendered" not in text
    assert report == full_report()  # the input dict is not changed


def test_no_parity_no_map(tmp_path: Path) -> None:
    text = render_html(no_parity_report())
    assert "<svg" not in text
    assert "no variant has one" in text and "no variant has parity data" in text
    assert "No overlays: this run had no ground truth" in text
    assert "No check failed." in text
    assert "section could not be rendered" not in text
    _no_external_urls(text)


def test_error_report_without_variants(tmp_path: Path) -> None:
    text = render_html(error_report())
    assert "error" in text and "The run wrote no model variant." in text
    assert "op &lt;FlexFoo&gt; &amp; friends unsupported" in text
    assert text.index('id="failing"') < text.index('id="error-list"') < text.index('id="variants"')
    assert "section could not be rendered" not in text
    _no_external_urls(text)


@pytest.mark.parametrize("report", [{}, {"status": None, "variants": None, "errors": None},
                                    {"status": "ok", "variants": [{"name": "x", "checks": None, "parity": {"iou": {}}}],
                                     "validation": {"reference": "bad"}},
                                    {"status": "ok", "variants": ["not a dict", {"map50": "nan?", "parity": []}]}])
def test_malformed_reports_render(tmp_path: Path, report: dict[str, Any]) -> None:
    text = render_html(report)
    assert "</html>" in text


def test_write_html_atomic_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_html(full_report(), tmp_path)
    assert path == tmp_path / "report.html" and "Failing checks" in path.read_text()

    def broken(*_: Any, **__: Any) -> str:
        raise RuntimeError("boom <b>")

    monkeypatch.setattr(page, "render_html", broken)
    path = write_html_safely(full_report(), tmp_path)
    text = path.read_text()
    assert "renderer failed" in text and "boom &lt;b&gt;" in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left


def test_report_write_writes_html(tmp_path: Path) -> None:
    from liteship.report import Report

    Report(command=["liteship", "run"], out_dir=tmp_path).write("error")
    assert {"report.json", "junit.xml", "report.html"} <= {p.name for p in tmp_path.iterdir()}
    assert "The run wrote no model variant." in (tmp_path / "report.html").read_text()


@pytest.mark.tf
@pytest.mark.slow
def test_overlays_of_a_real_run_are_drawn_from_the_validation_detections(run_a: Path) -> None:
    """The session's converted models run on ground-truth images by the validation stage
    (app_run); the page draws exactly those detections and runs nothing itself."""
    from liteship.validation import app_run
    from liteship.validation.groundtruth import load_ground_truth

    names = (run_a / "labelmap.txt").read_text().splitlines()
    gt = load_ground_truth(Path(__file__).resolve().parents[1] / "liteship" / "demo" / "data" / "val", names)[:2]
    models = {n: (run_a / "models" / f"{n}.tflite").read_bytes() for n in ("fp32", "int8")}
    runs, kept = app_run.run_models(models, None, app_run.images_from_ground_truth(gt), keep_images=2)
    overlays = Overlays(tuple(names), tuple(OverlayImage(i.filename, rgb, i.gt_boxes or (),
                                                         {n: r.detections[i.filename] for n, r in runs.items()})
                                            for i, rgb in kept))
    report = full_report(failing=False, ground_truth="val")
    report["variants"] = [v for v in report["variants"] if v["name"] in models]
    text = render_html(report, overlays)
    assert text.count("data:image/jpeg;base64,") == 2 * 2
    for image in overlays.images:
        for name in models:
            shown = int((image.detections[name].scores >= 0.3).sum())
            assert f"{shown} det. / {len(image.gt_boxes)} GT" in text
    assert "section could not be rendered" not in text
    _no_external_urls(text)


# ------------------------------------------------------------------------- in a browser


def _tiny_png(path: Path) -> Path:
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[8:40, 10:30] = (220, 40, 40)
    rgb[12:30, 36:60] = (40, 40, 220)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.mark.slow
def test_page_in_headless_chromium(tmp_path: Path, chromium: Path) -> None:  # noqa: F811 (fixture)
    out = tmp_path / "out"
    rgb = np.asarray(Image.open(_tiny_png(tmp_path / "val" / "val_00000.png")).convert("RGB"))
    dets = Detections(np.array([[10, 8, 30, 40]], np.float32), np.array([0]), np.array([0.9], np.float32))
    overlays = Overlays(("circle", "square", "triangle"), (OverlayImage(
        "val_00000.png", rgb, (GroundTruthBox(10, 8, 30, 40, "circle"),), {v: dets for v in ("fp32", "fp16", "dynamic", "int8")}),))
    report = full_report(ground_truth=str(tmp_path / "val"))
    html_path = write_html(report, out, overlays)

    dom, stderr = dump_dom(chromium, html_path, tmp_path / "dom")
    assert not console_errors(stderr), console_errors(stderr)
    assert "Failing checks" in dom and "parity.detections.recall" in dom
    assert re.search(r'class="status"[^>]*>\s*fail\s*<', dom)

    shot, stderr = screenshot(chromium, html_path, tmp_path / "shot", window=(1280, 2000))
    assert not console_errors(stderr), console_errors(stderr)
    assert shot.exists() and shot.stat().st_size > 10_000
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 10
    colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 20
    # the red FAIL badge is drawn near the top of the page
    top = pixels[:120].reshape(-1, 3).astype(int)
    assert np.any((top[:, 0] > 180) & (top[:, 1] < 70) & (top[:, 2] < 80))
