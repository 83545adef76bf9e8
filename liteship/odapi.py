"""The only module that imports the TensorFlow Object Detection API.

Two things stand between the OD API 2.8.0.post1 and TF 2.21, and both are handled here,
in memory, at import time (nothing in site-packages is edited):

1. its ``object_detection/protos/*_pb2.py`` are protoc-3 gencode -> rebuilt from their
   embedded descriptors by :mod:`liteship.protocompat`;
2. ``builders.model_builder`` imports ``meta_architectures.deepmac_meta_arch``, which
   imports ``tensorflow_io`` at module level although only DeepMAC uses it -> when
   ``tensorflow_io`` is not installed, a stand-in module is registered that fails with a
   clear message if anything actually uses it.

Everything else in liteship gets OD API modules through the accessors below.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

from liteship import protocompat
from liteship.errors import EnvironmentProblem


class _MissingTensorflowIO(types.ModuleType):
    """Stands in for ``tensorflow_io`` (imported, never used, by the OD API's DeepMAC)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise EnvironmentProblem(
            "tensorflow_io is not installed; it is only needed for DeepMAC models, "
            "which cannot be exported to TFLite anyway. Train an SSD model instead."
        )


def _prepare() -> None:
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise EnvironmentProblem(
            "TensorFlow was imported before liteship with TF_USE_LEGACY_KERAS unset; "
            "the OD API needs Keras 2. Set TF_USE_LEGACY_KERAS=1 or import liteship first."
        )
    protocompat.install(["object_detection.protos."])
    try:
        importlib.import_module("tensorflow_io")
    except ImportError:
        sys.modules["tensorflow_io"] = _MissingTensorflowIO("tensorflow_io")


_prepare()


def module(name: str) -> types.ModuleType:
    """Import ``object_detection.<name>`` (e.g. ``builders.model_builder``)."""
    try:
        return importlib.import_module(f"object_detection.{name}")
    except ImportError as exc:  # pragma: no cover - environment problem
        raise EnvironmentProblem(
            f"cannot import the OD API module object_detection.{name}: {exc}. "
            "Reinstall with the README's Quick start line 1."
        ) from exc


def config_util() -> types.ModuleType:
    return module("utils.config_util")


def label_map_util() -> types.ModuleType:
    return module("utils.label_map_util")


def model_builder() -> types.ModuleType:
    return module("builders.model_builder")


def export_tflite_lib() -> types.ModuleType:
    return module("export_tflite_graph_lib_tf2")


def pipeline_pb2() -> types.ModuleType:
    return module("protos.pipeline_pb2")


def string_int_label_map_pb2() -> types.ModuleType:
    return module("protos.string_int_label_map_pb2")


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("tf-models-research-object-detection")
