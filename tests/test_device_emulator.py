"""The emulated Android device: ADB handshake and auth, its shell, sync, packages, faults.

Every test talks to the emulator over real loopback TCP with real clients (adb-shell
directly, or liteship's adb-shell transport); nothing is mocked.
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp

from liteship.device import keys, protocol
from liteship.device.adbshell import AdbShellDevice
from liteship.device.connect import open_device
from liteship.device.emulator import Faults, start
from liteship.device.emulator.shell import parse, tokenize
from liteship.errors import (DeviceAppProblem, DeviceAuthProblem, DeviceConnectionProblem, DeviceResultProblem,
                             DeviceStorageProblem)
from tests.fixtures.adb import emulator, key_path, make_emulator  # noqa: F401
from tests.fixtures.apk_files import axml_manifest

NASTY_NAMES = [
    "with space.bin",
    "it's \"quoted\".bin",
    "semi;colon && rm -rf x.bin",
    "$(touch pwned) `touch pwned2`.bin",
    "ünïcødé 模型 ✓.bin",
]


def _files_under(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*")}


# -- handshake and auth -------------------------------------------------------------------

def test_new_key_is_accepted_and_persisted_in_adb_keys(emulator, key_path: Path) -> None:
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        assert dev.shell("echo ok").stdout == "ok\n"
    adb_keys = emulator.root / "data/misc/adb/adb_keys"
    pub = (key_path.parent / "adbkey.pub").read_text().strip()
    assert adb_keys.read_text().splitlines() == [pub]
    # a second connection signs the token with the now-known key: nothing is appended
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        assert dev.shell("true").exit_code == 0
    assert adb_keys.read_text().splitlines() == [pub]


def test_banner_advertises_shell_v2_and_stat_v2(emulator, key_path: Path) -> None:
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        assert isinstance(dev, AdbShellDevice)
        assert {"shell_v2", "cmd", "stat_v2"} <= dev.features
        assert dev.getprop("ro.product.model") == "liteship emulated device"
        assert dev.getprop("ro.liteship.emulated") == "1"


def test_refused_key_is_device_auth_problem_exit_41(make_emulator, key_path: Path) -> None:
    emu = make_emulator(Faults(refuse_auth=True))
    t0 = time.monotonic()
    with pytest.raises(DeviceAuthProblem) as ei:
        open_device(emu.spec, key_path=key_path, timeout_s=1.0)
    assert ei.value.exit_code == 41
    assert "unauthorized" in ei.value.message
    assert "Allow USB debugging" in (ei.value.hint or "")
    assert time.monotonic() - t0 < 10
    assert not (emu.root / "data/misc/adb/adb_keys").read_text(errors="ignore").strip() \
        if (emu.root / "data/misc/adb/adb_keys").exists() else True


def test_known_key_is_refused_too_when_auth_is_refused(make_emulator, key_path: Path) -> None:
    keys.ensure_key(key_path)
    emu = start(make_emulator().root.parent / "refusing", faults=Faults(refuse_auth=True),
                trusted_keys=((key_path.parent / "adbkey.pub").read_text(),))
    try:
        with pytest.raises(DeviceAuthProblem):
            open_device(emu.spec, key_path=key_path, timeout_s=1.0)
    finally:
        emu.stop()


def test_nothing_listening_is_device_connection_problem_exit_40(key_path: Path) -> None:
    from tests.fixtures.adb import free_port

    with pytest.raises(DeviceConnectionProblem) as ei:
        open_device(f"tcp:127.0.0.1:{free_port()}", key_path=key_path, timeout_s=2)
    assert ei.value.exit_code == 40


# -- shell: v1, v2, quoting -----------------------------------------------------------------

def test_shell_v2_exit_codes_stdout_stderr(emulator, key_path: Path) -> None:
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        r = dev.shell("echo out; ls /nonexistent")
        assert (r.exit_code, r.stdout, r.stderr) == (1, "out\n", "ls: /nonexistent: No such file or directory\n")
        assert dev.shell("exit 7").exit_code == 7
        r = dev.shell("frobnicate --now")
        assert r.exit_code == 127
        assert r.stderr == "/system/bin/sh: frobnicate: inaccessible or not found\n"
        assert dev.shell("false && echo no; echo $?").stdout == "1\n"
        assert dev.shell("false || echo yes").stdout == "yes\n"


def test_shell_v1_raw_output_and_exit_marker_fallback(emulator, key_path: Path) -> None:
    signers = keys.load_signers(key_path)
    adb = AdbDeviceTcp(emulator.host, emulator.port)
    adb.connect(rsa_keys=signers, auth_timeout_s=5)
    try:
        # plain `shell:` (v1): stdout and stderr arrive merged, no exit code
        assert adb.shell("echo a; cat /nope") == "a\ncat: /nope: No such file or directory\n"
    finally:
        adb.close()
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        dev._features.discard("shell_v2")  # a device without shell_v2: liteship falls back to `; echo $?`
        r = dev.shell("ls /nope")
        assert r.exit_code == 1 and "No such file" in r.stdout and "__liteship_exit__" not in r.stdout
        assert dev.shell("echo hi").stdout == "hi\n"


def test_parser_keeps_quoted_metacharacters_literal() -> None:
    env: dict[str, str] = {}
    (c, cmd), = parse("echo 'a;b && $(x)' \"q \\\"x\\\" $?\"", env)
    assert [["".join(p if isinstance(p, str) else "<?>" for p in w)] for w in cmd.words] == [
        ["echo"], ["a;b && $(x)"], ['q "x" <?>']]
    assert [k for k, _ in tokenize("a && b || c ; d", env) if k == "op"] == ["op", "op", "op"]


@pytest.mark.parametrize("command", ["echo $(touch /sdcard/pwned)", "echo `touch /sdcard/pwned`",
                                     "touch /sdcard/a | touch /sdcard/pwned", "touch /sdcard/pwned &"])
def test_substitution_pipes_and_background_are_refused_not_run(emulator, key_path: Path, command: str) -> None:
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        r = dev.shell(command)
    assert r.exit_code == 2 and "not supported" in r.stderr
    assert "pwned" not in _files_under(emulator.root)


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_nasty_names_round_trip_push_ls_pull_without_injection(emulator, key_path: Path, tmp_path: Path,
                                                              name: str) -> None:
    from liteship.device.base import quote

    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1000) + name.encode())
    remote = f"/sdcard/Android/data/dev.liteship.demo/files/{name}"
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        dev.push(src, remote)
        listing = dev.shell(f"ls {quote('/sdcard/Android/data/dev.liteship.demo/files')}")
        assert listing.stdout.splitlines() == [name]
        assert dev.shell(f"stat -c %s {quote(remote)}").stdout.strip() == str(src.stat().st_size)
        assert dev.shell(f"test -f {quote(remote)}").exit_code == 0
        dev.pull(remote, tmp_path / "back.bin")
        assert dev.exists(remote)
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert (emulator.root / remote.lstrip("/")).read_bytes() == src.read_bytes()
    names = _files_under(emulator.root)
    assert not {"pwned", "pwned2", "x.bin"} & names
    assert not [n for n in names if ".partial-" in n or ".adbd-" in n]


def test_paths_cannot_escape_the_device_root(emulator, key_path: Path, tmp_path: Path) -> None:
    (emulator.root.parent / "host-secret.txt").write_text("secret")
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        r = dev.shell("cat /../host-secret.txt /sdcard/../../host-secret.txt")
        assert r.exit_code == 1 and "secret" not in r.stdout
        assert not dev.exists("/../host-secret.txt")
        os.symlink(emulator.root.parent, emulator.root / "sdcard" / "escape")
        r = dev.shell("cat /sdcard/escape/host-secret.txt")
        assert r.exit_code == 1 and "Permission denied" in r.stderr


def test_read_only_system_and_other_apps_private_data(emulator, key_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 100)
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        with pytest.raises(DeviceStorageProblem) as ei:
            dev.push(src, "/system/f.bin")
        assert ei.value.exit_code == 42 and "Read-only file system" in ei.value.message
        with pytest.raises(DeviceStorageProblem) as ei:
            dev.push(src, "/data/data/com.other.app/f.bin")
        assert "Permission denied" in ei.value.message
        r = dev.shell("ls /data/data/com.other.app")
        assert r.exit_code == 1 and r.stderr == "ls: /data/data/com.other.app: Permission denied\n"
        r = dev.shell("ls /data")
        assert r.exit_code == 1 and r.stderr == "ls: /data: Permission denied\n"
        assert dev.shell("ls /data/local/tmp").exit_code == 0
        r = dev.shell("mkdir -p /system/x")
        assert r.exit_code == 1 and "Read-only file system" in r.stderr
    assert {p.name for p in (emulator.root / "system").rglob("*")} <= {"bin"}
    assert not (emulator.root / "data/data").exists()


def test_busybox_like_commands(emulator, key_path: Path) -> None:
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        assert dev.shell("mkdir -p /sdcard/a/b && echo hi > /sdcard/a/b/f && cat /sdcard/a/b/f").stdout == "hi\n"
        assert dev.shell("mv /sdcard/a/b/f /sdcard/a/g && ls /sdcard/a").stdout == "b\ng\n"
        assert dev.shell("stat -c %s /sdcard/a/g").stdout == "3\n"
        assert dev.shell("test -d /sdcard/a && test ! -e /x").exit_code != 0  # `!` is not supported: not 0
        assert dev.shell("test -d /sdcard/a").exit_code == 0
        assert dev.shell("rm -rf /sdcard/a; test -e /sdcard/a").exit_code == 1
        assert dev.shell("rm /sdcard/nothing").stderr == "rm: /sdcard/nothing: No such file or directory\n"
        assert dev.shell("rm -f /sdcard/nothing").exit_code == 0
        assert "Filesystem" in dev.shell("df /sdcard").stdout
        assert "[ro.build.version.sdk]: [34]" in dev.shell("getprop").stdout


# -- packages and the app -------------------------------------------------------------------

def test_pm_install_of_a_fake_apk_and_am_start(make_emulator, key_path: Path, tmp_path: Path) -> None:
    emu = make_emulator()
    apk = tmp_path / "app-debug.apk"
    apk.write_bytes(b"PK\x03\x04 not really an apk")
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        r = dev.shell(f"am start -n {protocol.VALIDATION_ACTIVITY}")
        assert r.exit_code == 1
        assert r.stderr.endswith("Error: Activity class {dev.liteship.demo/dev.liteship.demo.ValidationActivity} "
                                 "does not exist.\n")
        assert dev.shell("pm path dev.liteship.demo").exit_code == 1
        dev.install(apk)
        assert dev.shell("pm list packages").stdout == "package:dev.liteship.demo\n"
        assert dev.shell("pm path dev.liteship.demo").stdout == "package:/data/app/dev.liteship.demo/base.apk\n"
        dev.install(apk)  # -r: reinstall works
        r = dev.shell(f"am start -n {protocol.VALIDATION_ACTIVITY}")
        assert (r.exit_code, r.stdout) == (0, "Starting: Intent { cmp=dev.liteship.demo/.ValidationActivity }\n")
        assert dev.shell("am force-stop dev.liteship.demo").exit_code == 0
        assert dev.shell("pm uninstall dev.liteship.demo").stdout == "Success\n"
        assert not [p for p in (emu.root / "data/local/tmp").iterdir()]


def test_app_not_installable_is_device_app_problem_exit_43(make_emulator, key_path: Path, tmp_path: Path) -> None:
    emu = make_emulator(Faults(app_installed=False), installed=("dev.liteship.demo",))
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"PK fake")
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        assert dev.shell("pm list packages").stdout == ""
        with pytest.raises(DeviceAppProblem) as ei:
            dev.install(apk)
    assert ei.value.exit_code == 43 and "INSTALL_FAILED" in ei.value.message


def _start_run(dev, emu, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    run = protocol.run_dir("r1")
    req = tmp_path / "request.json"
    req.write_text(json.dumps({"schema": protocol.REQUEST_SCHEMA, "version": 1, "run_id": "r1"}))
    dev.push(req, f"{run}/{protocol.REQUEST_NAME}")
    r = dev.shell(f"am start -n {protocol.VALIDATION_ACTIVITY} --es {protocol.REQUEST_EXTRA} "
                  f"{run}/{protocol.REQUEST_NAME}")
    assert r.exit_code == 0 and "(has extras)" in r.stdout
    return emu.root / run.lstrip("/")


@pytest.mark.parametrize("fault", ["app_crash", "app_hang"])
def test_app_crash_or_hang_never_writes_a_result(make_emulator, key_path: Path, tmp_path: Path, fault: str) -> None:
    emu = make_emulator(Faults(**{fault: True}), installed=("dev.liteship.demo",))
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        assert dev.shell("pidof dev.liteship.demo").exit_code == 1  # not started yet
        folder = _start_run(dev, emu, tmp_path)
        for t in emu.device.am.threads:
            t.join(5)
        assert not dev.exists(f"{protocol.run_dir('r1')}/{protocol.RESULT_NAME}")
        r = dev.shell("pidof dev.liteship.demo")
        if fault == "app_crash":  # the process is gone: the host can tell a crash from a slow run
            assert (r.exit_code, r.stdout) == (1, "")
        else:  # still running, never answering: only a timeout ends the wait
            assert r.exit_code == 0 and r.stdout.strip().isdigit()
            assert dev.shell("am force-stop dev.liteship.demo; pidof dev.liteship.demo").exit_code == 1
    assert not (folder / protocol.RESULT_NAME).exists()


def test_am_start_runs_the_emulated_app_which_answers_with_a_result(emulator, key_path: Path,
                                                                    tmp_path: Path) -> None:
    """The real liteship.device.apprunner behind `am start`: a request naming a model that
    is not there still gets a schema-valid result (status error), marked as emulated."""
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        run = protocol.run_dir("r2")
        req = tmp_path / "request.json"
        req.write_text(json.dumps({"schema": protocol.REQUEST_SCHEMA, "version": 1, "run_id": "r2",
                                   "model": "model.tflite", "inputs": [], "delegates": ["cpu"], "threads": 1,
                                   "warmup": 0, "iterations": 1}))
        dev.push(req, f"{run}/{protocol.REQUEST_NAME}")
        r = dev.shell(f"am start -n {protocol.VALIDATION_ACTIVITY} --es request {run}/{protocol.REQUEST_NAME}")
        assert r.exit_code == 0
        deadline = time.monotonic() + 20
        while not dev.exists(f"{run}/{protocol.RESULT_NAME}") and time.monotonic() < deadline:
            time.sleep(0.05)
        dev.pull(f"{run}/{protocol.RESULT_NAME}", tmp_path / "result.json")
        assert dev.shell("pidof dev.liteship.demo").exit_code == 0  # cached process, as on Android
    result = protocol.parse_result((tmp_path / "result.json").read_bytes())
    assert result["run_id"] == "r2" and result["status"] == "error"
    assert result["producer"]["kind"] == "emulated"


def test_corrupt_result_is_device_result_problem_exit_45(make_emulator, key_path: Path, tmp_path: Path) -> None:
    emu = make_emulator(Faults(corrupt_result=True), installed=("dev.liteship.demo",))
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        _start_run(dev, emu, tmp_path)
        for t in emu.device.am.threads:
            t.join(5)
        dev.pull(f"{protocol.run_dir('r1')}/{protocol.RESULT_NAME}", tmp_path / "result.json")
    with pytest.raises(DeviceResultProblem) as ei:
        protocol.parse_result((tmp_path / "result.json").read_bytes())
    assert ei.value.exit_code == 45


# -- sync faults ----------------------------------------------------------------------------

def test_drop_mid_push_is_connection_problem_and_leaves_no_file(make_emulator, key_path: Path,
                                                                 tmp_path: Path) -> None:
    emu = make_emulator(Faults(drop_after_bytes=300_000))
    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(2_000_000))
    dest = "/sdcard/Android/data/dev.liteship.demo/files/model.tflite"
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        with pytest.raises(DeviceConnectionProblem) as ei:
            dev.push(src, dest)
    assert ei.value.exit_code == 40
    time.sleep(0.3)
    folder = emu.root / dest.lstrip("/")
    assert not folder.exists()
    assert not list(folder.parent.iterdir()) if folder.parent.exists() else True
    # a later connection works (the listener survives), small pushes below the limit too
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 1000)
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        dev.push(small, "/sdcard/small.bin")
        assert dev.exists("/sdcard/small.bin")


def test_full_storage_is_storage_problem_and_leaves_no_file(make_emulator, key_path: Path, tmp_path: Path) -> None:
    emu = make_emulator(Faults(storage_limit_bytes=1_000_000))
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(1_500_000))
    with open_device(emu.spec, key_path=key_path, timeout_s=5) as dev:
        with pytest.raises(DeviceStorageProblem) as ei:
            dev.push(src, "/sdcard/big.bin")
        assert ei.value.exit_code == 42 and "No space left on device" in ei.value.message
        assert not dev.exists("/sdcard/big.bin")
        assert dev.shell("ls -a /sdcard").stdout == ""
        small = tmp_path / "small.bin"
        small.write_bytes(b"s" * 1000)
        dev.push(small, "/sdcard/small.bin")  # the connection is still usable
        assert dev.exists("/sdcard/small.bin")


def test_safe_reads_are_retried_once_after_a_dropped_connection(emulator, key_path: Path) -> None:
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        assert dev.exists("/sdcard")
        emulator.drop_connections()
        time.sleep(0.1)
        assert dev.exists("/sdcard")  # reconnected
        emulator.drop_connections()
        time.sleep(0.1)
        assert dev.shell("getprop ro.build.version.sdk").stdout == "34\n"
        emulator.drop_connections()
        time.sleep(0.1)
        with pytest.raises(DeviceConnectionProblem):
            dev.shell("mkdir -p /sdcard/x")  # not a read: never replayed


def test_sync_stat_list_recv_with_adb_shell_directly(emulator, key_path: Path) -> None:
    signers = keys.load_signers(key_path)
    adb = AdbDeviceTcp(emulator.host, emulator.port)
    adb.connect(rsa_keys=signers, auth_timeout_s=5)
    try:
        data = os.urandom(200_000)
        adb.push(io.BytesIO(data), "/sdcard/d/x.bin", mtime=1_700_000_000)
        mode, size, mtime = adb.stat("/sdcard/d/x.bin")
        assert stat.S_ISREG(mode) and size == len(data) and mtime == 1_700_000_000
        assert adb.stat("/sdcard/none") == (0, 0, 0)
        assert sorted(f.filename.decode() for f in adb.list("/sdcard/d")) == [".", "..", "x.bin"]
        out = io.BytesIO()
        adb.pull("/sdcard/d/x.bin", out)
        assert out.getvalue() == data
    finally:
        adb.close()


# -- several devices, keys --------------------------------------------------------------------

def test_two_emulators_in_parallel(make_emulator, key_path: Path, tmp_path: Path) -> None:
    a, b = make_emulator(name="a"), make_emulator(name="b")
    assert a.port != b.port and a.serial != b.serial
    payloads = {a.serial: os.urandom(1_500_000), b.serial: os.urandom(1_500_000)}
    errors: list[BaseException] = []

    def work(emu) -> None:  # type: ignore[no-untyped-def]
        try:
            src = tmp_path / f"{emu.port}.bin"
            src.write_bytes(payloads[emu.serial])
            with open_device(emu.spec, key_path=key_path, timeout_s=10) as dev:
                dev.push(src, "/sdcard/p.bin")
                dev.pull("/sdcard/p.bin", tmp_path / f"{emu.port}.back")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(e,)) for e in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for emu in (a, b):
        assert (emu.root / "sdcard/p.bin").read_bytes() == payloads[emu.serial]
        assert (tmp_path / f"{emu.port}.back").read_bytes() == payloads[emu.serial]


def test_key_is_created_0600_with_android_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANDROID_USER_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_HOME", raising=False)
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    path = keys.ensure_key()
    assert path == tmp_path / "home/.android/adbkey"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pub = (path.parent / "adbkey.pub").read_text()
    b64, who = pub.split(" ", 1)
    assert "@" in who
    key = keys.parse_public_key(pub)
    from adb_shell.auth.keygen import encode_pubkey

    assert keys.encode_public_key(key) == encode_pubkey(str(path))  # same bytes as adb-shell / adb
    sig = keys.load_signers()[0].Sign(b"t" * 20)
    assert keys.verify_token(key, b"t" * 20, sig)
    assert keys.ensure_key() == path and (path.parent / "adbkey.pub").read_text() == pub  # not regenerated


def test_vendor_keys_are_offered_too(make_emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = keys.ensure_key(tmp_path / "vendor" / "ci.adb_key")
    emu = start(tmp_path / "trusting", trusted_keys=((vendor.parent / "ci.adb_key.pub").read_text(),))
    try:
        monkeypatch.setenv("ADB_VENDOR_KEYS", str(vendor.parent))
        with open_device(emu.spec, key_path=tmp_path / "mine" / "adbkey", timeout_s=5) as dev:
            assert dev.shell("true").exit_code == 0
        # accepted by signature with the vendor key: our own key was never sent
        assert len((emu.root / "data/misc/adb/adb_keys").read_text().splitlines()) == 1
    finally:
        emu.stop()


def test_pm_install_reads_the_package_name_from_a_binary_manifest(emulator, key_path: Path, tmp_path: Path) -> None:
    import zipfile

    apk = tmp_path / "other.apk"
    with zipfile.ZipFile(apk, "w") as z:
        z.writestr("AndroidManifest.xml", axml_manifest("com.example.other"))
        z.writestr("classes.dex", b"dex\n035\0")
    with open_device(emulator.spec, key_path=key_path, timeout_s=5) as dev:
        dev.install(apk)
        assert dev.shell("pm list packages").stdout.splitlines() == ["package:com.example.other",
                                                                     "package:dev.liteship.demo"]
        r = dev.shell("am start -n com.example.other/.MainActivity")
        assert r.exit_code == 1 and "does not exist" in r.stderr  # no activity the emulator knows
