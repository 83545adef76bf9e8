"""Fuzzing the .tflite reader and the static lint: damaged bytes never crash them.

Seeds are small valid models built once per module without TensorFlow (the synthetic
postprocess model, the same with metadata and associated files, and a lint-clean image
model with tflite-support metadata). Hypothesis mutates them (bit flips, byte writes,
insertions, deletions, truncations, 32-bit "interesting" values, splices of two seeds)
or draws random buffers. Properties:

- ``inspect_model`` returns a ModelInfo or raises exactly TFLiteFileProblem (one line);
- ``lint_bytes`` with the static checks only (``gpu=False, runtime=False``: no child
  process, no TensorFlow) returns a result the CLI can print and serialise, or raises a
  LiteshipError; never another exception;
- every input is handled within 2 s (hypothesis deadline; pytest-timeout as the backstop
  against a real hang).

CI size: 2,000 inputs in all (600 + 600 + 600 + 200). The long run is ``scripts/fuzz_tflite.py``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liteship.errors import LiteshipError, TFLiteFileProblem
from liteship.tflite_inspect import ModelInfo, inspect_model
from liteship.validation import lint
from tests.fixtures.bad_seeds import INTERESTING_U32, seed_models

pytestmark = pytest.mark.timeout(300)

SEEDS: dict[str, bytes] = seed_models()
NAMES = sorted(SEEDS)
FUZZ = settings(
    max_examples=600,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: Any) -> bytes:
    """A seed model with 1-6 mutations, or a splice of two seeds."""
    data = bytearray(SEEDS[draw(st.sampled_from(NAMES))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "byte", "u32", "insert", "delete", "truncate", "splice")))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "u32":
            pos -= pos % 4  # flatbuffer offsets and lengths are aligned 32-bit words
            data[pos : pos + 4] = draw(st.sampled_from(INTERESTING_U32 + (len(data), len(data) - pos))).to_bytes(4, "little", signed=False)[:4]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = SEEDS[draw(st.sampled_from(NAMES))]
            data = data[:pos] + other[draw(st.integers(0, len(other) - 1)) :]
    return bytes(data)


random_buffers = st.one_of(
    st.binary(max_size=4096),
    st.binary(min_size=4, max_size=4096).map(lambda b: b[:4] + b"TFL3" + b[4:]),
)


def _inspect(data: bytes) -> ModelInfo | None:
    try:
        info = inspect_model(data, source="fuzz.tflite")
    except TFLiteFileProblem as problem:
        assert type(problem) is TFLiteFileProblem
        assert "\n" not in problem.message and problem.message.startswith("fuzz.tflite ")
        return None
    json.dumps(info.to_dict(), allow_nan=True)  # the report and --json serialise it
    return info


def _lint(data: bytes) -> None:
    try:
        result = lint.lint_bytes(data, source="fuzz.tflite", gpu=False, runtime=False)
    except TFLiteFileProblem:
        return
    except LiteshipError as problem:  # any other documented error is acceptable, a crash is not
        assert problem.exit_code != 1
        return
    assert set(result.contracts) == set(lint.C.NAMES)
    json.dumps(result.to_dict())  # what `liteship lint --json` prints
    lint.format_table(result)  # what `liteship lint` prints


def test_seeds_are_valid_models_that_lint() -> None:
    for name, data in SEEDS.items():
        assert isinstance(inspect_model(data), ModelInfo), name
        lint.lint_bytes(data)
    assert lint.lint_bytes(SEEDS["image_with_metadata"]).ok


@FUZZ
@given(data=mutated())
def test_reader_on_mutated_models(data: bytes) -> None:
    _inspect(data)


@FUZZ
@given(data=random_buffers)
def test_reader_on_random_buffers(data: bytes) -> None:
    assert _inspect(data) is None or data[4:8] == b"TFL3"


@FUZZ
@given(data=mutated())
def test_lint_on_mutated_models(data: bytes) -> None:
    _lint(data)


@settings(FUZZ, max_examples=200)
@given(data=random_buffers)
def test_lint_on_random_buffers(data: bytes) -> None:
    _lint(data)
