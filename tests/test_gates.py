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


#: the columns of docs/parity.md's "The limits" table, as Tolerance fields
DOCUMENTED_COLUMNS = {
    "box max_rel": "box_encodings_max_rel", "box PSNR dB": "box_encodings_min_psnr_db",
    "class max_rel": "class_scores_max_rel", "class PSNR dB": "class_scores_min_psnr_db",
    "recall": "min_recall", "precision": "min_precision", "class agr.": "min_class_agreement",
    "mean IoU": "min_mean_iou", "mean score delta": "max_mean_score_delta", "score tie": "score_tie",
}


def _documented_limits() -> dict[str, dict[str, float | None]]:
    """docs/parity.md's limits table: variant -> Tolerance field -> number."""
    lines = (Path(__file__).resolve().parents[1] / "docs" / "parity.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("## The limits")
    rows = [line for line in lines[start:] if line.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    header, body = cells[0], [c for c in cells[2:] if c and c[0]]
    table: dict[str, dict[str, float | None]] = {}
    for row in body:
        if len(row) != len(header):
            break
        table[row[0]] = {DOCUMENTED_COLUMNS[h]: None if v == "-" else float(v) for h, v in zip(header[1:], row[1:])}
    return table


def test_defaults_are_the_documented_gates() -> None:
    g = gates.Gates()
    assert g.max_map50_drop == 0.02 and g.min_map50 is None
    assert g.contracts == ("bundled-app", "task-library", "mediapipe", "litert-compiled")
    documented = _documented_limits()
    assert set(documented) == {v.value for v in g.tolerances}
    for variant, tolerance in g.tolerances.items():
        judged = {field: getattr(tolerance, field) for field in DOCUMENTED_COLUMNS.values()}
        assert judged == documented[variant.value], variant
        assert tolerance.box_encodings_max_abs is None and tolerance.class_scores_max_abs is None  # no absolute cap by default


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
