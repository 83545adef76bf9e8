"""Session-wide fixtures: expensive models are built once per test session.

Tiers (markers, see pyproject.toml): unmarked tests are fast and need no TensorFlow
model; ``tf`` tests build/convert small models; ``slow`` tests run whole pipelines.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

import liteship  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from liteship.demo import synth
from tests.fixtures.shared import build_once


#: the only skips a CI run (``CI=true``) may have, each with why; any other skip fails there
#: (a skip is a check that did not run: in CI that must be seen, never silently green)
ALLOWED_CI_SKIPS: dict[str, str] = {
    "no authorized real device": "the device tier needs a phone listed by `adb devices`; CI has none",
    "root can write to read-only folders": "CI runs as root, so a permission refusal cannot be observed",
}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use (os.cpu_count() counts the host's
    cores in a container), at most 4: each worker holds its own TensorFlow (2-4 GB) and builds the
    module fixtures of the test files it runs."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if not (_ci() and report.skipped):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    if not any(key in reason for key in ALLOWED_CI_SKIPS):
        report.outcome = "failed"
        report.longrepr = (f"CI=true: this test was skipped ({reason}), and that skip is not in "
                           "tests/conftest.py ALLOWED_CI_SKIPS: install what it needs in CI, or allow it there with a reason")


@pytest.fixture(scope="session")
def calib_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 seeded synthetic photos of mixed sizes (jpg and png)."""
    def build(root: Path) -> Path:
        for i, sample in enumerate(itertools.islice(synth.generate(7, 12, "cal"), 12)):
            sample.image.save(root / f"{sample.name}.{'jpg' if i % 2 else 'png'}")
        return root

    return build_once(tmp_path_factory, "calib", build)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(pipeline.config, checkpoint dir, label_map.pbtxt) of a 96x96 SSD MobileNetV2 0.25."""
    from tests.fixtures.odapi_models import write_ssd_checkpoint

    return build_once(tmp_path_factory, "tiny_ssd", lambda root: write_ssd_checkpoint(root, size=96, num_classes=3, seed=0))


@pytest.fixture(scope="session")
def tf1_training_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF1 ssd_mobilenet_v1_coco-style training folder (model_main.py layout: pipeline.config,
    model.ckpt-5576.*, checkpoint, label_map.pbtxt): 96x96, depth 0.25, 3 classes, seeded."""
    from tests.fixtures.tf1_graph import write_tf1_training_folder

    def build(root: Path) -> Path:
        write_tf1_training_folder(root / "training", "ssd_mobilenet_v1", size=96, num_classes=3, seed=0)
        return root / "training"

    return build_once(tmp_path_factory, "tf1_train", build)


def run_cli(args: list[str]) -> int:
    from liteship.cli import main

    return main(args)


@pytest.fixture(scope="session")
def run_a(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: tuple[Path, Path, Path], calib_images: Path) -> Path:
    """Input (a): `liteship metadata` (the flow without parity: a random model's int8 is not
    expected to match its reference) on the tiny checkpoint, default options (port order)."""
    config, ckpt, label_map = tiny_checkpoint

    def build(root: Path) -> Path:
        code = run_cli([
            "metadata", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt), "--label-map", str(label_map),
            "--images", str(calib_images), "--calibration-images", "8", "--max-detections", "7",
            "--out", str(root / "out"), "--quiet",
        ])
        assert code == 0, f"liteship run (a) exited {code}"
        return root / "out"

    return build_once(tmp_path_factory, "run_a", build)


@pytest.fixture(scope="session")
def run_b(tmp_path_factory: pytest.TempPathFactory, run_a: Path, tiny_checkpoint: tuple[Path, Path, Path], calib_images: Path) -> Path:
    """Input (b): the SavedModel that run (a) exported, `liteship convert` (no metadata),
    --output-order converter."""
    _, _, label_map = tiny_checkpoint

    def build(root: Path) -> Path:
        code = run_cli([
            "convert", "--saved-model", str(run_a / "export" / "saved_model"), "--label-map", str(label_map),
            "--images", str(calib_images), "--calibration-images", "8", "--output-order", "converter",
            "--out", str(root / "out"), "--quiet",
        ])
        assert code == 0, f"liteship run (b) exited {code}"
        return root / "out"

    return build_once(tmp_path_factory, "run_b", build)


#: parity checks that are reported, not judged, by default (docs/parity.md: no per-element
#: limit for the 8-bit variants, whose worst element grows with the model's element count)
NOT_JUDGED_BY_DEFAULT = {
    "dynamic": {"parity.heads.box_encodings.max_rel", "parity.heads.class_predictions.max_rel"},
    "int8": {"parity.heads.box_encodings.max_rel", "parity.heads.class_predictions.max_rel"},
}


def parity_verdicts_pass(variant: dict[str, Any]) -> dict[str, str]:
    """A report variant's parity checks; asserts that every one passed except exactly those
    the default gates report without judging (n/a)."""
    parity = {c["id"]: c["verdict"] for c in variant["checks"] if c["id"].startswith("parity")}
    not_judged = {cid for cid, verdict in parity.items() if verdict == "n/a"}
    assert parity and not_judged == NOT_JUDGED_BY_DEFAULT.get(variant["name"], set()), (variant["name"], parity)
    assert all(verdict == "pass" for cid, verdict in parity.items() if cid not in not_judged), (variant["name"], parity)
    return parity


def read_report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())
