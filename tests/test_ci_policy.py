"""Under CI=true a skip fails the run unless tests/conftest.py allows it with a reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("reason", "ci", "outcome"), [
    ("chromium is missing", "true", "failed"),
    ("chromium is missing", "", "skipped"),
    ("no authorized real device on the default adb server", "true", "skipped"),
])
def test_skips_fail_under_ci_unless_allowed(tmp_path: Path, reason: str, ci: str, outcome: str) -> None:
    test = tmp_path / "test_probe.py"
    test.write_text(f"import pytest\n\ndef test_probe():\n    pytest.skip({reason!r})\n")
    env = {"CI": ci, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                           "-c", str(ROOT / "pyproject.toml"), "--confcutdir", str(ROOT / "tests"),
                           "-p", "tests.conftest", str(test)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert f"1 {outcome}" in done.stdout, done.stdout[-2000:]
