"""The optional gpu variant: raw heads + MediaPipe DETECTOR_METADATA, no custom op.

Fast tier: the DETECTOR_METADATA flatbuffer, the anchor conversion, liteship's decode + NMS
of raw heads, MediaPipe's pixel boxes, the judging, the CLI and the refusals.
TF tier (one small FPN model, one `liteship run --variants fp32,gpu`): the real MediaPipe
ObjectDetector and CompiledModel run the variant and match the reference, the GPU-delegate
analysis accepts every op, and a model with wrong anchors fails its parity check.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.converter import mediapipe_metadata as mpmd
from liteship.types import DEFAULT_VARIANTS, GpuPrecision, InputKind, Variant, Verdict
from liteship.validation import gpu_parity, raw_heads
from liteship.validation.gates import TOLERANCES
from tests.conftest import read_report, run_cli


def _options(anchors: np.ndarray | None = None, **kw: Any) -> mpmd.DetectorOptions:
    if anchors is None:
        anchors = np.array([[0.25, 0.5, 0.2, 0.4], [0.75, 0.5, 0.3, 0.1], [0.5, 0.5, 1.0, 1.0]], np.float32)
    return mpmd.DetectorOptions(anchors=anchors, num_classes=3, x_scale=10.0, y_scale=10.0, w_scale=5.0, h_scale=5.0, **kw)


# --- fast tier ------------------------------------------------------------------------------


def test_detector_metadata_round_trips_every_field() -> None:
    opts = _options(sigmoid_score=True, apply_exponential_on_box_size=False)
    buf = mpmd.encode(opts)
    assert buf[4:8] == b"V001"
    back = mpmd.decode(buf)
    assert back.summary() == opts.summary()
    assert np.array_equal(back.anchors, opts.anchors)
    assert back.min_parser_version == mpmd.SCHEMA_VERSION
    # MediaPipe CHECK-aborts unless these two are written (the calculator's default is replaced)
    assert (back.num_values_per_keypoint, back.num_coords) == (2, 4)


def test_detector_metadata_refuses_another_flatbuffer() -> None:
    buf = bytearray(mpmd.encode(_options()))
    buf[4:8] = b"M001"
    with pytest.raises(ValueError, match="V001"):
        mpmd.decode(bytes(buf))


def test_anchors_from_odapi_reorders_center_size_to_mediapipe() -> None:
    odapi = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)  # ycenter, xcenter, height, width
    assert mpmd.anchors_from_odapi(odapi).tolist() == [[pytest.approx(0.2), pytest.approx(0.1),
                                                        pytest.approx(0.4), pytest.approx(0.3)]]


def test_decode_of_zero_encodings_is_the_anchor_and_scales_apply() -> None:
    opts = _options()
    boxes = raw_heads.decode_boxes(np.zeros((3, 4)), opts)
    # anchor 0: x_center 0.25, y_center 0.5, w 0.2, h 0.4 -> ymin 0.3, xmin 0.15, ymax 0.7, xmax 0.35
    assert boxes[0] == pytest.approx([0.3, 0.15, 0.7, 0.35])
    enc = np.array([[1.0, 0.0, 5.0 * np.log(2.0), 0.0]] * 3)  # ty = 1 -> + 0.1 h; th -> height x2
    moved = raw_heads.decode_boxes(enc, opts)[0]
    assert moved == pytest.approx([0.54 - 0.4, 0.15, 0.54 + 0.4, 0.35], abs=1e-6)


def test_fast_nms_suppresses_only_above_the_iou_threshold() -> None:
    opts = _options(anchors=np.array([[0.5, 0.5, 0.5, 0.5], [0.6, 0.5, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]], np.float32))
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 0.05]], np.float32)
    enc = np.zeros((3, 4))
    # boxes 0 and 1 overlap with IoU 0.667
    keep_both = raw_heads.detect(enc, scores, opts, score_threshold=0.1, iou_threshold=0.7, max_detections=10)
    assert keep_both["classes"].tolist() == [0, 1] and keep_both["scores"].tolist() == pytest.approx([0.9, 0.8])
    one = raw_heads.detect(enc, scores, opts, score_threshold=0.1, iou_threshold=0.6, max_detections=10)
    assert one["classes"].tolist() == [0]  # class-agnostic: the other class's box is suppressed too
    per_class = raw_heads.detect(enc, scores, opts, score_threshold=0.1, iou_threshold=0.6, max_detections=10,
                                 regular_nms=True)
    assert per_class["classes"].tolist() == [0, 1]  # regular NMS: each class suppresses within itself only
    assert per_class["boxes"][1] == pytest.approx(raw_heads.decode_boxes(enc, opts)[1])


def test_fp16_weights_get_the_looser_tolerance() -> None:
    fp32 = gpu_parity.tolerance_for(GpuPrecision.FP32, TOLERANCES)
    fp16 = gpu_parity.tolerance_for(GpuPrecision.FP16, TOLERANCES)
    assert fp32 == TOLERANCES[Variant.GPU]
    assert fp16.box_encodings_max_rel >= TOLERANCES[Variant.FP16].box_encodings_max_rel > fp32.box_encodings_max_rel
    assert fp16.box_encodings_min_psnr_db <= TOLERANCES[Variant.FP16].box_encodings_min_psnr_db < fp32.box_encodings_min_psnr_db
    assert fp16.min_recall <= fp32.min_recall
    assert fp16.box_encodings_max_abs is None  # no absolute cap on either side: none on the merge


def _parity(recall: float, config_iou: float = 0.6, compiled: str = "ok") -> Any:
    res = dataclasses.replace(_result(), recall=recall)
    return gpu_parity.GpuParity(
        images=2, config_iou=config_iou, mediapipe_iou=0.3, mediapipe_reference="ReferenceNms", mediapipe=res,
        mediapipe_run={"status": "ok", "message": "", "error": None}, compiled=res if compiled == "ok" else None,
        compiled_run={"status": compiled, "message": "cannot import ai_edge_litert", "error": None},
    )


def _result() -> Any:
    from liteship.validation.parity import HeadStats, ParityResult

    exact = HeadStats(elements=8, max_abs=0.0, mean_abs=0.0, rmse=0.0, reference_min=-1.0, reference_max=1.0,
                      reference_rms=0.5, max_rel=0.0, psnr_db=None, nonfinite_reference=0, nonfinite_variant=0)
    return ParityResult("gpu", 2, 0.3, 1e-3, {"box_encodings": exact, "class_predictions": exact},
                        reference_detections=4, variant_detections=4, matched=4, misses=0, extras=0,
                        ties_reference=0, ties_variant=0, class_agreement=1.0, recall=1.0, precision=1.0,
                        iou={"mean": 1.0}, score_delta={"mean": 0.0},
                        nonfinite_detections={"reference": 0, "variant": 0})


def test_judge_fails_low_recall_and_warns_about_mediapipes_fixed_nms() -> None:
    tol = TOLERANCES[Variant.GPU]
    checks = {c.id: c for c in gpu_parity.judge(_parity(0.5), tol)}
    assert checks["parity.mediapipe.detections.recall"].verdict == Verdict.FAIL
    assert checks["parity.compiled.detections.recall"].verdict == Verdict.FAIL
    assert checks["parity.mediapipe.nms_iou"].message.startswith("warning:") and "0.6" in checks["parity.mediapipe.nms_iou"].message
    ok = {c.id: c for c in gpu_parity.judge(_parity(1.0, config_iou=0.3), tol)}
    assert not [c for c in ok.values() if c.verdict == Verdict.FAIL]
    assert ok["parity.mediapipe.nms_iou"].message == ""
    missing = {c.id: c for c in gpu_parity.judge(_parity(1.0, compiled="unavailable"), tol)}
    assert missing["parity.compiled.runs"].verdict == Verdict.SKIP  # could not run here: never a pass
    refused = {c.id: c for c in gpu_parity.judge(_parity(1.0, compiled="refused"), tol)}
    assert refused["parity.compiled.runs"].verdict == Verdict.FAIL


def test_gpu_is_optional_and_gated_by_the_mediapipe_contract() -> None:
    from liteship.cli import build_parser
    from liteship.converter.gpu_variant import gating_contracts

    assert Variant.GPU not in DEFAULT_VARIANTS
    args = build_parser().parse_args(["run", "--variants", "fp32,gpu", "--gpu-precision", "fp32"])
    assert args.variants == (Variant.FP32, Variant.GPU) and args.gpu_precision == "fp32"
    assert build_parser().parse_args(["run"]).variants == DEFAULT_VARIANTS
    assert gating_contracts("gpu", ("bundled-app", "task-library")) == ("mediapipe",)
    assert gating_contracts("int8", ("bundled-app",)) == ("bundled-app",)


def test_gpu_variant_needs_input_a() -> None:
    from liteship.converter.gpu_variant import require_input_a
    from liteship.errors import UsageProblem

    require_input_a(InputKind.CHECKPOINT, (Variant.GPU,))
    require_input_a(InputKind.SAVED_MODEL, DEFAULT_VARIANTS)
    for kind in (InputKind.SAVED_MODEL, InputKind.FROZEN_GRAPH):
        with pytest.raises(UsageProblem, match="--pipeline-config"):
            require_input_a(kind, (Variant.FP32, Variant.GPU))


# --- TF tier: a small FPN model through `liteship run --variants fp32,gpu` ------------------------


def _fpn_checkpoint(root: Path) -> tuple[Path, Path, Path]:
    """A small SSD MobileNetV2-FPNLite (zoo config, 128x128) with random weights whose heads
    vary per image and score a few anchors per image above 0.3."""
    import tensorflow as tf

    from liteship import odapi
    from tests.fixtures import odapi_models as om

    root.mkdir(parents=True, exist_ok=True)
    config = root / "pipeline.config"
    config.write_text(om.zoo_config_text("fpnlite"))
    label_map = om._write_label_map(root, 3)
    configs = odapi.config_util().get_configs_from_pipeline_file(str(config))
    tf.keras.utils.set_random_seed(0)
    model = odapi.model_builder().build(configs["model"], is_training=False)
    batch = om._synthetic_batch(model, 0, 4)
    shapes = tf.constant([list(batch.shape[1:])] * 4, tf.int32)
    model.predict(batch, shapes)
    om._randomize(model, 0)
    om._scale_heads(model, configs["model"], batch, shapes)
    tf.train.Checkpoint(model=model).save(str(root / "checkpoint" / "ckpt"))
    return config, root / "checkpoint", label_map


@pytest.fixture(scope="session")
def fpn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from liteship.demo import synth

    root = tmp_path_factory.mktemp("gpu_fpn")
    config, ckpt, label_map = _fpn_checkpoint(root / "model")
    images = root / "images"
    images.mkdir()
    for sample in itertools.islice(synth.generate(7, 6, "cal"), 6):
        sample.image.save(images / f"{sample.name}.png")
    out = root / "out"
    code = run_cli(["run", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt), "--label-map", str(label_map),
                    "--images", str(images), "--variants", "fp32,gpu", "--gpu-precision", "fp32", "--parity-images", "6",
                    "--out", str(out), "--quiet"])
    assert code == 0, f"liteship run --variants fp32,gpu exited {code}: {(out / 'report.json').read_text()[:2000]}"
    return out


def _gpu_entry(out: Path) -> dict[str, Any]:
    return next(v for v in read_report(out)["variants"] if v["name"] == "gpu")


@pytest.mark.tf
@pytest.mark.slow
def test_fpn_gpu_variant_matches_the_reference_in_mediapipe_and_compiled_model(fpn_run: Path) -> None:
    gpu = _gpu_entry(fpn_run)
    runs = gpu["parity"]["gpu"]
    mp, cm = runs["mediapipe"], runs["litert_compiled"]
    assert runs["mediapipe_run"]["status"] == runs["litert_compiled_run"]["status"] == "ok"
    assert mp["reference_detections"] >= 10 and cm["reference_detections"] >= 10  # something to compare
    assert mp["recall"] >= 0.95 and mp["precision"] >= 0.95, mp
    assert cm["recall"] >= 0.95 and cm["precision"] >= 0.95, cm
    assert cm["heads"]["box_encodings"]["max_abs"] <= 1e-3 and cm["heads"]["class_predictions"]["max_abs"] <= 1e-3
    checks = {c["id"]: c for c in gpu["checks"]}
    assert checks["gpu_delegate.all_ops"]["verdict"] == "pass" and checks["gpu_delegate.all_ops"]["found"] == []
    # the mediapipe contract's 2-output rules and the real runs against liteship's desktop decode
    for cid in ("detector_metadata", "location.box_properties", "mediapipe.load", "mediapipe.detections"):
        assert checks[f"lint.mediapipe.{cid}"]["verdict"] == "pass", checks[f"lint.mediapipe.{cid}"]
    assert not [c for c in gpu["checks"] if c["verdict"] == "fail"]
    assert gpu["ops"] and not [op for op in gpu["ops"] if op.startswith(("CUSTOM:", "FLEX:"))]


@pytest.mark.tf
@pytest.mark.slow
def test_fpn_gpu_entry_has_every_key_of_the_other_variants_and_says_who_can_load_it(fpn_run: Path) -> None:
    report = read_report(fpn_run)
    by_name = {v["name"]: v for v in report["variants"]}
    assert set(by_name["fp32"]) <= set(by_name["gpu"])
    lint = by_name["gpu"]["lint"]
    assert lint["mediapipe"]["verdict"] == "pass"
    for name in ("task-library", "litert-sample", "legacy-detect", "litert-compiled"):
        assert lint[name]["verdict"] == "fail" and "outputs.count" in lint[name]["failed"], (name, lint[name])
    assert "no" in by_name["gpu"]["gpu"]["consumers"]["task-library"]
    assert report["inputs"]["convert_options"]["gpu_precision"] == "fp32"
    # the consumer matrix (report.json and report.html): MediaPipe yes, the postprocess readers no, with why
    matrix = report["validation"]["consumers"]["variants"]["gpu"]
    assert matrix["mediapipe"]["verdict"] == "pass", matrix["mediapipe"]
    for name in ("task-library", "litert-sample", "legacy-detect", "litert-compiled", "bundled-app"):
        assert matrix[name]["verdict"] == "fail" and matrix[name]["reason"].startswith("outputs.form: not for this app"), matrix[name]
        assert lint[name]["gating"] is False  # reported, not gated: the variant is not for them
    assert report["validation"]["consumers"]["variants"]["fp32"]["task-library"]["verdict"] == "pass"
    page = (fpn_run / "report.html").read_text()
    section = page[page.index('<section id="consumers">'):]
    section = section[: section.index("</section>")]
    assert ">gpu</th>" in section and "outputs.form: not for this app" in section
    ship = page[page.index('<section id="ship"'):]
    ship = ship[: ship.index("</section>")]
    assert "<strong>gpu</strong>" in ship and '<span class="pass" title="mediapipe.load' in ship
    assert by_name["gpu"]["latency"]["threads"]  # desktop latency measured like the others'
    # the phone: the engines it is for, which `liteship deploy` validates
    assert by_name["gpu"]["deploy"]["engines"] == [{"engine": "mediapipe", "accelerators": ["gpu"]},
                                                 {"engine": "compiled", "accelerators": ["cpu", "gpu"]}]
    assert by_name["gpu"]["deploy"]["liteship_deploy"] is True


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("engines", [[], ["--engines", "interpreter"]])
def test_fpn_gpu_deploy_with_the_interpreter_is_refused_up_front_naming_its_engines(
        fpn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], engines: list[str]) -> None:
    """Before any device is contacted (port 9: nothing listens); the default engine is the interpreter.
    (Its deploy with the engines it is for: tests/test_device_gpu_variant.py.)"""
    code = run_cli(["deploy", str(fpn_run / "models" / "gpu.tflite"), "--device", "tcp:127.0.0.1:9",
                    "--out", str(tmp_path / "deploy"), *engines])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is the gpu variant" in err and "mediapipe:gpu,compiled:cpu+gpu" in err and "deploy fp32" in err


@pytest.mark.tf
@pytest.mark.slow
def test_fpn_gpu_metadata_is_mediapipes_schema(fpn_run: Path) -> None:
    """Our hand-built flatbuffer read with MediaPipe's own generated schema module."""
    from mediapipe.tasks.metadata import (
        object_detector_metadata_schema_py_generated as mp_schema,
    )

    model = (fpn_run / "models" / "gpu.tflite").read_bytes()
    summary, ours = mpmd.read_metadata(model)
    assert ours is not None and summary.output_names == ("location", "score")
    theirs = mp_schema.ObjectDetectorOptions.GetRootAs(mpmd.encode(ours), 0)
    dec = theirs.TensorsDecodingOptions()
    assert (dec.NumBoxes(), dec.NumClasses(), dec.XScale(), dec.HScale()) == (ours.num_boxes, 3, 10.0, 5.0)
    anchors = theirs.SsdAnchorsOptions().FixedAnchorsSchema()
    k = ours.num_boxes // 2
    assert [anchors.Anchors(k).XCenter(), anchors.Anchors(k).Height()] == pytest.approx([ours.anchors[k, 0], ours.anchors[k, 3]])
    want = np.load(fpn_run / "export" / "reference" / "anchors.npy")[k]  # ycenter, xcenter, h, w
    assert anchors.Anchors(k).YCenter() == pytest.approx(float(want[0]))


@pytest.mark.tf
@pytest.mark.slow
def test_reference_nms_at_the_config_iou_reproduces_the_detect_signature(fpn_run: Path) -> None:
    from liteship.converter import calibration
    from liteship.validation.reference import Reference

    reference = fpn_run / "export" / "reference"
    ref = Reference(reference)
    cfg = read_report(fpn_run)["export"]
    nms = gpu_parity.ReferenceNms(reference, cfg["iou_threshold"], cfg["max_detections"])
    for path in calibration.find_images(fpn_run.parent / "images")[0][:2]:
        _, heads, dets = ref.run(calibration.load_rgb(path))
        mine = nms(heads)
        assert mine["classes"].tolist() == dets["classes"].tolist()
        assert np.allclose(mine["boxes"], dets["boxes"], atol=1e-5) and np.allclose(mine["scores"], dets["scores"], atol=1e-6)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("wrong", ["anchors_in_odapi_order", "box_coder_scales"])
def test_wrong_anchors_or_scales_fail_parity_in_both_consumers(fpn_run: Path, tmp_path: Path, wrong: str) -> None:
    """DETECTOR_METADATA with the OD API's (ycenter, xcenter, h, w) left unconverted, or with
    the box coder's scales of another config (y/x 10 -> 5, h/w 5 -> 10): MediaPipe and
    liteship's decode both read it, so both parity checks fail."""
    from liteship.converter import calibration

    good = (fpn_run / "models" / "gpu.tflite").read_bytes()
    _, opts = mpmd.read_metadata(good)
    assert opts is not None and (opts.y_scale, opts.h_scale) == (10.0, 5.0)
    if wrong == "anchors_in_odapi_order":
        bad = dataclasses.replace(opts, anchors=opts.anchors[:, [1, 0, 3, 2]].copy())
    else:
        bad = dataclasses.replace(opts, x_scale=5.0, y_scale=5.0, w_scale=10.0, h_scale=10.0)
    model = tmp_path / "wrong.tflite"
    model.write_bytes(mpmd.replace_detector_options(good, bad))
    assert mpmd.read_metadata(model.read_bytes())[1].summary() == bad.summary()  # type: ignore[union-attr]
    export = read_report(fpn_run)["export"]
    labels = (fpn_run / "labelmap.txt").read_text().splitlines()
    images = [calibration.load_rgb(p) for p in calibration.find_images(fpn_run.parent / "images")[0]]
    result = gpu_parity.measure(model, fpn_run / "export" / "reference", images, labels, input_shape=tuple(export["input_shape"]),
                                iou_threshold=export["iou_threshold"], score_threshold=export["score_threshold"],
                                max_detections=export["max_detections"])
    checks = {c.id: c for c in gpu_parity.judge(result, TOLERANCES[Variant.GPU])}
    failed = {cid for cid, c in checks.items() if c.verdict == Verdict.FAIL}
    for runtime in ("mediapipe", "compiled"):  # wrong boxes: recall, or (boxes still overlapping) mean IoU
        assert failed & {f"parity.{runtime}.detections.recall", f"parity.{runtime}.detections.mean_iou"}, \
            (runtime, sorted(failed), json.dumps(result.to_dict())[:1000])
    # the heads themselves are right: only the decoding the metadata declares is wrong
    assert checks["parity.compiled.heads.box_encodings.max_rel"].verdict == Verdict.PASS


@pytest.mark.tf
@pytest.mark.slow
def test_per_channel_normalization_is_folded_so_mediapipe_accepts_it(fpn_run: Path) -> None:
    """A ResNet-style per-channel mean: folded into the gpu graph (input 0-255, metadata 0/1),
    which then computes the model's heads of the normalized image."""
    from types import SimpleNamespace

    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from liteship.converter import gpu_variant
    from liteship.types import Normalization
    from liteship.validation import lint

    norm = Normalization(mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0))
    export = read_report(fpn_run)["export"]
    reference = fpn_run / "export" / "reference"
    exported = SimpleNamespace(reference_dir=reference, input_shape=tuple(export["input_shape"]), normalization=norm)
    folded = gpu_variant.build(exported, (fpn_run / "labelmap.txt").read_text(), GpuPrecision.FP32)
    assert folded.folded and folded.normalization == Normalization((0.0,), (1.0,))
    pixels = np.random.default_rng(0).integers(0, 256, tuple(export["input_shape"])).astype(np.float32)
    it = Interpreter(model_content=folded.model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], pixels)
    it.invoke()
    got = dict(zip(gpu_variant.output_names(gpu_variant.inspect_model(folded.model)),
                   (it.get_tensor(o["index"]) for o in it.get_output_details())))
    heads = tf.saved_model.load(str(reference)).signatures["heads"](
        preprocessed=tf.constant(pixels - np.asarray(norm.mean, np.float32)))
    assert np.allclose(got["location"], heads["box_encodings"].numpy(), atol=1e-3)
    assert np.allclose(got["score"], heads["class_predictions"].numpy()[..., -3:], atol=1e-4)
    checks = {c.id: c for c in lint.lint_bytes(folded.model, ("mediapipe",)).contracts["mediapipe"].checks}
    assert checks["input.normalization"].verdict == Verdict.PASS, checks["input.normalization"]


@pytest.mark.tf
@pytest.mark.slow
def test_demo_gpu_variant_matches_the_reference_in_mediapipe_and_compiled_model(tmp_path: Path) -> None:
    """The embedded demo (trained, so the detections mean something), gpu variant only."""
    out = tmp_path / "out"
    code = run_cli(["run", "--variants", "gpu", "--gpu-precision", "fp32", "--parity-images", "20", "--out", str(out),
                    "--quiet"])
    assert code == 0, (out / "report.json").read_text()[:2000]
    gpu = _gpu_entry(out)
    runs = gpu["parity"]["gpu"]
    mp, cm = runs["mediapipe"], runs["litert_compiled"]
    assert runs["images"] == 20 and mp["reference_detections"] >= 20
    assert mp["recall"] >= 0.95 and mp["precision"] >= 0.95, mp
    assert cm["recall"] >= 0.95 and cm["precision"] >= 0.95, cm
    checks = {c["id"]: c for c in gpu["checks"]}
    assert checks["gpu_delegate.all_ops"]["verdict"] == "pass" and checks["gpu_delegate.all_ops"]["found"] == []
    assert checks["parity.compiled.runs"]["verdict"] == checks["parity.mediapipe.loads"]["verdict"] == "pass"
    assert gpu["map50"] >= 0.80  # the app run: liteship's decode of the heads with the config's NMS


@pytest.mark.tf
@pytest.mark.slow
def test_an_unchanged_rerun_with_the_gpu_variant_is_replayed_byte_identical(fpn_run: Path, tmp_path: Path) -> None:
    """The gpu variant is made from the reference, not by a cached conversion: the run entry
    keeps its bytes, so the replay restores it too."""
    import hashlib
    import shutil

    root = fpn_run.parent
    out = tmp_path / "out"
    shutil.copytree(fpn_run, out)
    code = run_cli(["run", "--pipeline-config", str(root / "model" / "pipeline.config"),
                    "--checkpoint-dir", str(root / "model" / "checkpoint"),
                    "--label-map", str(root / "model" / "label_map.pbtxt"), "--images", str(root / "images"),
                    "--variants", "fp32,gpu", "--gpu-precision", "fp32", "--parity-images", "6",
                    "--out", str(out), "--quiet"])
    report = read_report(out)
    assert code == 0, report.get("errors")
    assert report["cache"].get("replayed") is True and report["cache"]["steps"] == {"run": "hit"}, report["cache"]
    for name in ("fp32", "gpu"):
        assert (hashlib.sha256((out / "models" / f"{name}.tflite").read_bytes()).hexdigest()
                == hashlib.sha256((fpn_run / "models" / f"{name}.tflite").read_bytes()).hexdigest())
