"""The desktop reference: the OD API model's own preprocess, raw heads and postprocess.

``export/reference/`` is a SavedModel with the signatures ``preprocess`` (uint8-valued RGB
-> the model's input), ``heads`` (raw box encodings and class scores, the tensors that enter
TFLite_Detection_PostProcess) and ``detect`` (the OD API's postprocess with the op's NMS
settings), written by :mod:`liteship.converter.export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ReferenceRun:
    """One image through the reference."""

    preprocessed: np.ndarray
    #: (height, width) of the photo inside the network input: the input size for a
    #: stretching resizer, the resized photo's size inside the padded square for a letterbox
    true_image_shape: tuple[int, int]
    heads: dict[str, np.ndarray]
    #: normalized (ymin, xmin, ymax, xmax) to the network input, unclipped (the op's convention)
    detections: dict[str, np.ndarray]


class Reference:
    def __init__(self, reference_dir: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        loaded = tf.saved_model.load(str(reference_dir))
        self._loaded = loaded  # keep the functions' owner alive
        self.preprocess = loaded.signatures["preprocess"]
        self.heads = loaded.signatures["heads"]
        self.detect = loaded.signatures["detect"]

    def run_full(self, rgb: np.ndarray) -> ReferenceRun:
        tf = self._tf
        out = self.preprocess(image=tf.constant(rgb[None].astype(np.float32)))
        pre = out["preprocessed"]
        true_shape = out["true_image_shape"].numpy().reshape(-1)
        heads = {k: v.numpy() for k, v in self.heads(preprocessed=pre).items()}
        det = self.detect(preprocessed=pre)
        raw_count = float(det["num_detections"][0])
        n = int(raw_count) if np.isfinite(raw_count) else 0
        dets = {
            "boxes": det["boxes"][0, :n].numpy(),
            # the OD API's postprocess gives 0-based class indices, like the TFLite op
            "classes": np.nan_to_num(det["classes"][0, :n].numpy()).astype(np.int64),
            "scores": det["scores"][0, :n].numpy(),
        }
        return ReferenceRun(pre.numpy(), (int(true_shape[0]), int(true_shape[1])), heads, dets)

    def run(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(preprocessed input, raw heads, detections with normalized (ymin, xmin, ymax, xmax) boxes)."""
        r = self.run_full(rgb)
        return r.preprocessed, r.heads, r.detections
