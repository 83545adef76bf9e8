"""Input (d): a TF1 training folder goes to four TFLite variants through the OD API's own TF1
exporter, run in-process on TF 2.21, with parity against a reference built from the TF1
graph; its pre-flight refuses what cannot work, saying why. One TF1 checkpoint per session
(conftest ``tf1_training_folder``: ssd_mobilenet_v1_coco layout, 96x96, depth 0.25)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.reports import assert_only_reports
from tests.conftest import parity_verdicts_pass, read_report, run_cli

pytestmark = pytest.mark.tf

VARIANTS = ["fp32", "fp16", "dynamic", "int8"]


@pytest.fixture(scope="module")
def run_d(tmp_path_factory: pytest.TempPathFactory, tf1_training_folder: Path, calib_images: Path) -> Path:
    out = tmp_path_factory.mktemp("run_d") / "out"
    code = run_cli(["run", str(tf1_training_folder), "--images", str(calib_images), "--calibration-images", "8",
                    "--out", str(out), "--quiet"])
    assert code == 0, f"liteship run PATH (TF1 training folder) exited {code}"
    return out


@pytest.mark.slow
def test_tf1_training_folder_gives_four_variants_with_parity_against_the_tf1_graph(run_d: Path) -> None:
    report = read_report(run_d)
    assert report["status"] == "ok"
    assert report["export"]["kind"] == "tf1_checkpoint"
    assert report["export"]["feature_extractor"] == "SSDMobileNetV1FeatureExtractor"
    assert set(report["export"]["normalization"]["mean"]) == {127.5} == set(report["export"]["normalization"]["std"])
    assert report["export"]["checkpoint"].endswith("model.ckpt-5576")
    assert (run_d / "export" / "tflite_graph.pb").is_file() and not (run_d / "export" / "tflite_graph.pbtxt").exists()
    assert [v["name"] for v in report["variants"]] == VARIANTS
    for v in report["variants"]:
        assert len(parity_verdicts_pass(v)) == 9
        assert v["parity"]["reference_detections"] >= 10 * v["parity"]["images"] * 0.5  # not vacuous
    fp32 = report["variants"][0]["parity"]
    assert fp32["heads"]["box_encodings"]["max_abs"] < 1e-4 and fp32["recall"] == 1.0
    int8 = report["variants"][3]
    assert int8["input"]["dtype"] == "uint8"


@pytest.mark.slow
def test_the_graph_reference_decodes_like_the_postprocess_op(run_d: Path) -> None:
    """The reference's detect() = the heads decoded with the op's scales and anchors: the top
    detection of the reference is the best (anchor, class) of its own heads, decoded by hand."""
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(str(run_d / "export" / "reference"))
    image = np.random.default_rng(3).integers(0, 256, (1, 120, 90, 3)).astype(np.float32)
    pre = loaded.signatures["preprocess"](image=tf.constant(image))["preprocessed"]
    assert pre.shape == (1, 96, 96, 3) and -1.0 <= float(tf.reduce_min(pre)) and float(tf.reduce_max(pre)) <= 1.0
    heads = loaded.signatures["heads"](preprocessed=pre)
    det = loaded.signatures["detect"](preprocessed=pre)
    enc, cls = heads["box_encodings"].numpy()[0], heads["class_predictions"].numpy()[0]
    anchors = np.load(run_d / "export" / "reference" / "anchors.npy")
    foreground = cls[:, 1:]
    anchor, klass = np.unravel_index(np.argmax(foreground), foreground.shape)
    assert float(det["scores"][0, 0]) == pytest.approx(float(foreground[anchor, klass]), abs=1e-6)
    assert int(det["classes"][0, 0]) == klass
    ty, tx, th, tw = enc[anchor]
    ya, xa, ha, wa = anchors[anchor]
    yc, xc, h, w = ty / 10 * ha + ya, tx / 10 * wa + xa, np.exp(th / 5) * ha, np.exp(tw / 5) * wa
    np.testing.assert_allclose(det["boxes"][0, 0].numpy(), [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], atol=1e-5)


def _copy_folder(src: Path, dst: Path, config_edit: tuple[str, str] | None = None, labels: int | None = None) -> Path:
    shutil.copytree(src, dst)
    if config_edit is not None:
        text = (dst / "pipeline.config").read_text()
        assert config_edit[0] in text
        (dst / "pipeline.config").write_text(text.replace(config_edit[0], config_edit[1]))
    if labels is not None:
        (dst / "label_map.pbtxt").write_text("".join(f"item {{ id: {i} name: 'c{i}' }}\n" for i in range(1, labels + 1)))
    return dst


@pytest.mark.parametrize(
    ("case", "edit", "labels", "code", "words"),
    [
        # following the old refusal's hint: the TF2 twin of the extractor with the TF1 checkpoint
        ("keras_switch", ("type: 'ssd_mobilenet_v1'", "type: 'ssd_mobilenet_v1_keras'"), None, 12,
         ["a TF1 checkpoint loaded into a TF2 model", "ssd_mobilenet_v1", "no `_keras`"]),
        ("more_classes", ("num_classes: 3", "num_classes: 5"), 5, 12,
         ["another shape", "ClassPredictor", "num_classes"]),
        ("deeper_model", ("depth_multiplier: 0.25", "depth_multiplier: 0.5"), None, 12,
         ["another shape", "depth_multiplier"]),
        ("label_map_count", None, 4, 11, ["4", "num_classes", "3"]),
        ("tf1_fpn", ("type: 'ssd_mobilenet_v1'", "type: 'ssd_mobilenet_v1_fpn'"), None, 10,
         ["FPN", "tf.contrib", "ssd_mobilenet_v1_fpn_keras"]),
        ("not_8_bit", ("eval_config: {", "graph_rewriter { quantization { weight_bits: 4 activation_bits: 8 } }\neval_config: {"),
         None, 10, ["weight_bits 4", "8"]),
    ],
)
def test_tf1_preflight_refuses_with_the_reason(tmp_path: Path, tf1_training_folder: Path, capsys, case: str,
                                              edit: tuple[str, str] | None, labels: int | None, code: int,
                                              words: list[str]) -> None:
    folder = _copy_folder(tf1_training_folder, tmp_path / case, edit, labels)
    out = tmp_path / "out"
    assert run_cli(["run", str(folder), "--out", str(out), "--quiet"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("liteship: error:") == 1
    for word in words:
        assert word in err, (word, err)
    assert_only_reports(out, code)  # a refusal writes no model, only the reports saying why


def test_a_tf2_checkpoint_with_a_tf1_config_is_refused(tmp_path: Path, tf1_training_folder: Path,
                                                      tiny_checkpoint: tuple[Path, Path, Path], capsys) -> None:
    _, ckpt_dir, _ = tiny_checkpoint
    code = run_cli(["run", "--pipeline-config", str(tf1_training_folder / "pipeline.config"), "--checkpoint-dir",
                    str(ckpt_dir), "--label-map", str(tf1_training_folder / "label_map.pbtxt"),
                    "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 12
    err = capsys.readouterr().err
    assert "TF2 checkpoint" in err and "ssd_mobilenet_v1_keras" in err


def test_input_size_contradicting_the_graph_is_a_usage_error_that_writes_no_model(
        tmp_path: Path, run_d: Path, tf1_training_folder: Path, capsys) -> None:
    out = tmp_path / "out"
    code = run_cli(["run", "--frozen-graph", str(run_d / "export" / "tflite_graph.pb"), "--input-size", "300x300",
                    "--label-map", str(tf1_training_folder / "label_map.pbtxt"), "--out", str(out), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--input-size 300x300 contradicts" in err and "[1, 96, 96, 3]" in err
    assert_only_reports(out, 2)


def test_placeholder_without_static_shape_takes_input_size_or_300(tmp_path: Path) -> None:
    import tensorflow as tf

    from liteship.converter.graph_reference import placeholder_size, resolve_input_size
    from liteship.types import FrozenGraphOptions

    with tf.Graph().as_default() as g:
        tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name="normalized_input_image_tensor")
    gd = g.as_graph_def()
    assert placeholder_size(gd, "normalized_input_image_tensor") is None
    assert resolve_input_size(gd, FrozenGraphOptions(), tmp_path).height == 300
    sized = resolve_input_size(gd, FrozenGraphOptions(height=128, width=160), tmp_path)
    assert (sized.height, sized.width) == (128, 160)


@pytest.mark.slow
def test_quantization_aware_config_gives_a_real_int8_from_its_ranges(tmp_path: Path) -> None:
    """ssd_mobilenet_v1 with ``graph_rewriter { quantization }`` (ranges in the checkpoint, as
    QAT training leaves them): int8 needs no calibration images, every layer runs in uint8, and
    its dequantized heads follow the TF graph with the same fake-quant ranges."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from liteship.tflite_inspect import inspect_model
    from tests.fixtures.tf1_graph import write_tf1_training_folder

    folder = tmp_path / "qat"
    write_tf1_training_folder(folder, "ssd_mobilenet_v1", quantized=True, seed=1)
    out = tmp_path / "out"
    assert run_cli(["convert", str(folder), "--variants", "int8", "--out", str(out), "--quiet"]) == 0
    report = read_report(out)
    assert report["export"]["quantization_aware"] is True and "calibration" not in report or not report["calibration"]
    model = (out / "models" / "int8.tflite").read_bytes()
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    assert inp["dtype"] == np.uint8 and inp["quantization"][1] == 128
    assert inp["quantization"][0] == pytest.approx(2 / 255, rel=1e-3)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    assert not {o["op_name"] for o in ops} & {"QUANTIZE", "DEQUANTIZE"}, "no float islands"
    convs = [tensors[o["outputs"][0]]["dtype"] for o in ops if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert convs and all(d == np.uint8 for d in convs)
    heads = inspect_model(model).postprocess[0].inputs[:2]
    ref = tf.saved_model.load(str(out / "export" / "reference"))
    image = np.random.default_rng(0).integers(0, 256, (1, 96, 96, 3)).astype(np.float32)
    pre = ref.signatures["preprocess"](image=tf.constant(image))["preprocessed"]
    expected = ref.signatures["heads"](preprocessed=pre)
    scale, zero = inp["quantization"]
    it.set_tensor(inp["index"], np.clip(np.rint(pre.numpy() / scale) + zero, 0, 255).astype(np.uint8))
    it.invoke()
    for index, key, limit in zip(heads, ("box_encodings", "class_predictions"), (0.2, 0.1)):
        s, z = tensors[index]["quantization"]
        got = (it.get_tensor(index).astype(np.float32) - z) * s
        want = expected[key].numpy().reshape(got.shape)
        assert np.ptp(want) > 0.2, "the heads depend on the input"
        assert np.abs(got - want).max() < limit, (key, np.abs(got - want).max())
    # parity reads the uint8 heads dequantized, never as raw integers (which differ by ~100)
    from liteship.validation import parity

    images = [np.random.default_rng(k).integers(0, 256, (96, 96, 3)).astype(np.uint8) for k in range(3)]
    result = parity.measure(out / "export" / "reference", {"int8": model}, images)["int8"]
    for key, limit in (("box_encodings", 0.2), ("class_predictions", 0.1)):
        head = result.heads[key]
        assert head.elements > 0 and head.max_abs < limit, (key, head)
