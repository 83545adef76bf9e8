"""Representative dataset for full-integer (int8) quantization.

Images are decoded the way the OD API decodes training images (``tf.image.decode_*`` with
``channels=3``: alpha is dropped, not composited), resized the way its
``fixed_shape_resizer`` resizes, and normalized with the model's mean/std. They are
loaded one at a time, and statistics of the values fed to the converter are kept so a
wrong normalization is reported instead of silently producing a bad int8 model.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from liteship.errors import CalibrationProblem
from liteship.types import InputStats, Normalization

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

#: Larger images are refused before decoding (Pillow's own bomb limit is ~179 MP).
MAX_PIXELS = 100_000_000

Preprocess = Callable[[np.ndarray], np.ndarray]


# --- finding and decoding images -----------------------------------------------------


def find_images(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files directly in ``folder`` (sorted) and the skipped entries with reasons.

    Only headers are read here; files that fail to decode fully are skipped later, while
    the representative dataset is being read.
    """
    folder = Path(folder)
    if not folder.exists():
        raise CalibrationProblem(
            f"calibration image folder {folder} does not exist: pass --images DIR with jpg/png photos"
        )
    if not folder.is_dir():
        raise CalibrationProblem(
            f"calibration images must be a folder, but {folder} is a file: pass --images DIR "
            "(the folder that contains the photos)"
        )
    usable: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for entry in sorted(folder.iterdir()):
        reason = _skip_reason(entry)
        if reason is None:
            usable.append(entry)
        else:
            skipped.append((str(entry), reason))
    return usable, skipped


def _skip_reason(path: Path) -> str | None:
    if path.is_dir():
        return "folder (subfolders are not searched)"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        extensions = "/".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
        return f"not an image file (extension {path.suffix or '(none)'!r}; accepted: {extensions})"
    try:
        if path.stat().st_size == 0:
            return "unreadable: empty file (0 bytes)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.size  # noqa: B018 - header only
    except Exception as exc:  # noqa: BLE001 - untrusted file: any decoder failure means "skip it"
        return f"unreadable: {_describe(exc)}"
    return None


def load_rgb(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to uint8 HxWx3 RGB, upright (EXIF orientation applied).

    Mode handling: grayscale is repeated to 3 channels, 16-bit grayscale is scaled
    (``round(v / 257)``, not clipped), palette images take their palette colours,
    alpha is dropped (RGBA -> RGB as TF's ``decode_png(channels=3)`` does), CMYK is
    converted by Pillow.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise CalibrationProblem(f"cannot use calibration image {path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(path, image.size, max_pixels)
                image.load()
                upright = ImageOps.exif_transpose(image)
                return to_rgb(upright)
    except CalibrationProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted file: any decoder/EXIF failure means "skip it"
        raise CalibrationProblem(f"cannot use calibration image {path}: {_describe(exc)}") from exc


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CalibrationProblem(f"cannot use calibration image {path}: it has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise CalibrationProblem(
            f"cannot use calibration image {path}: {width}x{height} = {width * height / 1e6:.0f} MP is more "
            f"than the {max_pixels / 1e6:g} MP limit (possible decompression bomb); use smaller photos"
        )


def to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        rgb = image
    elif mode.startswith("I"):  # I;16, I;16B, I;16L, I: 16-bit grayscale
        return np.repeat(_sixteen_to_eight(np.asarray(image))[..., None], 3, axis=2)
    elif mode == "P":
        # Through RGBA: converting a palette with transparency straight to RGB warns.
        rgb = image.convert("RGBA").convert("RGB")
    else:  # 1, L, LA, RGBA, RGBa, CMYK, YCbCr, LAB, HSV, ...: alpha is dropped, not composited
        rgb = image.convert("RGB")
    array = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(array[..., :3])


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 by ``round(v / 257)`` (65535 / 255 = 257), not by clipping."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognized image (corrupt, or not really an image)"
    if isinstance(exc, Image.DecompressionBombError):
        detail = " ".join(str(exc).split()).split(", could be")[0]
        return f"too large: {detail} (possible decompression bomb); use smaller photos"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and "truncated" in text:
        return f"truncated file ({text})"
    return text


# --- resizing and normalization ------------------------------------------------------


def resize_normalize(height: int, width: int, normalization: Normalization) -> Preprocess:
    """uint8 HxWx3 -> float32 [1, height, width, 3], as the OD API preprocesses images.

    The OD API's ``fixed_shape_resizer`` calls ``preprocessor.resize_image``, i.e.
    ``tf.compat.v1.image.resize_images(method=BILINEAR, align_corners=False)``: the
    *legacy* bilinear kernel (``half_pixel_centers=False``), which differs from TF2's
    ``tf.image.resize``. No aspect ratio is preserved.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"resize target must be positive, got {height}x{width}")
    mean, std = normalization.channel_arrays()
    import tensorflow as tf  # liteship is already imported, so TF_USE_LEGACY_KERAS is set

    def preprocess(image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
        pixels = tf.convert_to_tensor(image, dtype=tf.float32)
        resized = tf.compat.v1.image.resize_images(
            pixels, [height, width], method=tf.image.ResizeMethod.BILINEAR, align_corners=False
        )
        normalized = (resized.numpy() - mean) / std
        return normalized[np.newaxis].astype(np.float32)

    return preprocess


# --- representative dataset ----------------------------------------------------------


@dataclass
class _RunningStats:
    """Streaming count/min/max/mean/std (Chan et al. parallel variance)."""

    images: int = 0
    values: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0

    def add(self, array: np.ndarray) -> None:
        data = np.asarray(array, dtype=np.float64)
        n = data.size
        if n == 0:
            return
        batch_mean = float(data.mean())
        batch_m2 = float(np.square(data - batch_mean).sum())
        total = self.values + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.values * n / total
        self.values = total
        self.images += 1
        self.minimum = min(self.minimum, float(data.min()))
        self.maximum = max(self.maximum, float(data.max()))

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.values) if self.values else 0.0


class Calibration:
    """A TFLite ``representative_dataset``: call it (or iterate it) to get ``[array]`` lists.

    Each pass reads at most ``limit`` usable images, lazily, skipping unreadable files.
    :meth:`stats` and :attr:`skipped` describe the most recent pass (the converter makes
    one), so a second pass does not count images twice.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        preprocess: Preprocess,
        limit: int,
        expected_range: tuple[float, float],
        *,
        source: Path | str | None = None,
        already_skipped: Sequence[tuple[str, str]] = (),
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.paths = [Path(p) for p in paths]
        self.preprocess = preprocess
        self.limit = limit
        self.expected_range = (float(expected_range[0]), float(expected_range[1]))
        self.source = str(source) if source is not None else _common_folder(self.paths)
        self._already_skipped = list(already_skipped)
        self._stats = _RunningStats()
        self.skipped: list[tuple[str, str]] = []
        if not self.paths:
            raise self._no_usable_images()

    def __call__(self) -> Iterator[list[np.ndarray]]:
        return self._generate()

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        return self._generate()

    def _generate(self) -> Iterator[list[np.ndarray]]:
        stats = self._stats = _RunningStats()
        skipped = self.skipped = []
        for path in self.paths:
            if stats.images >= self.limit:
                break
            try:
                image = load_rgb(path)
            except CalibrationProblem as problem:
                skipped.append((str(path), _reason(problem, path)))
                continue
            sample = self.preprocess(image)
            stats.add(sample)
            yield [sample]
        if stats.images == 0:
            raise self._no_usable_images()

    def stats(self) -> InputStats:
        if self._stats.images == 0:
            raise self._no_usable_images()
        s = self._stats
        every_skip = [*self._already_skipped, *self.skipped]
        return InputStats(
            count=s.images,
            min=s.minimum,
            max=s.maximum,
            mean=s.mean,
            std=s.std,
            expected_range=self.expected_range,
            files_skipped=tuple(f"{path}: {reason}" for path, reason in every_skip),
        )

    def _no_usable_images(self) -> CalibrationProblem:
        every_skip = [*self._already_skipped, *self.skipped]
        detail = "; ".join(f"{Path(p).name}: {r}" for p, r in every_skip[:5]) or "the folder has no images"
        if len(every_skip) > 5:
            detail += f"; ... ({len(every_skip) - 5} more)"
        return CalibrationProblem(
            f"no usable calibration images in {self.source}: {detail}; int8 needs at least one; "
            "pass --images DIR with jpg/png photos like the ones the app will see"
        )


def _common_folder(paths: Sequence[Path]) -> str:
    if not paths:
        return "the given image list"
    try:
        return os.path.commonpath([str(p.parent) for p in paths])
    except ValueError:
        return "the given image list"


def _reason(problem: CalibrationProblem, path: Path) -> str:
    prefix = f"cannot use calibration image {path}: "
    return problem.message[len(prefix) :] if problem.message.startswith(prefix) else problem.message


# --- sanity check of the observed range ----------------------------------------------

#: Ranges that common normalization mistakes produce (keys of _mistake_text).
_CONVENTIONS: tuple[tuple[float, float], ...] = ((0.0, 255.0), (0.0, 1.0), (-1.0, 1.0))

#: Below this fraction of the expected range, the data cannot calibrate it.
_TINY_FRACTION = 0.1


def check_stats_against_range(stats: InputStats, tolerance: float = 0.05) -> list[str]:
    """Warnings when the calibration values do not look like the model's input range.

    Empty when fine. ``tolerance`` is the fraction of the expected range the observed
    values may overshoot (resampling can overshoot slightly).
    """
    lo, hi = stats.expected_range
    if stats.count == 0:
        return ["no calibration images were read, so the int8 input range is unknown"]
    observed = (stats.min, stats.max)
    seen = f"calibration inputs span [{_fmt(stats.min)}, {_fmt(stats.max)}]"
    expects = f"the model expects [{_fmt(lo)}, {_fmt(hi)}]"
    mistake = _likely_mistake(observed, (lo, hi), tolerance)
    if mistake is not None:
        return [f"{seen} but {expects}: {_mistake_text(mistake, (lo, hi))}"]
    if not _contains((lo, hi), observed, tolerance):
        return [f"{seen} but {expects}: check the normalization mean/std (expected {_target(lo, hi)})"]
    fraction = _coverage((lo, hi), observed)
    if fraction < _TINY_FRACTION:
        return [
            f"{seen}, only {fraction:.0%} of the [{_fmt(lo)}, {_fmt(hi)}] the model expects: the "
            "images are nearly uniform (blank, over- or under-exposed) or scaled wrongly; "
            "int8 accuracy will suffer — use varied photos like the ones the app will see"
        ]
    return []


def _likely_mistake(
    observed: tuple[float, float], expected: tuple[float, float], tolerance: float
) -> tuple[float, float] | None:
    """The convention whose range explains ``observed`` clearly better than ``expected``.

    Ambiguous by nature (bright images normalized to [-1, 1] can all lie in [0, 1]), but
    a set of real photos nearly always spans most of the range it was scaled to.
    """
    own = _coverage(expected, observed) if _contains(expected, observed, tolerance) else 0.0
    for candidate in _CONVENTIONS:
        if _same_range(candidate, expected) or not _contains(candidate, observed, tolerance):
            continue
        coverage = _coverage(candidate, observed)
        if coverage >= 0.5 and coverage >= 1.5 * own:
            return candidate
    return None


def _mistake_text(convention: tuple[float, float], expected: tuple[float, float]) -> str:
    wanted = _target(*expected)
    if convention == (0.0, 255.0):
        return f"images were not normalized {_formula(*expected)}"
    if convention == (0.0, 1.0):
        return f"images were divided by 255 instead of {wanted}"
    return f"images were normalized (x-127.5)/127.5 instead of {wanted}"


def _target(lo: float, hi: float) -> str:
    if _same_range((lo, hi), (0.0, 255.0)):
        return "left as raw 0-255 pixel values"
    return f"normalized {_formula(lo, hi)}"


def _contains(outer: tuple[float, float], inner: tuple[float, float], tolerance: float) -> bool:
    slack = tolerance * (outer[1] - outer[0])
    return inner[0] >= outer[0] - slack and inner[1] <= outer[1] + slack


def _coverage(outer: tuple[float, float], inner: tuple[float, float]) -> float:
    span = outer[1] - outer[0]
    return (inner[1] - inner[0]) / span if span > 0 else 0.0


def _same_range(a: tuple[float, float], b: tuple[float, float]) -> bool:
    scale = max(abs(b[1] - b[0]), 1e-6)
    return abs(a[0] - b[0]) <= 1e-3 * scale and abs(a[1] - b[1]) <= 1e-3 * scale


def _formula(lo: float, hi: float) -> str:
    """How pixels in [0, 255] map onto [lo, hi] with one mean/std for all channels."""
    std = 255.0 / (hi - lo) if hi > lo else 1.0
    mean = -lo * std
    if abs(mean) < 1e-6:
        return f"x/{_fmt(std)}"
    sign = "-" if mean > 0 else "+"
    return f"(x{sign}{_fmt(abs(mean))})/{_fmt(std)}"


def _fmt(value: float) -> str:
    return f"{value:.4g}"
