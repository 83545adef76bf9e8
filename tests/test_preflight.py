"""Every pre-flight refusal: typed error, one-line message naming the fix, exit code,
no traceback, no model written: the output folder holds only the reports saying why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.odapi_models import ssd_config_text
from tests.fixtures.reports import REPORT_FILES, assert_only_reports, assert_reports_agree

LABELS3 = "item { id: 1 name: 'circle' }\nitem { id: 2 name: 'square' }\nitem { id: 3 name: 'triangle' }\n"


def _setup(tmp_path: Path, config: str, labels: str = LABELS3, ckpt: bool = True) -> list[str]:
    (tmp_path / "pipeline.config").write_text(config)
    (tmp_path / "label_map.pbtxt").write_text(labels)
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    if ckpt:  # a checkpoint that resolves (its content only matters once restored)
        (ckpt_dir / "ckpt-1.index").write_bytes(b"")
        (ckpt_dir / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    return [
        "run", "--pipeline-config", str(tmp_path / "pipeline.config"), "--checkpoint-dir", str(ckpt_dir),
        "--label-map", str(tmp_path / "label_map.pbtxt"), "--out", str(tmp_path / "out"), "--quiet",
    ]


def _refused(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    assert run_cli(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("liteship: error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    # a refusal writes the reports (so CI has something to show) and nothing else
    assert_only_reports(tmp_path / "out", code)
    return lines[0]


def test_faster_rcnn_is_refused_with_what_to_train_instead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = "model { faster_rcnn { num_classes: 3 image_resizer { fixed_shape_resizer { height: 96 width: 96 } } } }\n"
    _refused(_setup(tmp_path, config), tmp_path, capsys, 10, "faster_rcnn", "ssd", "train an SSD")


def test_center_net_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(_setup(tmp_path, "model { center_net { num_classes: 3 } }\n"), tmp_path, capsys, 10, "center_net")


def test_keep_aspect_ratio_resizer_is_refused_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ssd_config_text().replace(
        "fixed_shape_resizer { height: 96 width: 96 }", "keep_aspect_ratio_resizer { min_dimension: 96 max_dimension: 128 }"
    )
    _refused(_setup(tmp_path, config), tmp_path, capsys, 10, "keep_aspect_ratio_resizer", "fixed_shape_resizer")


def test_config_syntax_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ssd_config_text().replace("num_classes: 3", "num_classes 3 }", 1)
    line = _refused(_setup(tmp_path, config), tmp_path, capsys, 10, "pipeline.config:")
    assert any(ch.isdigit() for ch in line.split("pipeline.config:")[1][:8])


def test_unknown_config_field_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ssd_config_text().replace("num_classes: 3", "num_classes: 3\n    num_clases: 3", 1)
    _refused(_setup(tmp_path, config), tmp_path, capsys, 10, "num_clases")


def test_num_classes_must_equal_label_map_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = LABELS3 + "item { id: 4 name: 'star' }\n"
    _refused(_setup(tmp_path, ssd_config_text(), labels), tmp_path, capsys, 11, "num_classes", "3", "4")


def test_label_map_ids_start_at_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = "item { id: 0 name: 'background' }\n" + LABELS3
    _refused(_setup(tmp_path, ssd_config_text(), labels), tmp_path, capsys, 11, "id")


def test_label_map_ids_are_unique(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = LABELS3 + "item { id: 3 name: 'star' }\n"
    _refused(_setup(tmp_path, ssd_config_text(), labels), tmp_path, capsys, 11, "3")


def test_missing_checkpoint_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path, ssd_config_text(), ckpt=False)
    shutil.rmtree(tmp_path / "ckpt")
    _refused(args, tmp_path, capsys, 12, "does not exist")


def test_empty_checkpoint_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(_setup(tmp_path, ssd_config_text(), ckpt=False), tmp_path, capsys, 12, "no checkpoint")


def test_named_checkpoint_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path, ssd_config_text()) + ["--checkpoint", "ckpt-9"]
    _refused(args, tmp_path, capsys, 12, "ckpt-9", "ckpt-1")


@pytest.mark.tf
def test_checkpoint_from_another_model_is_refused_with_the_likely_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: tuple[Path, Path, Path]
) -> None:
    _, ckpt, label_map = tiny_checkpoint  # trained as depth_multiplier 0.25
    config = ssd_config_text(depth_multiplier=0.5)
    (tmp_path / "pipeline.config").write_text(config)
    args = [
        "run", "--pipeline-config", str(tmp_path / "pipeline.config"), "--checkpoint-dir", str(ckpt),
        "--label-map", str(label_map), "--out", str(tmp_path / "out"), "--quiet",
    ]
    _refused(args, tmp_path, capsys, 12, "config", "checkpoint")


@pytest.mark.tf
def test_truncated_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: tuple[Path, Path, Path]
) -> None:
    config, ckpt, label_map = tiny_checkpoint
    broken = tmp_path / "ckpt"
    shutil.copytree(ckpt, broken)
    data = next(broken.glob("*.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    args = [
        "run", "--pipeline-config", str(config), "--checkpoint-dir", str(broken),
        "--label-map", str(label_map), "--out", str(tmp_path / "out"), "--quiet",
    ]
    _refused(args, tmp_path, capsys, 12, "checkpoint")


@pytest.mark.tf
def test_refused_rerun_keeps_the_previous_models_and_reports_the_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: tuple[Path, Path, Path], run_a: Path
) -> None:
    _, ckpt, label_map = tiny_checkpoint
    out = tmp_path / "out"
    shutil.copytree(run_a, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / "pipeline.config").write_text(ssd_config_text(depth_multiplier=0.5))
    args = [
        "run", "--pipeline-config", str(tmp_path / "pipeline.config"), "--checkpoint-dir", str(ckpt),
        "--label-map", str(label_map), "--out", str(out), "--quiet",
    ]
    assert run_cli(args) == 12
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # the earlier run's models are untouched; its reports are replaced by this run's, which
    # say the run was refused (a stale passing report.json would contradict the exit code)
    assert {k: v for k, v in after.items() if k.name not in REPORT_FILES} == \
        {k: v for k, v in before.items() if k.name not in REPORT_FILES}
    report = assert_reports_agree(out, 12)
    assert report["status"] == "error" and report["variants"] == []
