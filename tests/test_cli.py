"""CLI usage errors: documented exit code 2, one message, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.reports import assert_only_reports


def _usage(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    with pytest.raises(SystemExit) as info:  # argparse-level errors exit 2 through SystemExit
        run_cli(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


def _refused(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("liteship: error:")
    for needle in needles:
        assert needle in err


def test_two_model_inputs_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["run", "--saved-model", str(tmp_path), "--frozen-graph", str(tmp_path / "g.pb"), "--out", str(tmp_path / "o")],
             capsys, "one model input")
    assert not (tmp_path / "o").exists()


def test_pipeline_config_needs_checkpoint_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["run", "--pipeline-config", str(tmp_path / "p.config")], capsys, "--checkpoint-dir")


def test_checkpoint_needs_checkpoint_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["run", "--saved-model", str(tmp_path), "--checkpoint", "ckpt-1"], capsys, "--checkpoint-dir")


def test_missing_label_map_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["run", "--saved-model", str(tmp_path), "--label-map", str(tmp_path / "nope.pbtxt")], capsys, "nope.pbtxt")


def test_images_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "one.jpg"
    f.write_bytes(b"x")
    _refused(["run", "--saved-model", str(tmp_path), "--images", str(f)], capsys, "not a folder")


def test_output_path_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.write_text("keep me")
    (tmp_path / "sm").mkdir()
    _refused(["run", "--saved-model", str(tmp_path / "sm"), "--out", str(out), "--variants", "fp32"], capsys, "is a file")
    assert out.read_text() == "keep me"


def test_unwritable_output_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write to read-only folders; permission refusal cannot be observed")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    _refused(["run", "--saved-model", str(tmp_path), "--out", str(ro / "out")], capsys, "not writable")


def test_unknown_variant_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    _usage(["run", "--variants", "fp32,int4"], capsys, "int4", "fp32, fp16, dynamic, int8")


def test_bad_input_size_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    _usage(["run", "--input-size", "300"], capsys, "HEIGHTxWIDTH")


def test_threshold_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    _usage(["run", "--score-threshold", "1.5"], capsys, "[0, 1]")


def test_norm_mean_without_std(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["run", "--saved-model", str(tmp_path), "--norm-mean", "127.5"], capsys, "--norm-std")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([]) == 2
    assert "usage: liteship" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "convert", "lint", "deploy"])
def test_help_documents_every_exit_code(command: str) -> None:
    """The help text is generated from liteship.errors.EXIT_CODES: every code, its meaning."""
    from liteship.errors import EXIT_CODES

    out = subprocess.run([sys.executable, "-m", "liteship", command, "--help"], capture_output=True, text=True,
                         check=True).stdout
    text = " ".join(out.split())
    for code, meaning in EXIT_CODES:
        assert f"{code} {' '.join(meaning.replace('`', '').split())}" in text, code


def test_readme_and_docs_exit_code_tables_match_the_code() -> None:
    """README's exit-code table lists exactly liteship.errors.EXIT_CODES, same words."""
    import re

    from liteship.errors import EXIT_CODES, LiteshipError

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.M))
    assert rows == {str(code): text for code, text in EXIT_CODES}
    def classes(base: type) -> list[type]:
        return [base, *[c for sub in base.__subclasses__() for c in classes(sub)]]
    assert {c.exit_code for c in classes(LiteshipError)} <= {code for code, _ in EXIT_CODES}


def test_saved_model_without_postprocess_composite_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sm = tmp_path / "sm"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\x08\x01 detection_boxes")
    lm = tmp_path / "l.pbtxt"
    lm.write_text("item { id: 1 name: 'a' }\n")
    assert run_cli(["run", "--saved-model", str(sm), "--label-map", str(lm), "--out", str(tmp_path / "o"), "--quiet"]) == 13
    err = capsys.readouterr().err
    assert "exporter_main_v2" in err and "Traceback" not in err
    assert_only_reports(tmp_path / "o", 13)
