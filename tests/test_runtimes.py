"""liteship.validation.runtimes: real runtimes in child processes, compared with the desktop run.

The child mechanics (several models per child, a child that aborts mid-way, a runtime that
cannot start) run real processes with tiny scripts; the Task Library tests load real models;
the ``tf`` test loads the four variants `liteship metadata` wrote (session fixture ``run_a``)
in all three runtimes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteship.types import Check, Normalization, Verdict
from liteship.validation import consumers, lint, runtimes
from liteship.validation.runtimes import Outcome, Runtime, RuntimeRun, compare, runner, task_library
from tests.fixtures import consumer_models as M

NO_METADATA = "Object detection models require TFLite Model Metadata but none was found"
MARKER = "LITESHIP_TEST"


def _jobs(tmp_path: Path, n: int) -> list[runner.Job]:
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((1, 4, 4, 3), np.uint8))
    return [runner.Job(model=tmp_path / f"m{i}.tflite", images=images) for i in range(n)]


def test_a_child_that_aborts_loses_only_that_job(tmp_path: Path) -> None:
    """Job 1 aborts the process (as CompiledModel can): 0 and 2 still get results, 2 in a new child."""
    code = f"MARKER = {MARKER!r}\n" + runner.CHILD_PRELUDE + r"""
import os
def run_one(job, images, inputs):
    if job["model"].endswith("m1.tflite"):
        print("ERROR: native runtime gave up", file=sys.stderr, flush=True)
        os.abort()
    return {"status": "ok", "pid": os.getpid()}
job_loop(run_one)
"""
    outcomes = runner.run_jobs(code, MARKER, _jobs(tmp_path, 3), timeout_s=60, per_job_s=5)
    assert [o.ended for o in outcomes] == [None, "crashed", None]
    assert outcomes[0].payload["status"] == outcomes[2].payload["status"] == "ok"
    assert outcomes[0].payload["pid"] != outcomes[2].payload["pid"]  # a fresh child after the crash
    assert "SIGABRT" in outcomes[1].reason
    assert outcomes[1].native_errors() == ["native runtime gave up"]


def test_a_runtime_that_cannot_start_is_a_skip_never_a_pass(tmp_path: Path) -> None:
    code = f"MARKER = {MARKER!r}\n" + runner.CHILD_PRELUDE + r"""
env_failure("cannot import the runtime: ModuleNotFoundError: No module named 'absent_runtime'")
"""
    outcomes = runner.run_jobs(code, MARKER, _jobs(tmp_path, 2), timeout_s=60, per_job_s=5)
    assert [o.ended for o in outcomes] == ["unavailable", "unavailable"]
    run = RuntimeRun(Runtime.MEDIAPIPE, Outcome.UNAVAILABLE, f"cannot start: {outcomes[0].reason}")
    checks = runtimes.judge(run, Runtime.MEDIAPIPE)
    assert [c.verdict for c in checks] == [Verdict.SKIP, Verdict.SKIP]
    assert "absent_runtime" in checks[0].message
    assert consumers._cell(checks)["cell"] == "skip"


def test_task_library_refuses_a_missing_file_and_a_model_without_metadata(tmp_path: Path) -> None:
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(M.static_output_shapes(M.image_model("uint8")))
    jobs = [runner.Job(tmp_path / "absent.tflite", _jobs(tmp_path, 1)[0].images), runner.Job(bare, _jobs(tmp_path, 1)[0].images)]
    absent, no_md = task_library.run(jobs)
    assert absent.payload["status"] == "refused" and "Unable to open file" in absent.payload["error"], absent
    assert no_md.payload["status"] == "refused" and no_md.payload["error"] == NO_METADATA, no_md


def test_pixel_conventions_and_matching() -> None:
    box = np.array([0.1, 0.2, 0.55, 0.71], np.float32)  # ymin, xmin, ymax, xmax
    assert compare.to_pixels(box, 100, 50, "mediapipe") == (20.0, 5.0, 71.0, 27.0)  # truncated origin and size
    assert compare.to_pixels(box, 100, 50, "task-library") == (20.0, 5.0, 71.0, 28.0)  # size rounded: 22.5 -> 23
    assert compare.to_pixels(np.array([-0.1, -0.2, 0.5, 0.5]), 10, 10, "mediapipe") == (0.0, 0.0, 7.0, 6.0)
    assert compare.iou((1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 1.0)) == 1.0  # equal empty boxes
    a = compare.Det((0.0, 0.0, 10.0, 10.0), "cat", 0.9)
    shifted = compare.Det((1.0, 0.0, 11.0, 10.0), "cat", 0.8)
    agreement = compare.agree([[a], [a]], [[shifted], []])
    assert agreement.matched == 1 and agreement.count_mismatches == (1,)
    assert agreement.min_iou == pytest.approx(90 / 110)
    assert agreement.max_score_delta == pytest.approx(0.1)
    checks = {c.id: c for c in runtimes.judge(RuntimeRun(Runtime.MEDIAPIPE, Outcome.OK, "ran", agreement=agreement),
                                               Runtime.MEDIAPIPE)}
    assert checks["mediapipe.load"].verdict == Verdict.PASS
    assert checks["mediapipe.detections"].verdict == Verdict.FAIL
    assert "different number of detections" in checks["mediapipe.detections"].message


# MediaPipe's int8 run of the tests' random EfficientDet-D0 against LiteRT's (one photo, N=10,
# pixels): integer kernels round differently, scores move by up to 0.039 and the 10th detection
# is another box on each side of the top-N cut (desktop 0.336, MediaPipe 0.324)
_EFFDET_DESKTOP = [((160, 159, 247, 193), 0.5859), ((146, 128, 222, 159), 0.5156), ((123, 109, 189, 152), 0.4570),
                   ((171, 8, 243, 51), 0.4297), ((139, 108, 211, 138), 0.4141), ((0, 118, 73, 176), 0.4141),
                   ((161, 146, 223, 176), 0.4023), ((175, 119, 260, 162), 0.3633), ((176, 131, 251, 153), 0.3477),
                   ((150, 205, 234, 247), 0.3359)]
_EFFDET_MEDIAPIPE = [((162, 158, 248, 192), 0.5703), ((145, 128, 223, 158), 0.5156), ((122, 109, 190, 153), 0.4453),
                     ((171, 7, 243, 50), 0.4141), ((140, 108, 213, 138), 0.4141), ((162, 146, 223, 175), 0.4023),
                     ((0, 120, 73, 178), 0.375), ((176, 131, 250, 154), 0.3477), ((175, 119, 260, 162), 0.3477),
                     ((108, 111, 170, 139), 0.3242)]


def _dets(rows: list[tuple[tuple[int, int, int, int], float]]) -> list[compare.Det]:
    return [compare.Det(tuple(float(v) for v in box), "triangle", score) for box, score in rows]


def test_agreement_is_tie_aware_at_the_top_n_cut_and_still_counts_real_misses() -> None:
    from liteship.validation.runtimes.result import EXACT, INTEGER, agreement_problems

    desktop, got = [_dets(_EFFDET_DESKTOP)], [_dets(_EFFDET_MEDIAPIPE)]
    a = compare.agree(desktop, got, score_tie=INTEGER.score_tie, max_detections=10)
    assert (a.matched, a.ties_desktop, a.ties_runtime, a.compared) == (9, 1, 1, 9)
    assert a.count_mismatches == () and agreement_problems(a, INTEGER) == []
    assert agreement_problems(a, INTEGER.warning) == []  # the same detections, once the near-tie is left out
    check = runtimes.judge(RuntimeRun(Runtime.MEDIAPIPE, Outcome.OK, "ran", agreement=a, tolerance=INTEGER),
                           Runtime.MEDIAPIPE)[1]
    assert check.verdict == Verdict.PASS and "2 near-tie(s)" in check.message, check
    # not a cut: without N the 10th pair is a miss and an extra, as it is without ties
    plain = compare.agree(desktop, got, score_tie=INTEGER.score_tie)
    assert (plain.matched, plain.ties_desktop, plain.compared) == (9, 0, 10)
    assert agreement_problems(plain, INTEGER.warning) == ["9 of 10 detections matched (< 100%)"]
    # a detection scoring far above the cut is a miss whatever the tie
    lost = compare.agree(desktop, [got[0][1:]], score_tie=INTEGER.score_tie, max_detections=10)
    assert lost.ties_desktop == 0 and lost.count_mismatches == (0,)
    assert agreement_problems(lost, EXACT)


def test_integer_agreement_fails_where_int8_parity_would() -> None:
    from liteship.types import Variant
    from liteship.validation.gates import TOLERANCES
    from liteship.validation.runtimes.result import INTEGER

    int8 = TOLERANCES[Variant.INT8]
    assert INTEGER.score_tie == int8.score_tie and INTEGER.min_mean_iou == int8.min_mean_iou
    assert INTEGER.min_matched == min(int8.min_recall, int8.min_precision)
    assert INTEGER.min_same_class == int8.min_class_agreement


def test_consumer_matrix_is_a_pure_function_of_the_report() -> None:
    fail = Check("input.normalization", Verdict.FAIL, "x", "y", "refused", 'MediaPipe says "Per-channel image '
                 'normalization is not available." -- fold it')
    ok = Check("mediapipe.load", Verdict.PASS, "x", "ok", "loaded in 3 ms")
    variants = [
        {"name": "fp32", "checks": [{"id": "litert_runs", "verdict": "pass"}],
         "lint": {"mediapipe": {"verdict": "fail", **consumers._cell([ok, fail])},
                  "task-library": {"verdict": "pass", **consumers._cell([ok])}}},
        {"name": "int8", "checks": [{"id": "litert_runs", "verdict": "fail", "found": "RuntimeError: x"}], "lint": {}},
    ]
    m = consumers.matrix(variants)
    assert m["consumers"] == ["litert-interpreter", "task-library", "mediapipe"]
    assert m["variants"]["fp32"]["mediapipe"] == {
        "verdict": "fail", "reason": 'input.normalization: MediaPipe says "Per-channel image normalization is not '
                                     'available." -- fold it'}
    assert m["variants"]["fp32"]["task-library"]["verdict"] == "pass"
    assert m["variants"]["int8"]["litert-interpreter"] == {"verdict": "fail", "reason": "RuntimeError: x"}
    from liteship.report.html.consumers import consumers_section

    html = consumers_section({"validation": {"consumers": m}})
    assert html.startswith('<section id="consumers">') and "Per-channel image normalization" in html
    assert "<script" not in html and html.count("<tr>") == 1 + len(m["consumers"])


def test_forecast_names_the_consumers_a_model_will_fail() -> None:
    resnet = Normalization(mean=(123.68, 116.779, 103.939), std=(1.0,))
    base = dict(int8_input="uint8", output_order="port", max_detections=10, float_variants=True)
    assert consumers.forecast(Normalization((127.5,), (127.5,)), fold_normalization=True, **base) == []
    folded = consumers.forecast(resnet, fold_normalization=True, **base)
    assert len(folded) == 1 and "folded" in folded[0] and " fail" not in folded[0]
    with_int8 = consumers.forecast(resnet, fold_normalization=False, **base, int8_variant=True)
    assert "int8 variant gets it in its graph" in with_int8[0] and " fail" not in with_int8[0]  # whatever the flag
    assert consumers.forecast(Normalization((127.5,), (127.5,)), fold_normalization=True, **base, int8_variant=True) == []
    unfolded = consumers.forecast(resnet, fold_normalization=False, **base)
    assert unfolded[0].startswith("mediapipe:") and "Per-channel image normalization is not available." in unfolded[0]
    worst = consumers.forecast(None, fold_normalization=True, int8_input="int8", output_order="converter",
                               max_detections=4, float_variants=True)
    assert any(line.startswith("bundled-app, task-library") and "int8 input" in line for line in worst)
    assert any("litert-sample, legacy-detect, litert-compiled" in line for line in worst)
    assert any("--max-detections 4" in line and "litert-compiled" in line for line in worst)


@pytest.mark.tf
def test_liteship_variants_load_and_detect_in_every_runtime(run_a: Path) -> None:
    """The four variants `liteship metadata` wrote (static shapes, metadata): every runtime
    loads them and detects what the desktop run detects (same count, IoU >= 0.9), on real
    synthetic shapes photos; every gating contract passes."""
    from liteship.tflite_inspect import inspect_model
    from liteship.validation.runtimes import result as rr
    from liteship.validation.runtimes.compare import is_dynamic_range

    models = {name: run_a / "models" / f"{name}.tflite" for name in ("fp32", "fp16", "dynamic", "int8")}
    images = runtimes.default_images(2)
    runs = runtimes.check(models, list(Runtime), images)
    for name, by_runtime in runs.items():
        data = models[name].read_bytes()
        dynamic = is_dynamic_range(data)
        assert dynamic == (name == "dynamic")
        assert runtimes.tolerance_for(data, inspect_model(data)) is {"dynamic": rr.HYBRID, "int8": rr.INTEGER}.get(
            name, rr.EXACT)
        for runtime, run in by_runtime.items():
            assert run.outcome is Outcome.OK, (name, run)
            a = run.agreement
            assert a is not None and a.images == 2 and a.desktop > 0, (name, runtime, run)
            # hybrid and integer kernels differ between TFLite builds; CompiledModel is the desktop's own
            tolerance = rr.EXACT if runtime is Runtime.COMPILED_MODEL else runtimes.tolerance_for(data, inspect_model(data))
            assert run.tolerance == tolerance
            assert rr.agreement_problems(a, tolerance) == [], (name, runtime, a)
            if tolerance is not rr.HYBRID:  # on this model even int8 is computed identically everywhere
                assert a.runtime == a.desktop == a.matched == a.same_class, (name, runtime, a)
        result = lint.lint_file(models[name], runtime_runs=by_runtime, max_results=7)  # run (a) exports N=7
        for contract in ("bundled-app", "task-library", "mediapipe", "litert-compiled"):
            assert result.contracts[contract].failed() == [], (name, contract, result.contracts[contract].failed())


@pytest.mark.parametrize(("matched", "verdict"), [(10, "pass"), (8, "warning"), (3, "fail")])
def test_dynamic_range_differences_warn_and_misreads_fail(matched: int, verdict: str) -> None:
    from liteship.validation.runtimes.result import HYBRID, Agreement

    a = Agreement(images=1, desktop=10, runtime=10, matched=matched, same_class=matched, min_iou=0.9, mean_iou=0.97,
                  max_score_delta=0.01)
    check = runtimes.judge(RuntimeRun(Runtime.TASK_LIBRARY, Outcome.OK, "ran", agreement=a, tolerance=HYBRID),
                           Runtime.TASK_LIBRARY)[1]
    assert check.verdict == (Verdict.FAIL if verdict == "fail" else Verdict.PASS), check
    assert check.message.startswith("warning:") == (verdict == "warning"), check


@pytest.mark.tf
@pytest.mark.slow
def test_resnet_fpn_float_variants_are_folded_and_load_everywhere(tmp_path: Path) -> None:
    """A ResNet50-FPN (per-channel mean) through `liteship run`: every variant has the
    normalization in its graph (metadata mean 0, std 1; the float variants folded after
    conversion, int8 before it, its uint8 input the raw pixel), fp32 still reproduces the
    desktop reference's heads (parity), and all four variants load and detect in MediaPipe,
    CompiledModel and the Task Library like the desktop run."""
    from liteship.cli import main
    from liteship.pipeline import DEMO_DIR
    from tests.conftest import read_report
    from tests.fixtures.resnet_fpn import write_resnet_fpn_checkpoint

    config, ckpt, label_map = write_resnet_fpn_checkpoint(tmp_path / "resnet")
    out = tmp_path / "out"
    code = main(["run", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt), "--label-map", str(label_map),
                 "--images", str(DEMO_DIR / "data" / "calibration"), "--calibration-images", "8",
                 "--ground-truth", str(DEMO_DIR / "data" / "val"), "--parity-images", "4", "--out", str(out), "--quiet"])
    report = read_report(out)
    # an untrained ResNet's boxes leave the image, which the reference clips and the op does not:
    # its detection-level parity may fail (exit 31); nothing else may
    assert code in (0, 31) and {e["kind"] for e in report["errors"]} <= {"parity"}, report["errors"]
    assert any("folded into the graph" in line for line in report["inputs"]["consumer_forecast"])
    for v in report["variants"]:
        assert v["input_normalization"]["folded_into_graph"] is True
        assert v["input_normalization"]["mean"] == pytest.approx([123.68, 116.779, 103.939])  # the model's own
        assert v["metadata"]["norm_mean"] == [0.0] and v["metadata"]["norm_std"] == [1.0]
        if v["name"] == "int8":
            assert v["input"]["quantization"]["scales"] == [1.0] and v["input"]["quantization"]["zero_points"] == [0]
        by_id = {c["id"]: c for c in v["checks"]}
        for contract in ("bundled-app", "task-library", "mediapipe", "litert-compiled"):
            assert v["lint"][contract]["verdict"] == "pass", (v["name"], contract, v["lint"][contract])
        for contract, runtime in (("task-library", "task_library"), ("mediapipe", "mediapipe"),
                                  ("litert-compiled", "compiled_model")):
            assert by_id[f"lint.{contract}.{runtime}.detections"]["verdict"] == "pass", (v["name"], contract)
        for name, run in v["runtimes"].items():
            a = run["agreement"]
            assert run["outcome"] == "ok" and a["images"] == 4 and a["desktop"] > 0, (v["name"], name, run)
            if run["tolerance"] == "exact":
                assert a["runtime"] == a["desktop"] == a["matched"] and a["min_iou"] >= 0.9, (v["name"], name, a)
    fp32 = {c["id"]: c for c in report["variants"][0]["checks"]}
    assert fp32["parity.heads.box_encodings.max_rel"]["verdict"] == "pass"  # folding keeps fp32 exact
    assert fp32["parity.heads.box_encodings.max_rel"]["found"] < 1e-3  # of the reference range
    matrix = report["validation"]["consumers"]["variants"]
    assert all(matrix[v]["mediapipe"]["verdict"] == "pass" for v in ("fp32", "fp16", "dynamic", "int8"))
