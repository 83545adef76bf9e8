"""Every SSD family of the TF2 model zoo: configs as published, letterbox geometry, and whole runs.

Fast tests need no model. ``tf``/``slow`` tests build small random versions of the families
(tests/fixtures/odapi_models.py) once per session and run ``liteship run`` on them: four
variants, parity against the desktop reference, the default contracts.
The default set covers each code path once: FPNLite (depthwise FPN, weight-shared head),
MobileNetV1-FPN, ResNet50-FPN (per-channel mean), EfficientDet-D0 (letterbox); plain
MobileNetV2 is the demo's and test_demo's. ResNet101/152 and EfficientNet-b1..b7 differ from
those only in backbone depth/width: ``LITESHIP_ALL_FAMILIES=1`` runs them too (about 25 min).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from liteship.converter import letterbox as lb
from liteship.converter import preflight
from liteship.errors import ConfigProblem
from liteship.types import Variant
from liteship.validation.gates import TOLERANCES
from tests.conftest import run_cli
from tests.fixtures import odapi_models
from tests.fixtures.odapi_models import FAMILIES, ZOO_DIR, zoo_config_text

DEFAULT_FAMILIES = ["mobilenet_v2", "fpnlite", "mobilenet_v1_fpn", "resnet50_fpn", "efficientdet_d0"]
MORE_FAMILIES = ["resnet101_fpn", "resnet152_fpn", *(f"efficientdet_d{n}" for n in range(1, 8))]


def _config(text: str, tmp_path: Path) -> object:
    path = tmp_path / "pipeline.config"
    path.write_text(text)
    return preflight.read_pipeline_config(path)


# --- configs as published ----------------------------------------------------------------------


def test_every_zoo_family_is_a_feature_extractor_the_od_api_builds() -> None:
    from liteship import odapi

    registry = odapi.module("builders.model_builder").SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP
    assert set(FAMILIES) <= set(registry)
    assert len(FAMILIES) == 14


@pytest.mark.parametrize("zoo", sorted(p.name for p in ZOO_DIR.glob("*.config")))
def test_published_zoo_configs_pass_preflight_with_their_placeholders(zoo: str, tmp_path: Path) -> None:
    text = (ZOO_DIR / zoo).read_text()
    assert "PATH_TO_BE_CONFIGURED" in text
    facts = preflight.check_config(_config(text, tmp_path), tmp_path / "pipeline.config")
    assert facts.num_classes == 90
    if "efficientdet" in zoo:
        assert facts.resize.letterbox and (facts.height, facts.width) == (512, 512)
    else:
        assert not facts.resize.letterbox


def test_small_configs_keep_everything_outside_the_model_block(tmp_path: Path) -> None:
    small = _config(zoo_config_text("efficientdet_d0"), tmp_path)
    assert small.train_config.use_bfloat16 and small.train_config.sync_replicas  # TPU settings kept
    assert small.train_input_reader.label_map_path.startswith("PATH_TO_BE_CONFIGURED")
    assert small.model.ssd.image_resizer.keep_aspect_ratio_resizer.max_dimension == 256


def test_keep_aspect_ratio_without_padding_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = (ZOO_DIR / "ssd_efficientdet_d0_512x512_coco17_tpu-8.config").read_text()
    text = text.replace("pad_to_max_dimension: true", "pad_to_max_dimension: false")
    with pytest.raises(ConfigProblem) as err:
        preflight.check_config(_config(text, tmp_path), tmp_path / "pipeline.config")
    msg = err.value.message
    assert "pad_to_max_dimension" in msg and "one fixed input size" in msg
    assert "512" in msg and "320" not in msg  # the size the model was trained at, not a stock one


def test_per_channel_pad_value_becomes_the_pad_colour(tmp_path: Path) -> None:
    text = (ZOO_DIR / "ssd_efficientdet_d0_512x512_coco17_tpu-8.config").read_text().replace(
        "pad_to_max_dimension: true", "pad_to_max_dimension: true per_channel_pad_value: [1.0, 0.0, -1.0]")
    spec = preflight.check_config(_config(text, tmp_path), tmp_path / "p.config").resize
    resolved = spec.with_normalization((100.0, 110.0, 120.0), (50.0, 50.0, 50.0))
    assert resolved.pad_pixel == (150.0, 110.0, 70.0)


# --- letterbox geometry -----------------------------------------------------------------------


def _spec(side: int = 64, lo: int | None = None) -> lb.ResizeSpec:
    return lb.ResizeSpec(lb.LETTERBOX, side, side, lo or side, side, (0.0, 0.0, 0.0), (124.0, 116.0, 104.0))


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (64, 64), (37, 101), (480, 640)])
@pytest.mark.parametrize("lo", [None, 40])
def test_fitted_size_is_what_the_od_api_resizer_gives(shape: tuple[int, int], lo: int | None) -> None:
    import tensorflow as tf

    from liteship import odapi

    pre = odapi.module("core.preprocessor")
    spec = _spec(64, lo)
    _, size = pre.resize_to_range(tf.zeros([*shape, 3]), min_dimension=spec.min_dimension,
                                  max_dimension=spec.max_dimension, pad_to_max_dimension=True)
    assert lb.fitted_size(spec, *shape) == tuple(int(x) for x in size.numpy()[:2])


def test_letterbox_puts_the_photo_top_left_and_pads_with_the_pad_colour() -> None:
    rgb = np.full((30, 60, 3), 200, np.uint8)
    out, fitted = lb.letterbox(rgb, _spec(64))
    assert fitted == (32, 64) and out.shape == (64, 64, 3)
    assert (out[:32] == 200).all() and (out[32:] == [124, 116, 104]).all()


def test_boxes_map_back_to_photo_pixels() -> None:
    spec = _spec(64)
    h, w = 30, 60  # fitted to 32x64: scale 64/60 both ways, then in a 64x64 square
    photo_box = np.array([[6.0, 15.0, 24.0, 45.0]])  # ymin, xmin, ymax, xmax in the photo
    new_h, new_w = lb.fitted_size(spec, h, w)
    in_square = photo_box * [new_h / h, new_w / w, new_h / h, new_w / w] / 64
    assert lb.boxes_to_pixels(in_square, spec, h, w) == pytest.approx(photo_box)
    stretch = lb.ResizeSpec(lb.STRETCH, 64, 64)
    assert lb.boxes_to_pixels(np.array([[0.5, 0.5, 1, 1]]), stretch, h, w) == pytest.approx(np.array([[15, 30, 30, 60]]))


class _ResNetLikePreprocess:
    """ResNet-FPN's preprocess at 640x640: subtract the ImageNet channel means (std 1)."""

    def preprocess(self, image: object) -> tuple[object, None]:
        import tensorflow as tf

        return tf.convert_to_tensor(image) - tf.constant([123.68, 116.779, 103.939]), None


def test_the_affine_fit_does_not_drift_at_640x640() -> None:
    """float32 sums over 640x640 gave a mean of -123.934 instead of -123.68 (exit 20 on ResNet-FPN)."""
    from liteship.converter.export import derive_normalization

    norm, source = derive_normalization(_ResNetLikePreprocess(), 640, 640, 3)
    assert source == "feature_extractor"
    assert norm.mean == pytest.approx((123.68, 116.779, 103.939), abs=1e-3) and norm.std == pytest.approx((1.0,) * 3)


# --- whole runs on small random models ----------------------------------------------------------


@pytest.fixture(scope="session")
def family_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, odapi_models.ModelFiles]:
    """Built on first use, one per family, shared by every test of the session."""
    return {}


def family_checkpoint(cache: dict[str, odapi_models.ModelFiles], name: str, root: Path) -> odapi_models.ModelFiles:
    if name not in cache:
        cache[name] = odapi_models.write_zoo_checkpoint(root / name, name, seed=0)
    return cache[name]


def _families() -> list[object]:
    # the backbone-size variants are opt-in (about 25 min more), not collected otherwise: a
    # skip would fail a CI=true run, and they exercise no code path the default set does not
    more = os.environ.get("LITESHIP_ALL_FAMILIES") == "1"
    return [*DEFAULT_FAMILIES, *(MORE_FAMILIES if more else [])]


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("name", _families())
def test_liteship_run_passes_parity_and_contracts_on_every_family(
    name: str, family_checkpoints: dict[str, odapi_models.ModelFiles], tmp_path_factory: pytest.TempPathFactory,
    calib_images: Path,
) -> None:
    files = family_checkpoint(family_checkpoints, name, tmp_path_factory.mktemp("families"))
    run_dir = tmp_path_factory.mktemp(f"run-{name}")
    out = run_dir / "out"
    letterboxed = FAMILIES[odapi_models.ALIASES[name]].zoo_config.startswith("ssd_efficientdet")
    # the default gating contracts, mediapipe included, for the letterboxed EfficientDet too; not
    # --quiet: the console summary of a passing run without ground truth is part of what a user gets
    # (it raised KeyError 'map50', exit 1, after writing an exit-0 report)
    code = run_cli([
        "run", "--pipeline-config", str(files.config), "--checkpoint-dir", str(files.checkpoint_dir),
        "--label-map", str(files.label_map), "--images", str(calib_images), "--calibration-images", "12",
        "--parity-images", "12", "--out", str(out),
    ])
    report = json.loads((out / "report.json").read_text())
    failed = {v["name"]: [c["id"] for c in v["checks"] if c["verdict"] == "fail"] for v in report["variants"]}
    assert code == 0, (code, failed, report.get("errors"))
    assert [v["name"] for v in report["variants"]] == ["fp32", "fp16", "dynamic", "int8"]
    assert report["export"]["resize"]["mode"] == ("letterbox" if letterboxed else "stretch")
    for v in report["variants"]:
        p = v["parity"]
        assert p["reference_detections"] > 0 and p["matched"] > 0, (v["name"], p)  # not vacuous
        assert (p["app_path"] is not None) == letterboxed
        assert {"parity.heads.box_encodings.psnr_db", "parity.detections.recall"} <= {c["id"] for c in v["checks"]}
        assert v["lint"]["task-library"]["verdict"] == "pass" and v["lint"]["bundled-app"]["verdict"] == "pass"
        assert v["lint"]["mediapipe"]["verdict"] == "pass" and v["lint"]["mediapipe"]["gating"], (v["name"], v["lint"])
        mediapipe = v["runtimes"]["mediapipe"]["agreement"]
        if v["runtimes"]["mediapipe"]["tolerance"] != "dynamic-range":  # that one compares scores >= 0.3 only
            assert mediapipe["matched"] > 0, (v["name"], mediapipe)
        if v["name"] == "fp32":
            # the desktop ran what MediaPipe saw (the photo stretched to the input, not letterboxed):
            # float kernels give the same detections (scores within float rounding: measured <= 4e-6)
            assert mediapipe["matched"] == mediapipe["desktop"] == mediapipe["runtime"], (v["name"], mediapipe)
            assert mediapipe["max_score_delta"] <= 1e-4 and mediapipe["min_iou"] >= 0.99, (v["name"], mediapipe)
    int8 = report["variants"][3]
    if len(set(report["export"]["normalization"]["mean"])) > 1:  # ResNet-FPN, EfficientDet: per channel
        # no uint8 input can express it: the normalization is in int8's graph, its input the raw pixel
        assert int8["input"]["quantization"]["scales"] == [1.0] and int8["input"]["quantization"]["zero_points"] == [0]
        assert int8["input_normalization"]["folded_into_graph"] and int8["input_normalization"]["metadata_mean"] == [0.0]
    assert {c["id"]: c["verdict"] for c in int8["checks"]}["lint.task-library.input.quantization"] == "pass"
    fp32 = report["variants"][0]["parity"]
    for variant in ("fp32", "fp16", "dynamic", "int8"):  # the default gates, not loosened for random weights
        assert report["validation"]["gates"]["tolerances"][variant] == dataclasses.asdict(TOLERANCES[Variant(variant)])
    assert fp32["recall"] == 1.0 and fp32["iou"]["mean"] > 0.999  # same box convention on both sides
    if letterboxed:
        assert "letterbox" in report["variants"][0]["metadata"]["description"]
        assert fp32["app_path"]["matched"] > 0
