"""The only module that imports the TensorFlow Object Detection API.

Two things stand between the OD API 2.8.0.post1 and TF 2.21, and both are handled here,
in memory, at import time (nothing in site-packages is edited):

1. its ``object_detection/protos/*_pb2.py`` are protoc-3 gencode -> rebuilt from their
   embedded descriptors by :mod:`liteship.protocompat`;
2. ``builders.model_builder`` imports ``meta_architectures.deepmac_meta_arch``, which
   imports ``tensorflow_io`` at module level although only DeepMAC uses it -> when
   ``tensorflow_io`` is not installed, a stand-in module is registered that fails with a
   clear message if anything actually uses it;
3. ``inputs`` (used by the training loop, ``model_lib_v2``) imports
   ``tensorflow.compat.v1.estimator``, removed in TF 2.16, only for TF1 serving input
   receivers -> same kind of stand-in;
4. tf-slim (the OD API's TFRecord decoder) calls ``control_flow_ops.case``/``cond``/
   ``while_loop``/``Assert``, which TF 2.21 moved to their own modules -> the aliases are
   added back (only where missing) when an OD API module is first requested.

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


class _UnusedModule(types.ModuleType):
    """Stands in for a module the OD API imports at module level but liteship never uses."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(name)
        self._why = why

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise EnvironmentProblem(f"{self.__name__} is not available: {self._why}")


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
        sys.modules["tensorflow_io"] = _UnusedModule(
            "tensorflow_io",
            "it is only needed for DeepMAC models, which cannot go to TFLite; train an SSD.",
        )
    # ``from tensorflow.compat.v1 import estimator`` falls back to sys.modules when the
    # attribute is missing (TF >= 2.16 has no estimator).
    sys.modules.setdefault(
        "tensorflow.compat.v1.estimator",
        _UnusedModule("tensorflow.compat.v1.estimator", "TF 2.16+ removed tf.estimator."),
    )


_prepare()


_tf_aliases_done = False


def _add_tf_aliases() -> None:
    global _tf_aliases_done
    if _tf_aliases_done:
        return
    from tensorflow.python.ops import cond, control_flow_assert, control_flow_case, control_flow_ops, while_loop

    moved = {
        "case": control_flow_case.case,
        "cond": cond.cond,
        "while_loop": while_loop.while_loop,
        "Assert": control_flow_assert.Assert,
    }
    for name, fn in moved.items():
        if not hasattr(control_flow_ops, name):
            setattr(control_flow_ops, name, fn)
    _tf_aliases_done = True


def module(name: str) -> types.ModuleType:
    """Import ``object_detection.<name>`` (e.g. ``builders.model_builder``)."""
    _add_tf_aliases()
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
