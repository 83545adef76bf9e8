"""The desktop reference: the OD API model's own preprocess, raw heads and postprocess.

``export/reference/`` is a SavedModel with the signatures ``preprocess`` (uint8-valued RGB
-> the model's input), ``heads`` (raw box encodings and class scores, the tensors that enter
TFLite_Detection_PostProcess) and ``detect`` (the OD API's postprocess with the op's NMS
settings), written by :mod:`liteship.converter.export`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Reference:
    def __init__(self, reference_dir: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        loaded = tf.saved_model.load(str(reference_dir))
        self._loaded = loaded  # keep the functions' owner alive
        self.preprocess = loaded.signatures["preprocess"]
        self.heads = loaded.signatures["heads"]
        self.detect = loaded.signatures["detect"]

    def run(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(preprocessed input, raw heads, detections with normalized (ymin, xmin, ymax, xmax) boxes)."""
        tf = self._tf
        pre = self.preprocess(image=tf.constant(rgb[None].astype(np.float32)))["preprocessed"]
        heads = {k: v.numpy() for k, v in self.heads(preprocessed=pre).items()}
        det = self.detect(preprocessed=pre)
        raw_count = float(det["num_detections"][0])
        n = int(raw_count) if np.isfinite(raw_count) else 0
        dets = {
            "boxes": det["boxes"][0, :n].numpy(),
            # the OD API's postprocess gives 0-based class indices, like the TFLite op
            "classes": det["classes"][0, :n].numpy().astype(np.int64),
            "scores": det["scores"][0, :n].numpy(),
        }
        return pre.numpy(), heads, dets
