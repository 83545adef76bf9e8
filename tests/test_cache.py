"""liteship.cache: keys, hash-verified lookups, atomic puts (no TensorFlow)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from liteship import cache, child
from liteship.cache import HIT, MISS, OFF, REBUILT, Cache


def test_key_changes_with_any_part_and_not_with_dict_order() -> None:
    base = cache.key_of("convert", {"export": "e", "variant": "int8", "count": 100})
    assert base == cache.key_of("convert", {"count": 100, "variant": "int8", "export": "e"})
    assert base != cache.key_of("convert", {"export": "e", "variant": "int8", "count": 99})
    assert base != cache.key_of("model", {"export": "e", "variant": "int8", "count": 100})


def test_tree_digest_covers_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jpg").write_bytes(b"x")
    first = cache.digest_tree(tmp_path / "d")
    (tmp_path / "d" / "a.jpg").write_bytes(b"y")
    second = cache.digest_tree(tmp_path / "d")
    (tmp_path / "d" / "a.jpg").rename(tmp_path / "d" / "b.jpg")
    third = cache.digest_tree(tmp_path / "d")
    assert len({first, second, third}) == 3
    assert cache.digest_tree(tmp_path / "missing") != cache.digest_tree(tmp_path / "other-missing")


def test_put_then_get_returns_the_same_bytes_and_meta(tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f.bin").write_bytes(b"\x00\x01" * 1000)
    c = Cache(tmp_path / "c")
    assert c.get("model", "k1") == (None, MISS)
    c.put("model", "k1", meta={"seconds": 1.5}, blobs={"model.tflite": b"TFL3..."}, trees={"export": tmp_path / "tree"})
    entry, outcome = Cache(tmp_path / "c").get("model", "k1")
    assert outcome == HIT and entry is not None
    assert entry.read_bytes("model.tflite") == b"TFL3..."
    assert entry.read_bytes("export/sub/f.bin") == b"\x00\x01" * 1000
    assert entry.meta == {"seconds": 1.5}


def test_disabled_cache_never_stores(tmp_path: Path) -> None:
    c = Cache(None)
    assert c.put("model", "k", blobs={"m": b"1"}) is None
    assert c.get("model", "k") == (None, OFF)


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete a file", "add a file", "garbage manifest",
                                    "manifest of another key"])
def test_a_corrupt_entry_is_detected_removed_and_never_returned(tmp_path: Path, damage: str) -> None:
    c = Cache(tmp_path / "c")
    entry = c.put("model", "k", meta={"n": 1}, blobs={"model.tflite": bytes(range(256)) * 4, "b.txt": b"b"})
    assert entry is not None
    model = entry.path / "model.tflite"
    if damage == "flip a byte":
        data = bytearray(model.read_bytes())
        data[100] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "truncate":
        model.write_bytes(model.read_bytes()[:10])
    elif damage == "delete a file":
        (entry.path / "b.txt").unlink()
    elif damage == "add a file":
        (entry.path / "stray").write_bytes(b"?")
    elif damage == "garbage manifest":
        (entry.path / cache.MANIFEST).write_text("{not json")
    else:
        manifest = json.loads((entry.path / cache.MANIFEST).read_text())
        (entry.path / cache.MANIFEST).write_text(json.dumps({**manifest, "key": "other"}))
    assert c.get("model", "k") == (None, REBUILT)
    assert not entry.path.exists(), "the corrupt entry must be deleted"
    assert c.get("model", "k") == (None, MISS)
    c.put("model", "k", blobs={"model.tflite": b"good"})  # rebuilt
    again, outcome = c.get("model", "k")
    assert outcome == HIT and again is not None and again.read_bytes("model.tflite") == b"good"


def test_a_put_that_fails_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Cache(tmp_path / "c")
    real = Cache._write
    calls = []

    def failing(path: Path, data: bytes) -> dict:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C between two files
        return real(path, data)

    monkeypatch.setattr(Cache, "_write", staticmethod(failing))
    with pytest.raises(KeyboardInterrupt):
        c.put("model", "k", blobs={"a": b"1", "b": b"2"})
    monkeypatch.undo()
    assert c.get("model", "k") == (None, MISS)
    assert not any((tmp_path / "c" / "tmp").iterdir())


KILLED_PUT = """
import os, signal, sys
from pathlib import Path
from liteship.cache import Cache
real = Cache._write
n = []
def write(path, data):
    n.append(path)
    if len(n) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies between two files of one entry
    return real(path, data)
Cache._write = staticmethod(write)
Cache(Path(sys.argv[1])).put("model", "k", blobs={"a": b"1" * 1000, "b": b"2" * 1000, "c": b"3"})
"""


def test_a_process_killed_during_a_put_leaves_no_entry_and_its_leftovers_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "c"
    result = child.run_python(KILLED_PUT, [str(root)], timeout_s=60)
    assert result.outcome == "crashed" and result.returncode == -signal.SIGKILL, result.describe()
    assert any((root / "tmp").iterdir()), "the killed put should have left its staging folder"
    assert not (root / "entries" / "model" / "k").exists()
    c = Cache(root)  # a later run
    assert c.get("model", "k") == (None, MISS)
    assert not any((root / "tmp").iterdir()), "the dead process's staging folder was not removed"


def test_a_live_process_staging_folder_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "c"
    (root / "tmp" / f"{os.getppid()}-abc").mkdir(parents=True)  # pytest's parent: alive
    Cache(root)
    assert (root / "tmp" / f"{os.getppid()}-abc").is_dir()


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    for i in range(5):
        entry = c.put("lint", f"k{i}", blobs={"x": bytes([i])})
        assert entry is not None
        os.utime(entry.path / cache.MANIFEST, (time.time() - 100 + i, time.time() - 100 + i))
    c.get("lint", "k0")  # used now: the most recent
    removed = c.prune("lint", keep=2)
    assert sorted(removed) == ["k1", "k2", "k3"]
    assert c.get("lint", "k0")[1] == HIT and c.get("lint", "k4")[1] == HIT
