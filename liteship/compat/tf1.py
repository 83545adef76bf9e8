"""The OD API's TF1 (slim) SSD code, run in-process on TF 2.21 in ``tf.compat.v1`` graph mode.

The OD API 2.8 package still ships the TF1 feature extractors (``ssd_mobilenet_v1``,
``ssd_inception_v2``, ``ssdlite_mobilenet_v2``...) and ``export_tflite_ssd_graph_lib``, but
on TF 2.21 they do not import or build. What stands in the way, and what is done about it,
all in memory (nothing in site-packages is edited):

1. ``builders.model_builder`` registers the slim extractors only when TF2 behaviour is off
   at import time (``tf_version.is_tf1()``), and picks Keras vs slim hyperparams at call
   time. A second copy of the OD API's own ``model_builder`` (and of the exporter library
   that calls it) is loaded from its file while ``tensorflow.python.tf2`` reports TF1, and
   :func:`tf1_behaviour` reports TF1 while a model is built. Eager execution, resource
   variables and the rest of TF2 stay on: the graph is built inside a ``tf.Graph``.
2. ``tensorflow.contrib`` does not exist: ``matchers.bipartite_matcher`` and the NASNet
   nets import it at module level -> a stand-in package that fails with a clear message if
   anything actually uses it (SSDs never do: bipartite matching and NASNet are not in any
   TFLite SSD).
3. the slim nets import ``nets.*`` (tensorflow/models research/slim): the OD API package
   ships them as ``object_detection.nets`` -> ``nets`` is aliased to it.
4. ``np.int`` was removed in NumPy 2; ``nets/mobilenet/mobilenet_v3.py`` still calls it ->
   set to ``int`` while a TF1 model is built, removed afterwards.
5. ``tf.compat.v1.layers`` lazily imports ``tf_keras.legacy_tf_layers``, which tf-keras
   2.21 ships as ``tf_keras.src.legacy_tf_layers`` -> aliased.
6. ``export_tflite_ssd_graph_lib`` imports ``tensorflow.tools.graph_transforms`` (gone in
   TF 2) for one transform, ``strip_unused_nodes`` ->
   ``tf.compat.v1.graph_util.extract_sub_graph`` does that job (see
   :func:`_strip_unused_nodes`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from liteship import odapi
from liteship.errors import EnvironmentProblem

_KERAS_OLD = "tf_keras.legacy_tf_layers"
_KERAS_NEW = "tf_keras.src.legacy_tf_layers"


class _Unavailable(types.ModuleType):
    """A package TF 2 no longer has. Importing from it works (every attribute is another
    stand-in, so ``from tensorflow.contrib import quantize`` succeeds); calling anything in
    it raises :class:`EnvironmentProblem` naming what was used."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(name)
        self.__path__: list[str] = []  # a package: ``from tensorflow.contrib.x import y`` resolves
        self._why = why

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return importlib.import_module(f"{self.__name__}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise EnvironmentProblem(f"{self.__name__} is not available on TF 2: {self._why}")


class _AliasFinder(importlib.abc.MetaPathFinder):
    """``nets.x`` -> ``object_detection.nets.x``; ``tf_keras.legacy_tf_layers.x`` -> ``tf_keras.src...``;
    ``tensorflow.contrib.x`` -> an :class:`_Unavailable` stand-in."""

    ALIASES = {"nets": "object_detection.nets", _KERAS_OLD: _KERAS_NEW}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "tensorflow.contrib" or fullname.startswith("tensorflow.contrib."):
            return importlib.machinery.ModuleSpec(fullname, _ContribLoader(), is_package=True)
        if fullname == _GRAPH_TRANSFORMS:
            return importlib.machinery.ModuleSpec(fullname, _GraphTransformsLoader())
        for old, new in self.ALIASES.items():
            if fullname == old or fullname.startswith(old + "."):
                return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new + fullname[len(old):]))
        return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self.target)  # the same module object under both names

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class _ContribLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _Unavailable(spec.name, "tf.contrib was removed in TF 2.0; no TFLite SSD needs it")

    def exec_module(self, module: types.ModuleType) -> None:
        pass


_GRAPH_TRANSFORMS = "tensorflow.tools.graph_transforms"


class _GraphTransformsLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name, "TF 1's graph_transforms, as far as the OD API's TFLite export uses it")
        module.TransformGraph = _strip_unused_nodes  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _install_aliases() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())


@contextlib.contextmanager
def tf1_behaviour() -> Iterator[None]:
    """While inside: the OD API sees TF1 (``tf_version.is_tf1()``) and ``np.int`` exists."""
    import numpy as np
    from tensorflow.python import tf2

    _install_aliases()
    was_enabled = tf2.enabled()
    had_np_int = "int" in np.__dict__
    tf2.disable()
    if not had_np_int:
        np.int = int  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            # slim layers call Keras 1 ``layer.apply``: a warning per layer, nothing to act on
            warnings.filterwarnings("ignore", message="`layer.apply` is deprecated")
            yield
    finally:
        if was_enabled:
            tf2.enable()
        if not had_np_int:
            del np.int  # type: ignore[attr-defined]


_modules: dict[str, types.ModuleType] = {}


def _load_copy(name: str, **overrides: Any) -> types.ModuleType:
    """A private copy of ``object_detection.<name>``, executed with TF1 behaviour on."""
    if name in _modules:
        return _modules[name]
    # The shared OD API modules are imported first, with TF2 behaviour: the copy (and e.g.
    # ``exporter``) import them, and modules imported while TF1 behaviour is on would
    # register the TF1 tables for the whole process.
    odapi.model_builder()
    spec = importlib.util.find_spec(f"object_detection.{name}")
    if spec is None or spec.origin is None:
        raise EnvironmentProblem(f"the OD API has no object_detection.{name}; reinstall with the README's Quick start")
    copy_spec = importlib.util.spec_from_file_location(f"liteship_tf1.{name}", spec.origin)
    assert copy_spec is not None and copy_spec.loader is not None
    module = importlib.util.module_from_spec(copy_spec)
    module.__dict__.update(overrides)
    with tf1_behaviour():
        try:
            copy_spec.loader.exec_module(module)
        except ImportError as exc:
            raise EnvironmentProblem(f"cannot load the OD API's TF1 {name}: {exc}") from exc
    _modules[name] = module
    return module


def model_builder() -> types.ModuleType:
    """The OD API's ``builders.model_builder`` as TF1 sees it (slim feature extractors)."""
    return _load_copy("builders.model_builder")


def feature_extractor_types() -> frozenset[str]:
    """The TF1 SSD feature-extractor types the OD API registers (``ssd_mobilenet_v1``...)."""
    return frozenset(model_builder().SSD_FEATURE_EXTRACTOR_CLASS_MAP)


def export_lib() -> types.ModuleType:
    """``export_tflite_ssd_graph_lib`` bound to the TF1 model_builder (its ``TransformGraph``
    is :func:`_strip_unused_nodes`, from the ``tensorflow.tools.graph_transforms`` stand-in)."""
    if "export_tflite_ssd_graph_lib" not in _modules:
        lib = _load_copy("export_tflite_ssd_graph_lib")
        lib.model_builder = model_builder()
        lib.graph_rewriter_builder = graph_rewriter_builder()
    return _modules["export_tflite_ssd_graph_lib"]


def graph_rewriter_builder() -> types.ModuleType:
    """``builders.graph_rewriter_builder`` for TF 2: ``build`` gives the QAT range variables
    (:mod:`liteship.compat.quantize`; the FakeQuant wiring is done on the frozen graph)."""
    from liteship.compat import quantize

    module = types.ModuleType("liteship_tf1.graph_rewriter_builder")
    module.build = quantize.graph_rewrite_fn  # type: ignore[attr-defined]
    return module


def _strip_unused_nodes(graph_def: Any, inputs: Sequence[str], outputs: Sequence[str], transforms: Sequence[str]) -> Any:
    """``TransformGraph(graph_def, [], outputs, ["strip_unused_nodes"])``: keep what the
    outputs depend on. (With no input names, strip_unused_nodes changes no placeholder.)"""
    import tensorflow as tf

    if list(transforms) != ["strip_unused_nodes"] or list(inputs):
        raise EnvironmentProblem(f"graph transforms {list(transforms)} are not available on TF 2")
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(outputs))
