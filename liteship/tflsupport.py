"""Import tflite-support's metadata modules safely (the only place that does).

Two traps, both handled here:

* ``from tflite_support.metadata_writers import ...`` imports ``tflite_support.task``, whose
  pybind types clash with TensorFlow's in one process
  (``generic_type: cannot initialize type "StatusCode"``) -> import the
  ``tensorflow_lite_support.metadata...`` modules directly.
* ``_pywrap_metadata_version`` links ``libusb-1.0.so.0``, absent on many machines ->
  load the copy that the ``libusb-package`` wheel ships, with RTLD_GLOBAL, before the
  extension is imported (the dynamic linker then resolves the soname to it).
"""

from __future__ import annotations

import ctypes
import types

from liteship.errors import EnvironmentProblem

_loaded = False


def preload_libusb() -> None:
    global _loaded
    if _loaded:
        return
    try:
        ctypes.CDLL("libusb-1.0.so.0", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        try:
            import libusb_package

            path = libusb_package.get_library_path()
            if path is None:
                raise OSError("libusb_package has no library for this platform")
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except (ImportError, OSError) as exc:
            raise EnvironmentProblem(
                f"libusb-1.0 is missing ({exc}); tflite-support's metadata module needs it: "
                "reinstall with the README's Quick start line 1 or `apt-get install libusb-1.0-0`"
            ) from exc
    _loaded = True


def metadata() -> types.ModuleType:
    """``tensorflow_lite_support.metadata.python.metadata`` (MetadataDisplayer, populator)."""
    preload_libusb()
    from tensorflow_lite_support.metadata.python import metadata as md

    return md


def object_detector_writer() -> types.ModuleType:
    preload_libusb()
    from tensorflow_lite_support.metadata.python.metadata_writers import object_detector

    return object_detector


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("tflite-support")
