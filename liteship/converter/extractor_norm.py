"""Which normalization an exported graph expects, read from its feature extractor.

Inputs (b) and (c) carry no preprocessing: the exported graph takes an already normalized
image. The normalization it was trained with is fixed by the OD API feature extractor
class, whose name survives in the graph's node names:

* TF2 SavedModels name their Keras layers after the class
  (``SSDMobileNetV2KerasFeatureExtractor`` -> ``ssd_mobile_net_v2_keras_feature_extractor``);
  we look the class up in the OD API's own registry
  (``model_builder.SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP``);
* TF1 frozen graphs scope their nodes ``FeatureExtractor/<backbone>/...``; the OD API has
  no registry of those scopes on TF2, so a small table maps them to the Keras class of the
  same family (same ``preprocess``).

The mean/std are then read off that class's own ``preprocess`` (an affine fit, as for
input (a)), so nothing about the OD API's preprocessing is restated here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteship.types import Normalization

_TF2_NAME = re.compile(rb"(ssd_[a-z0-9_]+?_feature_extractor)")
_TF1_SCOPE = re.compile(rb"FeatureExtractor/([A-Za-z0-9_]+)/")

#: TF1 backbone scope -> the OD API Keras feature-extractor type with the same preprocess
TF1_SCOPES: dict[str, str] = {
    "MobilenetV1": "ssd_mobilenet_v1_keras",
    "MobilenetV2": "ssd_mobilenet_v2_keras",
    "MobilenetV3": "ssd_mobilenet_v2_keras",  # (2/255)x - 1 like every MobileNet
    "MobilenetEdgeTPU": "ssd_mobilenet_v2_keras",
    "resnet_v1_50": "ssd_resnet50_v1_fpn_keras",
    "resnet_v1_101": "ssd_resnet101_v1_fpn_keras",
    "resnet_v1_152": "ssd_resnet152_v1_fpn_keras",
}


@dataclass(frozen=True)
class ExtractorNormalization:
    feature_extractor: str  # the OD API class name
    normalization: Normalization


def from_graph(graph_bytes: bytes) -> ExtractorNormalization | None:
    """The feature extractor named in a SavedModel's / frozen graph's bytes, and its mean/std."""
    cls = _class_in(graph_bytes)
    if cls is None:
        return None
    norm = _probe(cls)
    return None if norm is None else ExtractorNormalization(cls.__name__, norm)


def for_type(feature_extractor_type: str) -> Normalization | None:
    """The mean/std of the OD API feature extractor named in a pipeline.config
    (``model.ssd.feature_extractor.type``), without building the model; None when unknown."""
    cls = _registry().get(feature_extractor_type)
    return None if cls is None else _probe(cls)


def _registry() -> dict[str, Any]:
    from liteship import odapi

    return dict(odapi.module("builders.model_builder").SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP)


def _snake(name: str) -> str:
    from tf_keras.src.utils.generic_utils import to_snake_case  # how Keras names the layers

    return to_snake_case(name)


def _class_in(graph_bytes: bytes) -> Any | None:
    names = Counter(m.decode() for m in _TF2_NAME.findall(graph_bytes))
    if names:
        by_snake = {_snake(cls.__name__): cls for cls in _registry().values()}
        for name, _ in names.most_common():
            if name in by_snake:
                return by_snake[name]
        return None
    scopes = Counter(m.decode() for m in _TF1_SCOPE.findall(graph_bytes))
    for scope, _ in scopes.most_common():
        if scope in TF1_SCOPES:
            return _registry().get(TF1_SCOPES[scope])
    return None


def _probe(cls: Any) -> Normalization | None:
    """Fit (x - mean) / std to the class's ``preprocess`` (which uses no instance state)."""
    import tensorflow as tf

    instance = cls.__new__(cls)  # the constructors build whole backbones; preprocess needs none of it

    def pre(value: float) -> np.ndarray:
        out = cls.preprocess(instance, tf.fill([1, 4, 4, 3], value))
        return np.asarray(out).reshape(-1, 3).mean(axis=0, dtype=np.float64)

    try:
        return fit_affine(pre)
    except Exception:  # noqa: BLE001 - a preprocess that needs instance state: unknown
        return None


def fit_affine(pre: Callable[[float], np.ndarray]) -> Normalization | None:
    """``(x - mean) / std`` per channel from a preprocess probed on constant images
    (``pre(value)`` -> the per-channel output); None when it is not affine."""
    lo, mid, hi = pre(0.0), pre(127.0), pre(255.0)
    slope = (hi - lo) / 255.0
    if np.any(np.abs(slope) < 1e-9) or not np.allclose(lo + slope * 127.0, mid, atol=1e-3):
        return None
    std = 1.0 / slope
    mean = -lo * std
    # float32 arithmetic gives 127.499992 for 127.5: round to what a config can mean
    return Normalization(mean=tuple(round(float(m), 3) for m in mean), std=tuple(round(float(s), 3) for s in std))
