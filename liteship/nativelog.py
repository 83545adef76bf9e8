"""Keep TensorFlow's C++ and absl chatter off the user's terminal (unless --debug).

The converter and the interpreter print from C++ straight to file descriptor 2
("fully_quantize: 0, inference_type: 6 ...", "Created TensorFlow Lite XNNPACK delegate"),
which Python-level logging settings cannot reach. :func:`captured` redirects fd 2 to a
temporary file for the duration of a call and hands back what was printed, so a failure
can quote it.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

_enabled = False


def enabled() -> bool:
    """Whether native output is captured in this process (workers inherit the parent's choice)."""
    return _enabled


def quiet(enabled: bool = True) -> None:
    """Turn capturing on for the process (the CLI does, unless --debug)."""
    global _enabled
    _enabled = enabled
    if enabled:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:
            pass


class Captured:
    text: str = ""

    def tail(self, lines: int = 5) -> str:
        return " | ".join(line.strip() for line in self.text.strip().splitlines()[-lines:])


@contextmanager
def captured() -> Iterator[Captured]:
    result = Captured()
    if not _enabled:
        yield result
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield result
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            result.text = tmp.read().decode("utf-8", "replace")
