"""Calibration images: finding, decoding every Pillow mode, resizing, streaming stats."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import liteship  # noqa: F401 - before anything that may import TensorFlow
from liteship.converter import calibration
from liteship.converter.calibration import (
    Calibration,
    check_stats_against_range,
    find_images,
    load_rgb,
    resize_normalize,
)
from liteship.errors import CalibrationProblem
from liteship.types import InputStats, Normalization

MINUS_ONE_ONE = Normalization(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5))


def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def save_rgb(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    Image.fromarray(array.astype(np.uint8), "RGB").save(path, **kwargs)
    return path


def noise(height: int, width: int) -> np.ndarray:
    return rng().integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def truncated_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(noise(64, 64), "RGB").save(buffer, format="JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature + IHDR claiming a huge size: cheap decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def scale_minus_one_one(image: np.ndarray) -> np.ndarray:
    """A TensorFlow-free preprocess for the dataset tests (images are already model-sized)."""
    return ((image.astype(np.float32) - 127.5) / 127.5)[np.newaxis]


# --- find_images -----------------------------------------------------------------------


def test_find_images_sorted_case_insensitive_non_recursive(tmp_path: Path) -> None:
    small = noise(4, 4)
    for name in ["b.JPG", "a.png", "c.jpeg", "d.BMP", "e.webp"]:
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP"}[name.rsplit(".", 1)[1].lower()]
        save_rgb(tmp_path / name, small, format=fmt)
    (tmp_path / "sub").mkdir()
    save_rgb(tmp_path / "sub" / "nested.png", small)
    usable, skipped = find_images(tmp_path)
    assert [p.name for p in usable] == ["a.png", "b.JPG", "c.jpeg", "d.BMP", "e.webp"]
    assert [Path(p).name for p, _ in skipped] == ["sub"]


def test_find_images_skips_text_zero_byte_and_corrupt_with_reasons(tmp_path: Path) -> None:
    save_rgb(tmp_path / "good.png", noise(4, 4))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "corrupt.jpg").write_bytes(b"this is not a jpeg at all")
    usable, skipped = find_images(tmp_path)
    assert [p.name for p in usable] == ["good.png"]
    reasons = {Path(p).name: r for p, r in skipped}
    assert "not an image file" in reasons["notes.txt"] and "'.txt'" in reasons["notes.txt"]
    assert "0 bytes" in reasons["empty.jpg"]
    assert reasons["corrupt.jpg"].startswith("unreadable")


def test_find_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CalibrationProblem, match="does not exist") as info:
        find_images(tmp_path / "nope")
    assert str(tmp_path / "nope") in info.value.message


def test_find_images_file_instead_of_folder(tmp_path: Path) -> None:
    image = save_rgb(tmp_path / "one.png", noise(4, 4))
    with pytest.raises(CalibrationProblem, match="must be a folder") as info:
        find_images(image)
    assert str(image) in info.value.message


# --- load_rgb --------------------------------------------------------------------------


def test_load_rgb_returns_uint8_hxwx3(tmp_path: Path) -> None:
    array = noise(5, 7)
    loaded = load_rgb(save_rgb(tmp_path / "x.png", array))
    assert loaded.dtype == np.uint8 and loaded.shape == (5, 7, 3)
    np.testing.assert_array_equal(loaded, array)


def test_load_rgb_applies_exif_orientation_6(tmp_path: Path) -> None:
    stored = np.zeros((8, 16, 3), np.uint8)  # 16 wide, 8 high: left red, right blue
    stored[:, :8] = (255, 0, 0)
    stored[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = save_rgb(tmp_path / "rotated.jpg", stored, exif=exif.tobytes(), quality=100, subsampling=0)
    loaded = load_rgb(path)
    assert loaded.shape == (16, 8, 3), "width and height are swapped"
    expected = np.rot90(stored, k=-1)  # clockwise: the left (red) half goes to the top
    assert np.abs(loaded.astype(int) - expected.astype(int)).max() < 40
    assert loaded[2, 4, 0] > 200 and loaded[13, 4, 2] > 200


def test_load_rgb_grayscale_is_repeated_to_three_channels(tmp_path: Path) -> None:
    gray = rng().integers(0, 256, size=(3, 5), dtype=np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray, "L").save(path)
    loaded = load_rgb(path)
    assert loaded.shape == (3, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[..., channel], gray)


def test_load_rgb_gray_alpha_drops_alpha(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (2, 2), (77, 0)).save(path)
    np.testing.assert_array_equal(load_rgb(path), np.full((2, 2, 3), 77, np.uint8))


def test_load_rgb_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 65535, 1000, 128]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    loaded = load_rgb(path)
    # Pillow's own convert("L") would clip: 25700 -> 255
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 100, 255, 4, 0])
    assert (loaded[..., 0] == loaded[..., 2]).all()


def test_load_rgb_palette_with_transparency_uses_palette_colours(tmp_path: Path) -> None:
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    np.testing.assert_array_equal(load_rgb(path), [[[10, 20, 30], [200, 100, 50]]])


def test_load_rgb_rgba_drops_alpha_like_tf_decode_png(tmp_path: Path) -> None:
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    np.testing.assert_array_equal(load_rgb(path), rgba[..., :3])


def test_load_rgb_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    loaded = load_rgb(path)
    assert loaded.shape == (8, 8, 3)
    red, green, blue = loaded[4, 4].astype(int)
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("corrupt.jpg", b"\x00\x01 garbage bytes", "not a recognized image"),
        ("empty.png", b"", "0 bytes"),
    ],
)
def test_load_rgb_bad_files_raise_naming_file(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CalibrationProblem) as info:
        load_rgb(path)
    assert str(path) in info.value.message and reason in info.value.message


def test_load_rgb_truncated_jpeg_fails_at_load(tmp_path: Path) -> None:
    path = truncated_jpeg(tmp_path / "cut.jpg")
    Image.open(path)  # the header alone still opens
    with pytest.raises(CalibrationProblem, match="truncated") as info:
        load_rgb(path)
    assert str(path) in info.value.message


def test_load_rgb_refuses_image_over_100_mp_before_decoding(tmp_path: Path) -> None:
    # 108 MP: under Pillow's own hard limit (~179 MP), over liteship's
    path = png_header_only(tmp_path / "big.png", 12_000, 9_000)
    with pytest.raises(CalibrationProblem, match="decompression bomb") as info:
        load_rgb(path)
    assert "108 MP" in info.value.message and str(path) in info.value.message


def test_load_rgb_refuses_decompression_bomb_pillow_rejects_at_open(tmp_path: Path) -> None:
    path = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    with pytest.raises(CalibrationProblem, match="decompression bomb") as info:
        load_rgb(path)
    assert "400000000 pixels" in info.value.message and str(path) in info.value.message
    _, skipped = find_images(tmp_path)
    assert "decompression bomb" in skipped[0][1]


def test_load_rgb_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = save_rgb(tmp_path / "x.png", noise(10, 10))
    with pytest.raises(CalibrationProblem, match="MP limit"):
        load_rgb(path, max_pixels=99)
    assert load_rgb(path, max_pixels=100).shape == (10, 10, 3)


# --- resize_normalize (TensorFlow) -----------------------------------------------------


@pytest.mark.tf
def test_resize_normalize_shape_dtype_and_range() -> None:
    preprocess = resize_normalize(6, 4, MINUS_ONE_ONE)
    image = np.zeros((9, 13, 3), np.uint8)
    image[:, :, 1] = 255
    out = preprocess(image)
    assert out.shape == (1, 6, 4, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], -1.0)
    np.testing.assert_allclose(out[..., 1], 1.0)


@pytest.mark.tf
def test_resize_normalize_matches_odapi_fixed_shape_resizer() -> None:
    import tensorflow as tf

    from liteship import odapi

    image = noise(7, 11)
    ours = resize_normalize(20, 15, MINUS_ONE_ONE)(image)
    resize_image = odapi.module("core.preprocessor").resize_image
    resized, _ = resize_image(tf.constant(image, tf.float32), new_height=20, new_width=15)
    theirs = (resized.numpy() - 127.5) / 127.5
    np.testing.assert_allclose(ours[0], theirs, atol=1e-5)
    # ...and TF2's tf.image.resize (half-pixel centers) would NOT match: the test discriminates
    v2 = (tf.image.resize(tf.constant(image, tf.float32), [20, 15]).numpy() - 127.5) / 127.5
    assert np.abs(ours[0] - v2).max() > 0.05


@pytest.mark.tf
def test_resize_normalize_per_channel_mean_std() -> None:
    norm = Normalization(mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    out = resize_normalize(2, 2, norm)(np.full((4, 4, 3), 50, np.uint8))
    np.testing.assert_allclose(out[0, 0, 0], [20.0, 7.5, 4.0])


def test_resize_normalize_rejects_zero_std() -> None:
    with pytest.raises(ValueError, match="std"):
        resize_normalize(2, 2, Normalization(mean=(0.0,), std=(0.0,)))


# --- representative_dataset ------------------------------------------------------------


def make_images(folder: Path, count: int, size: int = 8) -> list[Path]:
    generator = rng()
    paths = []
    for i in range(count):
        array = generator.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        paths.append(save_rgb(folder / f"img{i:02d}.png", array))
    return paths


def test_dataset_yields_single_array_lists_and_respects_limit(tmp_path: Path) -> None:
    paths = make_images(tmp_path, 5)
    dataset = Calibration(paths, scale_minus_one_one, limit=3, expected_range=(-1.0, 1.0))
    samples = list(dataset())
    assert len(samples) == 3
    for sample in samples:
        assert isinstance(sample, list) and len(sample) == 1
        assert sample[0].shape == (1, 8, 8, 3) and sample[0].dtype == np.float32
    assert len(list(iter(dataset))) == 3, "also plainly iterable, and restartable"


def test_dataset_loads_lazily_one_image_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = make_images(tmp_path, 4)
    loads: list[Path] = []
    real_load = calibration.load_rgb
    monkeypatch.setattr(calibration, "load_rgb", lambda p: loads.append(p) or real_load(p))
    generator = Calibration(paths, scale_minus_one_one, 10, (-1.0, 1.0))()
    assert loads == []
    next(generator)
    assert loads == paths[:1]
    next(generator)
    assert loads == paths[:2]


def test_dataset_skips_unreadable_and_records_reason(tmp_path: Path) -> None:
    good = make_images(tmp_path, 2)
    cut = truncated_jpeg(tmp_path / "cut.jpg")
    dataset = Calibration([good[0], cut, good[1]], scale_minus_one_one, 2, (-1.0, 1.0))
    assert len(list(dataset())) == 2, "the limit counts usable images"
    assert [(Path(p).name, "truncated" in r) for p, r in dataset.skipped] == [("cut.jpg", True)]
    stats = dataset.stats()
    assert stats.count == 2
    assert any("cut.jpg" in entry and "truncated" in entry for entry in stats.files_skipped)


def test_dataset_stats_match_numpy_over_all_values(tmp_path: Path) -> None:
    paths = make_images(tmp_path, 4, size=6)
    dataset = Calibration(paths, scale_minus_one_one, 10, (-1.0, 1.0))
    samples = [s[0] for s in dataset()]
    everything = np.concatenate([s.ravel() for s in samples]).astype(np.float64)
    stats = dataset.stats()
    assert isinstance(stats, InputStats)
    assert stats.count == 4 and stats.expected_range == (-1.0, 1.0)
    assert stats.min == pytest.approx(everything.min())
    assert stats.max == pytest.approx(everything.max())
    assert stats.mean == pytest.approx(everything.mean(), abs=1e-9)
    assert stats.std == pytest.approx(everything.std(), rel=1e-9)


def test_dataset_second_pass_does_not_double_count(tmp_path: Path) -> None:
    dataset = Calibration(make_images(tmp_path, 3), scale_minus_one_one, 10, (-1.0, 1.0))
    list(dataset())
    list(dataset())
    assert dataset.stats().count == 3


def test_dataset_without_usable_images_explains_fix(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    dataset = Calibration([tmp_path / "bad.jpg"], scale_minus_one_one, 10, (-1.0, 1.0))
    with pytest.raises(CalibrationProblem) as info:
        list(dataset())
    message = info.value.message
    assert f"no usable calibration images in {tmp_path}" in message
    assert "bad.jpg" in message and "--images DIR" in message and "int8 needs at least one" in message
    with pytest.raises(CalibrationProblem):
        dataset.stats()


def test_dataset_with_no_paths_fails_immediately_and_lists_find_images_skips(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    usable, skipped = find_images(tmp_path)
    with pytest.raises(CalibrationProblem, match="readme.txt") as info:
        Calibration(usable, scale_minus_one_one, 10, (-1.0, 1.0), source=tmp_path, already_skipped=skipped)
    assert f"no usable calibration images in {tmp_path}" in info.value.message


def test_dataset_rejects_non_positive_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit"):
        Calibration(make_images(tmp_path, 1), scale_minus_one_one, 0, (-1.0, 1.0))


@pytest.mark.tf
@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected")
def test_dataset_drives_the_tflite_converter(tmp_path: Path) -> None:
    import tensorflow as tf

    paths = make_images(tmp_path, 3, size=12)
    dataset = Calibration(paths, resize_normalize(8, 8, MINUS_ONE_ONE), 2, (-1.0, 1.0))

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def model(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(x * 2.0 + 0.5)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    assert converter.convert()
    stats = dataset.stats()
    assert stats.count == 2 and -1.0 <= stats.min < stats.max <= 1.0


# --- check_stats_against_range ---------------------------------------------------------


def stats_for(low: float, high: float, expected: tuple[float, float] = (-1.0, 1.0)) -> InputStats:
    return InputStats(count=10, min=low, max=high, mean=(low + high) / 2, std=1.0, expected_range=expected)


def test_check_range_ok_for_properly_normalized_data() -> None:
    assert check_stats_against_range(stats_for(-0.99, 1.0)) == []
    assert check_stats_against_range(stats_for(-1.02, 1.03)) == [], "within tolerance"
    assert check_stats_against_range(stats_for(0.0, 255.0, (0.0, 255.0))) == []


def test_check_range_raw_pixels_not_normalized() -> None:
    assert check_stats_against_range(stats_for(0.0, 255.0)) == [
        "calibration inputs span [0, 255] but the model expects [-1, 1]: images were not normalized (x-127.5)/127.5"
    ]


def test_check_range_divided_by_255_instead() -> None:
    (message,) = check_stats_against_range(stats_for(0.0, 1.0))
    assert "span [0, 1]" in message and "divided by 255 instead of normalized (x-127.5)/127.5" in message


def test_check_range_minus_one_one_when_model_wants_zero_one() -> None:
    (message,) = check_stats_against_range(stats_for(-1.0, 1.0, (0.0, 1.0)))
    assert "(x-127.5)/127.5 instead of normalized x/255" in message


def test_check_range_tiny_fraction_of_expected() -> None:
    (message,) = check_stats_against_range(stats_for(0.40, 0.45))
    assert "only 2%" in message and "nearly uniform" in message


def test_check_range_clearly_outside_without_known_cause() -> None:
    (message,) = check_stats_against_range(stats_for(-3.0, 3.0))
    assert "span [-3, 3] but the model expects [-1, 1]" in message and "mean/std" in message
