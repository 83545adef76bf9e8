"""Gates: defaults, TOML overrides, refusal of unknown keys (fast, no TF)."""

from __future__ import annotations

from pathlib import Path

import pytest

from liteship.errors import UsageProblem
from liteship.types import Variant
from liteship.validation import gates
from liteship.validation.gates import TOLERANCES


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gates.toml"
    p.write_text(text)
    return p


def test_defaults_are_the_documented_gates() -> None:
    g = gates.Gates()
    assert g.max_map50_drop == 0.02 and g.min_map50 is None
    assert g.contracts == ("bundled-app", "task-library", "mediapipe", "litert-compiled")
    assert g.tolerances == TOLERANCES


def test_toml_overrides_accuracy_contracts_and_one_tolerance(tmp_path: Path) -> None:
    g = gates.load(_toml(tmp_path, """
[accuracy]
max_map50_drop = 0.05
min_map50 = 0.6
[lint]
contracts = ["litert-sample"]
[parity.int8]
min_recall = 0.5
"""))
    assert g.max_map50_drop == 0.05 and g.min_map50 == 0.6
    assert g.contracts == ("litert-sample",)
    assert g.tolerances[Variant.INT8].min_recall == 0.5
    assert g.tolerances[Variant.INT8].min_precision == TOLERANCES[Variant.INT8].min_precision
    assert g.tolerances[Variant.FP32] == TOLERANCES[Variant.FP32]


@pytest.mark.parametrize("text, needle", [
    ("[accuracy]\nmax_map_drop = 0.1\n", "max_map_drop"),
    ("[parity.int4]\nmin_recall = 0.5\n", "int4"),
    ("[parity.int8]\nmin_recal = 0.5\n", "min_recal"),
    ("[lint]\ncontracts = ['my-app']\n", "my-app"),
    ("[accuracy]\nmin_map50 = 'high'\n", "must be a number"),
    ("[accuracy\n", "not valid TOML"),
])
def test_bad_gates_files_are_refused_naming_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(UsageProblem) as info:
        gates.load(_toml(tmp_path, text))
    assert needle in info.value.message


def test_missing_gates_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageProblem):
        gates.load(tmp_path / "nope.toml")
