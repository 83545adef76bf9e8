"""How an app must turn a photo into the model's input, and boxes back into photo pixels.

Two resizes exist among OD API SSDs that TFLite can serve:

* ``stretch`` -- ``fixed_shape_resizer``: the photo is resized to H x W ignoring its aspect
  ratio; normalized boxes map to the photo by multiplying y by its height, x by its width.
* ``letterbox`` -- ``keep_aspect_ratio_resizer { pad_to_max_dimension: true }`` (every
  EfficientDet zoo config): the OD API resizes the photo keeping its aspect ratio so that
  its longer side is ``max_dimension`` (``min_dimension`` = ``max_dimension`` in the zoo
  configs; in general :func:`fitted_size`) and pads the bottom and right to a
  ``max_dimension`` square -- AFTER the feature extractor's normalization
  (``SSDMetaArch.preprocess`` normalizes, then resizes), so the padding is 0 (or
  ``per_channel_pad_value``) in normalized units: in pixels, the mean colour
  ``mean + pad * std`` (not black). The TFLite model is exported at that square size; the
  app must do the same resize and padding, and the boxes it gets are relative to the square:
  ``y_pixel = y * S * photo_height / new_height`` (same for x), which is
  ``y * max(photo height, width)`` when the longer side was fitted to S.

This module is the app's side of that contract, written out (NumPy + Pillow), so that
parity can prove it against the model's own ``preprocess``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

STRETCH = "stretch"
LETTERBOX = "letterbox"


@dataclass(frozen=True)
class ResizeSpec:
    """The resize the model was trained with, as the app must reproduce it."""

    mode: str  # STRETCH | LETTERBOX
    height: int  # model input height (the padded square side for letterbox)
    width: int
    #: letterbox only: keep_aspect_ratio_resizer min/max dimension, the pad value per channel
    #: in normalized units (per_channel_pad_value, default 0) and the same in pixels (what the
    #: app fills with: mean + pad * std, known once the normalization is)
    min_dimension: int | None = None
    max_dimension: int | None = None
    pad_value: tuple[float, ...] = (0.0, 0.0, 0.0)
    pad_pixel: tuple[float, ...] | None = None

    @property
    def letterbox(self) -> bool:
        return self.mode == LETTERBOX

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pad_value"] = list(self.pad_value)
        d["pad_pixel"] = list(self.pad_pixel) if self.pad_pixel is not None else None
        d["app"] = app_instructions(self)
        return d

    def with_normalization(self, mean: tuple[float, ...], std: tuple[float, ...]) -> ResizeSpec:
        """The spec with ``pad_pixel`` resolved: the pixel that normalizes to ``pad_value``."""
        import dataclasses

        channels = max(len(self.pad_value), len(mean), len(std))
        pick = lambda t, i: t[i] if len(t) > 1 else t[0]  # noqa: E731
        pixel = tuple(round(pick(mean, i) + pick(self.pad_value, i) * pick(std, i), 3) for i in range(channels))
        return dataclasses.replace(self, pad_pixel=pixel)


def fitted_size(spec: ResizeSpec, height: int, width: int) -> tuple[int, int]:
    """(new_height, new_width) of a photo after the keep-aspect resize: the OD API's
    ``resize_to_range`` asks ``tf.image.resize_images(preserve_aspect_ratio=True)`` for
    (min_dimension, max_dimension) oriented like the photo, which scales by the smaller of
    the two ratios and rounds half to even."""
    assert spec.min_dimension is not None and spec.max_dimension is not None
    small, large = min(height, width), max(height, width)
    scale = min(spec.min_dimension / small, spec.max_dimension / large)
    return int(np.rint(height * scale)), int(np.rint(width * scale))


def letterbox(rgb: np.ndarray, spec: ResizeSpec) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 HxWx3 photo -> (the padded ``height x width`` uint8 image, (new_h, new_w)).

    Bilinear resize (Pillow; Android's ``Bitmap.createScaledBitmap(..., filter=true)`` is
    bilinear too), the photo in the top-left corner, the rest ``pad_pixel`` (rounded to uint8)."""
    if spec.pad_pixel is None:
        raise ValueError("letterbox needs the pad colour: ResizeSpec.with_normalization(mean, std)")
    new_h, new_w = fitted_size(spec, *rgb.shape[:2])
    resized = np.asarray(Image.fromarray(rgb, "RGB").resize((new_w, new_h), Image.Resampling.BILINEAR))
    out = np.empty((spec.height, spec.width, 3), np.uint8)
    out[...] = np.asarray(np.clip(np.rint(spec.pad_pixel), 0, 255), np.uint8)
    out[:new_h, :new_w] = resized
    return out, (new_h, new_w)


def boxes_to_pixels(boxes: np.ndarray, spec: ResizeSpec, height: int, width: int,
                    fitted: tuple[int, int] | None = None) -> np.ndarray:
    """Normalized ``[ymin, xmin, ymax, xmax]`` model boxes -> pixels of the ``height x width``
    photo, same layout, not clipped. ``fitted``: the (new_h, new_w) the photo was resized to
    (default: :func:`fitted_size`)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not spec.letterbox:
        return b * [height, width, height, width]
    new_h, new_w = fitted if fitted is not None else fitted_size(spec, height, width)
    sy, sx = spec.height * height / new_h, spec.width * width / new_w
    return b * [sy, sx, sy, sx]


def app_instructions(spec: ResizeSpec) -> str:
    """What the app must do, in words (model description metadata and the report)."""
    if not spec.letterbox:
        return f"resize the image to {spec.width}x{spec.height} (stretch: the aspect ratio is not kept)"
    pad = spec.pad_pixel
    if pad is None:
        pad_text = "the colour that normalizes to 0 (the normalization mean)"
    else:
        pad_text = f"pixel value {pad[0]:g}" if len(set(pad)) == 1 else f"RGB ({', '.join(f'{v:g}' for v in pad)})"
        pad_text += " (the normalization mean: the model pads after normalizing, with 0)" if not any(spec.pad_value) else ""
    if spec.min_dimension == spec.max_dimension:
        fit = f"resize the image so that its longer side is {spec.max_dimension} px, keeping the aspect ratio"
        scale = "multiply y and x by max(image height, image width)"
    else:
        fit = (f"resize the image keeping the aspect ratio so that its shorter side is {spec.min_dimension} px, "
               f"or its longer side {spec.max_dimension} px if that is smaller")
        scale = (f"multiply y by {spec.height} * image height / resized height and x by "
                 f"{spec.width} * image width / resized width")
    return (f"letterbox: {fit}, put it in the top-left corner of a {spec.width}x{spec.height} image and fill the "
            f"bottom and right with {pad_text}, then normalize. Boxes are relative to that padded image: {scale} "
            "to get image pixels, then clip to the image")
