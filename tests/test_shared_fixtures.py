"""tests/fixtures/shared.py: a fixture shared by pytest-xdist workers is built once per run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: one "worker": build_once on a basetemp under the run folder; the build takes a while and
#: appends to builds.txt, so overlapping builds would show as two lines
WORKER = """
import sys, time
from pathlib import Path
from tests.fixtures.shared import build_once

class Factory:
    def getbasetemp(self): return Path(sys.argv[1]) / sys.argv[2]

def build(root):
    with open(Path(sys.argv[1]) / "builds.txt", "a") as f:
        f.write(sys.argv[2] + "\\n")
    time.sleep(1.0)
    (root / "model.bin").write_bytes(b"weights")
    return {"path": root / "model.bin", "by": sys.argv[2]}

value = build_once(Factory(), "tiny", build)
print(value["by"], value["path"].read_bytes().decode())
"""


def _workers(run: Path, names: list[str]) -> list[str]:
    env = {"PYTEST_XDIST_WORKER": "gw", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(run), name], stdout=subprocess.PIPE, text=True,
                              env=env) for name in names]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * len(names), outs
    return outs


def test_concurrent_workers_build_once_and_all_get_the_built_value(tmp_path: Path) -> None:
    outs = _workers(tmp_path, ["gw0", "gw1", "gw2"])
    builders = (tmp_path / "builds.txt").read_text().split()
    assert len(builders) == 1
    assert outs == [f"{builders[0]} weights"] * 3  # the others waited and loaded the builder's value


def test_a_failed_build_is_retried_from_an_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.shared import build_once

    class Factory:
        def getbasetemp(self) -> Path:
            return tmp_path / "gw0"

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")

    def broken(root: Path) -> Path:
        (root / "half-written").write_text("x")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        build_once(Factory(), "m", broken)  # type: ignore[arg-type]
    seen = build_once(Factory(), "m", lambda root: sorted(p.name for p in root.iterdir()))  # type: ignore[arg-type]
    assert seen == []
