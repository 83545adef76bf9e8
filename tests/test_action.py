"""action.yml: the reusable GitHub Action installs the locked toolchain, runs the gate,
uploads the reports and fails the job with liteship's exit code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_action_is_composite_with_the_documented_inputs() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    assert {"command", "args", "out"} <= set(action["inputs"])
    assert action["outputs"]["exit-code"]["value"] == "${{ steps.gate.outputs.exit-code }}"


def test_install_uses_the_lock_and_the_quick_start_uv() -> None:
    install = next(s for s in _action()["runs"]["steps"] if s.get("name", "").startswith("Install"))
    quick = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    uv_pin = re.search(r"uv==[0-9.]+", quick).group(0)
    assert uv_pin in install["run"] and "uv\" sync --frozen" in install["run"]


def test_reports_are_uploaded_even_when_the_gate_fails() -> None:
    steps = _action()["runs"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    for name in ("report.html", "junit.xml", "report.json"):
        assert name in upload["with"]["path"]


def test_the_last_step_exits_with_the_gate_code() -> None:
    """Run the final step's script with bash for a passing and a failing gate."""
    last = _action()["runs"]["steps"][-1]
    for code in ("0", "32"):
        script = last["run"].replace("${{ steps.gate.outputs.exit-code }}", code).replace("${{ inputs.command }}", "run")
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
        assert str(done.returncode) == code, done.stdout
        assert (code == "0") == ("::error" not in done.stdout)
