"""Host-side security: hostile label names and output paths, associated-file names inside a
.tflite, and no download at run time (device-side quoting: tests/test_device_*.py).

- Label names with spaces, quotes, ``;``, ``$()``, backticks, ``../``, an absolute path, a
  leading dash, HTML and unicode are DATA: they land verbatim in labelmap.txt and in the
  label file packed in every model, never in a file name, a shell or the HTML unescaped;
  nothing is written outside ``--out``. (Newlines and other control characters are refused
  with exit 11: tests/test_bad_inputs.py, tests/test_labels.py.)
- Output paths with spaces, unicode and shell metacharacters work.
- A model whose appended zip names ``../../evil`` or ``/tmp/...`` is only read: liteship
  never extracts associated files to disk, and the name it writes is always labelmap.txt.
- The runs go through a ``sitecustomize`` that refuses and records every non-loopback
  connect / DNS lookup in every Python process (conversion workers and the Task Library
  child included) and, where the kernel allows it, a network namespace without network:
  the run succeeds and made no outbound attempt.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from liteship.cli import main

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "PWNED_7f3a"
HOSTILE_NAMES = (
    "traffic light",
    "it's \"quoted\"",
    "a;rm -rf ~",
    f"$(touch {TOKEN}_dollar)",
    f"`touch {TOKEN}_backtick`",
    f"../../{TOKEN}_escape",
    f"/tmp/{TOKEN}_absolute",
    "-rf",
    "<script>alert(1)</script>",
    "猫 café 🐱",
    "back\\slash",
)

NETBLOCK = r'''
"""Test-only: refuse and record every non-loopback network attempt of this Python process."""
import os
import socket

_LOG = os.environ.get("LITESHIP_NET_LOG")


def _record(what):
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {what}\n")


def _local(host):
    host = str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")


def _allowed(sock, address):
    if sock.family == getattr(socket, "AF_UNIX", object()):
        return True
    return isinstance(address, tuple) and _local(address[0])


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if not _allowed(self, address):
        _record(f"connect {address!r}")
        raise OSError(101, "network blocked by the test")
    return _connect(self, address)


def connect_ex(self, address):
    if not _allowed(self, address):
        _record(f"connect_ex {address!r}")
        return 101
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _local(host.decode() if isinstance(host, bytes) else host):
        _record(f"getaddrinfo {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, "network blocked by the test")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
if _LOG:
    with open(_LOG + ".loaded", "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
'''


def _no_network_namespace() -> list[str]:
    """``unshare -n`` (a namespace with no network) when this process may create one."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
    return [unshare, "-n"] if probe.returncode == 0 else []


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str], Path]:
    """(command prefix, environment, attempts log) for running a Python process offline."""
    root = tmp_path_factory.mktemp("offline")
    (root / "sitecustomize.py").write_text(NETBLOCK)
    log = root / "attempts.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)]), "LITESHIP_NET_LOG": str(log),
           "PYTHONUNBUFFERED": "1"}
    return _no_network_namespace(), env, log


def run_offline(offline: tuple[list[str], dict[str, str], Path], args: list[str], cwd: Path,
                timeout: int = 900) -> subprocess.CompletedProcess[str]:
    prefix, env, _ = offline
    return subprocess.run([*prefix, sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def attempts(offline: tuple[list[str], dict[str, str], Path]) -> list[str]:
    log = offline[2]
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def hostile_label_map(path: Path) -> Path:
    items = "".join(f"item {{ id: {i} name: {json.dumps(name, ensure_ascii=False)} }}\n"
                    for i, name in enumerate(HOSTILE_NAMES, start=1))
    path.write_text(items, encoding="utf-8")
    return path


def snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def assert_no_token_files(*roots: Path) -> None:
    for root in roots:
        found = list(root.rglob(f"{TOKEN}*")) if root.exists() else []  # what `touch NAME` would make
        assert found == [], f"a label name became a file: {found}"
    assert not list(Path("/tmp").glob(f"{TOKEN}*"))


def packed_files(model: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- the offline mechanism itself ------------------------------------------------------------


def test_the_network_block_refuses_and_records(offline: tuple[list[str], dict[str, str], Path], tmp_path: Path) -> None:
    code = ("import socket\n"
            "for target in (lambda: socket.create_connection(('example.com', 80), timeout=5),\n"
            "               lambda: socket.create_connection(('93.184.215.14', 443), timeout=5)):\n"
            "    try:\n        target()\n    except OSError:\n        pass\n"
            "    else:\n        raise SystemExit('connected')\n")
    before = len(attempts(offline))
    proc = run_offline(offline, ["-c", code], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    new = attempts(offline)[before:]
    assert any("example.com" in a for a in new) and any("93.184.215.14" in a for a in new), new


# --- hostile label names and output paths, offline ---------------------------------------------


@pytest.mark.tf
def test_hostile_labels_and_output_path_offline(offline: tuple[list[str], dict[str, str], Path], tmp_path: Path,
                                                calib_images: Path) -> None:
    from tests.fixtures.bad_tiny_saved_model import write_tiny_saved_model

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    saved_model = write_tiny_saved_model(inputs, num_classes=len(HOSTILE_NAMES))
    label_map = hostile_label_map(inputs / "label_map.pbtxt")
    work = tmp_path / "deep" / "cwd"  # ../../ from here is still inside tmp_path: checked below
    work.mkdir(parents=True)
    out = tmp_path / f"out dir ü 猫 $(touch {TOKEN}_path) ; x" / "models here"
    before = snapshot(tmp_path)
    attempts_before = len(attempts(offline))

    proc = run_offline(offline, ["-m", "liteship", "metadata", "--saved-model", str(saved_model), "--label-map",
                                 str(label_map), "--images", str(calib_images), "--calibration-images", "4",
                                 "--variants", "fp32,int8", "--out", str(out)], work)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    # nothing downloaded, nothing attempted, and the block was active in every Python process
    assert attempts(offline)[attempts_before:] == []
    assert Path(str(offline[2]) + ".loaded").exists()

    # labels are data: verbatim in labelmap.txt and in the file packed in every model
    expected = "".join(f"{name}\n" for name in HOSTILE_NAMES)
    assert (out / "labelmap.txt").read_text(encoding="utf-8") == expected
    for variant in ("fp32", "int8"):
        files = packed_files((out / "models" / f"{variant}.tflite").read_bytes())
        assert list(files) == ["labelmap.txt"]
        assert files["labelmap.txt"].decode("utf-8") == expected
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html

    # nothing written outside --out, no label or path became a file or a command
    new = snapshot(tmp_path) - before
    outside = sorted(p for p in new if out not in p.parents and p != out and p not in out.parents)
    assert outside == [], outside
    assert list(work.iterdir()) == []
    assert_no_token_files(tmp_path, ROOT, Path.home())


# --- associated-file names inside a .tflite ------------------------------------------------------


def _model_with_hostile_zip() -> bytes:
    """A lint-clean model whose appended zip (the associated files) also names paths outside."""
    from tests.fixtures.bad_seeds import seed_models

    good = seed_models()["image_with_metadata"]
    labels = packed_files(good)["labelmap.txt"]
    model_end = good.index(b"PK\x03\x04")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("labelmap.txt", labels)
        z.writestr(f"../../{TOKEN}_zip_escape.txt", "x")
        z.writestr(f"/tmp/{TOKEN}_zip_absolute.txt", "x")
        z.writestr(f"sub/../../{TOKEN}_zip_dotdot.txt", "x")
    return good[:model_end] + archive.getvalue()


def test_associated_file_names_cannot_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from liteship.converter.metadata import read_metadata
    from liteship.tflite_inspect import inspect_model

    model = _model_with_hostile_zip()
    info = inspect_model(model)
    assert f"../../{TOKEN}_zip_escape.txt" in info.associated_files  # reported as names, nothing more
    work = tmp_path / "a" / "b" / "cwd"
    work.mkdir(parents=True)
    path = work / "model.tflite"
    path.write_bytes(model)
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    assert main(["lint", str(path), "--no-gpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "pass"
    summary = read_metadata(model)  # tflite-support's MetadataDisplayer: reads buffers only
    assert "labelmap.txt" in summary.associated_files
    assert snapshot(tmp_path) == before
    assert_no_token_files(tmp_path)


def test_the_associated_file_liteship_writes_is_always_labelmap_txt() -> None:
    from liteship.converter.metadata import LABEL_FILE, write_metadata
    from liteship.types import Normalization
    from tests.fixtures.tiny_ssd import image_model

    labels = "".join(f"{name}\n" for name in ("../../x", "/etc/passwd", "a/b", "..", "labelmap.txt"))
    model = write_metadata(image_model("uint8", num_classes=5), Normalization((127.5,), (127.5,)), labels)
    assert list(packed_files(model)) == [LABEL_FILE] == ["labelmap.txt"]


def test_liteship_never_extracts_archives_to_disk() -> None:
    """Associated files are read from memory; an extract() with a name from a file would be a
    path traversal (zip slip) waiting to happen."""
    pattern = re.compile(r"\.extract(all)?\(|shutil\.unpack_archive|tarfile\.open")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "liteship").rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


# --- a whole `liteship run` on the tiny OD API checkpoint, offline ----------------------------------


@pytest.mark.tf
@pytest.mark.slow
def test_run_on_the_tiny_checkpoint_downloads_nothing(offline: tuple[list[str], dict[str, str], Path], tmp_path: Path,
                                                      tiny_checkpoint: tuple[Path, Path, Path], calib_images: Path) -> None:
    """Input (a): OD API model build, checkpoint restore, export, conversion, metadata, lint
    with the Task Library child, parity: all offline."""
    config, ckpt, label_map = tiny_checkpoint
    attempts_before = len(attempts(offline))
    loaded = Path(str(offline[2]) + ".loaded")
    loaded_before = len(loaded.read_text().split()) if loaded.exists() else 0
    proc = run_offline(offline, ["-m", "liteship", "run", "--pipeline-config", str(config), "--checkpoint-dir", str(ckpt),
                                 "--label-map", str(label_map), "--images", str(calib_images), "--variants", "fp32",
                                 "--parity-images", "4", "--quiet"], tmp_path)
    assert attempts(offline)[attempts_before:] == [], proc.args
    assert "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "liteship-out" / "report.json").read_text(encoding="utf-8"))
    # the whole flow ran; an untrained random model may miss the parity gate (exit 31), nothing else
    assert proc.returncode in (0, 31), (report.get("errors"), proc.stderr[-2000:])
    assert {e["kind"] for e in report["errors"]} <= {"parity"}
    assert [v["name"] for v in report["variants"]] == ["fp32"] and report["variants"][0]["lint"]
    assert len(loaded.read_text().split()) - loaded_before >= 2, "the block was active in liteship and its children"
