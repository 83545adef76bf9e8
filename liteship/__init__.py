"""liteship: ship TensorFlow Object Detection API SSD detectors to Android."""

import os as _os

# The OD API is Keras 2 code: TensorFlow must see this before it is first imported
# (without it: "module 'keras._tf_keras.keras.layers' has no attribute 'experimental'").
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from liteship.api import LintReport, RunResult, lint, run  # noqa: E402  (after the environment is set)

__all__ = ["LintReport", "RunResult", "__version__", "lint", "run"]
