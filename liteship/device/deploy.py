"""Deploy a .tflite to a device and run the validation app on it, over the Device interface.

One run: check (or install) the app -> make ``<RUNS_DIR>/<run_id>`` -> push the model and
the inputs (each push is atomic: the transport writes a partial name, then renames) ->
validate and push ``request.json`` LAST (the app only ever sees a complete run folder) ->
``am start`` the validation activity -> poll for ``result.json`` (backoff; a crashed app
is noticed with ``pidof``) -> pull, parse and validate it -> remove the run folder
(``keep=True`` keeps it for a look with ``adb shell``).

Inputs: each image is pushed twice, as the encoded file (the app decodes and preprocesses
it: app-level parity) and as the raw input tensor the host made from it with the model's
own preprocessing (detect.py; tensor-level parity: the device computes from exactly the
bytes the desktop run uses).

Every failure is a typed ``liteship.errors.Device*`` error (exit codes 40-45).
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.device import protocol
from liteship.device.base import Device, quote
from liteship.errors import (
    DeviceAppProblem,
    DeviceProblem,
    DeviceResultProblem,
    DeviceStorageProblem,
    DeviceTimeout,
    LiteshipError,
    UsageProblem,
)

#: where ``./gradlew assembleDebug`` in android_app/ writes the APK with the validation entry point
APK_HINT = "android_app/app/build/outputs/apk/debug/app-debug.apk"
MODEL_NAME = "model.tflite"
DELEGATES = ("cpu", "gpu", "nnapi")
#: poll interval: starts short (the emulated app answers in milliseconds), grows to this
POLL_MAX_S = 1.0
#: after am start, how long the app may take to show up in ``pidof`` before "gone" means crashed
CRASH_GRACE_S = 2.0


@dataclass(frozen=True)
class DeployOptions:
    delegates: tuple[str, ...] = ("cpu",)
    threads: int = 4
    warmup: int = 2
    iterations: int = 10
    timeout_s: float = 120.0
    keep: bool = False
    apk: Path | None = None
    score_threshold: float = 0.0
    max_results: int = 100
    return_tensors: bool = True
    #: (engine, accelerators) to run; None = the v1 request (the interpreter with ``delegates``)
    engines: tuple[tuple[str, tuple[str, ...]], ...] | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.delegates if d not in DELEGATES]
        if bad or not self.delegates:
            raise UsageProblem(f"unknown delegate(s) {bad or '(none)'}; choose from {', '.join(DELEGATES)}")
        if self.engines is not None:
            names = [e for e, _ in self.engines]
            if not names or len(set(names)) != len(names):
                raise UsageProblem(f"--engines must name each engine once, found {', '.join(names) or '(none)'}")
            for engine, accelerators in self.engines:
                allowed = protocol.ENGINE_ACCELERATORS.get(engine)
                if allowed is None:
                    raise UsageProblem(f"unknown engine {engine!r}; choose from {', '.join(protocol.ENGINES)}")
                wrong = [a for a in accelerators if a not in allowed]
                if wrong or not accelerators:
                    raise UsageProblem(f"engine {engine} runs on {', '.join(allowed)}; found {', '.join(wrong) or '(none)'}")
        if not 1 <= self.threads <= 64:
            raise UsageProblem(f"--threads must be 1..64, found {self.threads}")
        if not 0 <= self.warmup <= 1000 or not 1 <= self.iterations <= 10000:
            raise UsageProblem(f"--warmup must be 0..1000 and --iterations 1..10000, found {self.warmup}, {self.iterations}")
        if self.timeout_s <= 0:
            raise UsageProblem(f"--timeout must be > 0 seconds, found {self.timeout_s}")
        if self.apk is not None and not Path(self.apk).is_file():
            raise UsageProblem(f"--apk {self.apk} is not a file; build it with ./gradlew assembleDebug ({APK_HINT})")

    @property
    def runs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(engine, accelerators) in order, the v1 form included."""
        return self.engines if self.engines is not None else ((protocol.INTERPRETER, self.delegates),)

    @property
    def warnings(self) -> list[str]:
        from liteship.device.apprunner import NNAPI_WARNING

        return [NNAPI_WARNING] if any("nnapi" in accs for _, accs in self.runs) else []


@dataclass(frozen=True)
class PreparedInput:
    """One input as pushed: ``kind`` image (encoded file) or tensor (raw little-endian bytes)."""

    id: str
    kind: str
    local: Path
    name: str  # file name in the run folder
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    source: str = ""  # the image it was made from

    def request_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "kind": self.kind, "file": self.name}
        if self.kind == "tensor":
            entry.update(dtype=self.dtype, shape=list(self.shape or ()))
        return entry


@dataclass
class DeviceRun:
    """What one device returned: the parsed, schema-valid result and how we got it."""

    serial: str
    transport: str
    run_id: str
    result: dict[str, Any]
    inputs: list[PreparedInput]
    timings_s: dict[str, float] = field(default_factory=dict)
    app_installed_now: bool = False

    @property
    def producer_kind(self) -> str:
        return str(self.result["producer"]["kind"])


def prepare_inputs(model: bytes, images: Sequence[Path], work_dir: Path) -> list[PreparedInput]:
    """Per image: the encoded file (app level) and the raw input tensor (tensor level),
    made with the desktop's preprocessing (detect.py, normalization from the metadata)."""
    from liteship.device import desktop
    from liteship.device.protocol import dtype_name

    det = desktop.detector(model)
    work_dir.mkdir(parents=True, exist_ok=True)
    prepared: list[PreparedInput] = []
    for k, image in enumerate(images):
        image = Path(image)
        try:
            tensor = desktop.image_tensor(det, image)
        except LiteshipError as exc:
            raise UsageProblem(f"cannot use input image {image}: {exc.message}") from None
        suffix = image.suffix.lower() or ".img"
        prepared.append(PreparedInput(f"image-{k:03d}", "image", image, f"in-{k:03d}{suffix}", source=str(image)))
        raw = work_dir / f"in-{k:03d}.bin"
        little = tensor.astype(tensor.dtype.newbyteorder("<"), copy=False)
        atomic.write_bytes(raw, little.tobytes())
        prepared.append(PreparedInput(f"tensor-{k:03d}", "tensor", raw, raw.name, dtype_name(tensor.dtype),
                                      tuple(int(x) for x in tensor.shape), source=str(image)))
    return prepared


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def build_request(run_id: str, model_sha256: str, inputs: Sequence[PreparedInput], options: DeployOptions) -> dict[str, Any]:
    request = {
        "schema": protocol.REQUEST_SCHEMA,
        "version": protocol.VERSION,
        "run_id": run_id,
        "model": MODEL_NAME,
        "model_sha256": model_sha256,
        "inputs": [i.request_entry() for i in inputs],
        "threads": options.threads,
        "warmup": options.warmup,
        "iterations": options.iterations,
        "score_threshold": options.score_threshold,
        "max_results": options.max_results,
        "return_tensors": options.return_tensors,
    }
    if options.engines is None:
        request["delegates"] = list(options.delegates)  # the v1 form: apps older than engines still answer
    else:
        request["engines"] = [{"engine": e, "accelerators": list(accs)} for e, accs in options.engines]
    protocol.validate_request(request)
    return request


def ensure_app(device: Device, apk: Path | None) -> bool:
    """The validation app must be installed; with ``apk`` it is installed or upgraded.
    Returns whether this call installed it."""
    if apk is not None:
        device.install(Path(apk))
        if not _app_path(device):
            raise DeviceAppProblem(f"{device.serial}: {apk} was installed but `pm path {protocol.APP_PACKAGE}` "
                                   "does not list the app; is it the liteship demo app (applicationId "
                                   f"{protocol.APP_PACKAGE})?", hint=f"build it in android_app/: {APK_HINT}")
        return True
    if not _app_path(device):
        raise DeviceAppProblem(
            f"{device.serial}: the validation app {protocol.APP_PACKAGE} is not installed",
            hint=f"pass --apk {APK_HINT} (build it with ./gradlew assembleDebug in android_app/; see android_app/README.md)",
        )
    return False


def _app_path(device: Device) -> bool:
    r = device.shell(f"pm path {quote(protocol.APP_PACKAGE)}")
    return r.exit_code == 0 and "package:" in r.stdout


def _app_running(device: Device) -> bool | None:
    """True/False from ``pidof``; None when the device cannot tell (no pidof)."""
    try:
        r = device.shell(f"pidof {quote(protocol.APP_PACKAGE)}", timeout_s=15)
    except DeviceProblem:
        return None
    if r.exit_code == 0 and r.stdout.strip():
        return True
    if r.exit_code == 1 and "not found" not in (r.stdout + r.stderr):
        return False
    return None


def _shell_ok(device: Device, command: str, what: str, error: type[DeviceProblem] = DeviceStorageProblem) -> str:
    r = device.shell(command)
    if r.exit_code != 0:
        text = (r.stderr or r.stdout).strip()
        raise error(f"{device.serial}: {what} failed (exit {r.exit_code}): {text or 'no output'}")
    return r.stdout


def _launch(device: Device, request_remote: str) -> None:
    command = (f"am start -n {quote(protocol.VALIDATION_ACTIVITY)} "
               f"--es {quote(protocol.REQUEST_EXTRA)} {quote(request_remote)}")
    r = device.shell(command)
    text = (r.stdout + "\n" + r.stderr).strip()
    if r.exit_code != 0 or "Error" in text:
        raise DeviceAppProblem(
            f"{device.serial}: `am start` of {protocol.VALIDATION_ACTIVITY} failed: {text or f'exit {r.exit_code}'}",
            hint=f"the debug build exports ValidationActivity; reinstall it with --apk {APK_HINT}",
        )


def _wait_for_result(device: Device, result_remote: str, timeout_s: float,
                     sleep: Callable[[float], None] = time.sleep) -> None:
    started = time.monotonic()
    interval = 0.05
    gone_since: float | None = None
    while True:
        if device.exists(result_remote):
            return
        elapsed = time.monotonic() - started
        if elapsed >= CRASH_GRACE_S:
            running = _app_running(device)
            if running is False:
                if gone_since is None:
                    gone_since = time.monotonic()
                elif time.monotonic() - gone_since >= 1.0 and not device.exists(result_remote):
                    raise DeviceAppProblem(
                        f"{device.serial}: the validation app {protocol.APP_PACKAGE} is no longer running and wrote "
                        f"no result after {elapsed:.1f} s (it crashed)",
                        hint="read the crash with `adb logcat -b crash` (or `adb logcat -s liteship`)",
                    )
            else:
                gone_since = None
        if elapsed >= timeout_s:
            raise DeviceTimeout(
                f"{device.serial}: no {protocol.RESULT_NAME} after {timeout_s:g} s in {result_remote.rsplit('/', 1)[0]}",
                hint="check `adb logcat -s liteship` for the app's progress (a big model or many --iterations "
                     "need a longer --timeout); rerun with --keep to inspect the run folder",
            )
        sleep(min(interval, max(timeout_s - elapsed, 0.01)))
        interval = min(interval * 1.5, POLL_MAX_S)


def deploy(model: Path, device: Device, *, images: Sequence[Path] = (), options: DeployOptions = DeployOptions(),
           work_dir: Path | None = None, inputs: Sequence[PreparedInput] | None = None,
           log: Callable[[str], None] | None = None) -> DeviceRun:
    """Run ``model`` on ``device`` with the validation app; returns the schema-valid result.

    ``inputs`` (from :func:`prepare_inputs`) can be shared by several devices; otherwise
    they are made from ``images`` in ``work_dir``.
    """
    from liteship.report import sha256
    from liteship.tflite_inspect import read_model_file

    say = log or (lambda _msg: None)
    data = read_model_file(model)
    own_tmp = None
    if work_dir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="liteship-deploy-")
        work_dir = Path(own_tmp.name)
    try:
        if inputs is None:
            inputs = prepare_inputs(data, images, work_dir / "inputs")
        run_id = new_run_id()
        request = build_request(run_id, sha256(data), inputs, options)
        remote = protocol.run_dir(run_id)
        timings: dict[str, float] = {}
        installed_now = ensure_app(device, options.apk)
        t0 = time.monotonic()
        try:
            _shell_ok(device, f"mkdir -p {quote(remote)}", f"mkdir {remote}")
            device.push(Path(model), f"{remote}/{MODEL_NAME}")
            for item in inputs:
                device.push(item.local, f"{remote}/{item.name}")
            request_local = work_dir / f"request-{device_slug(device.serial)}.json"
            atomic.write_json(request_local, request)
            device.push(request_local, f"{remote}/{protocol.REQUEST_NAME}")  # last: the folder is complete
            timings["push"] = round(time.monotonic() - t0, 3)
            say(f"{device.serial}: pushed {len(inputs)} input(s) and the model to {remote}")
            t1 = time.monotonic()
            _launch(device, f"{remote}/{protocol.REQUEST_NAME}")
            _wait_for_result(device, f"{remote}/{protocol.RESULT_NAME}", options.timeout_s)
            timings["run"] = round(time.monotonic() - t1, 3)
            local_result = work_dir / f"result-{device_slug(device.serial)}.json"
            device.pull(f"{remote}/{protocol.RESULT_NAME}", local_result)
            result = protocol.parse_result(local_result.read_bytes(), source=f"{device.serial}:{remote}/{protocol.RESULT_NAME}")
            if result["run_id"] != run_id:
                raise DeviceResultProblem(f"{device.serial}: result.json is for run {result['run_id']!r}, "
                                          f"expected {run_id!r}", hint="another host may share this device; rerun")
        finally:
            if not options.keep:
                _cleanup(device, remote, say)
        return DeviceRun(device.serial, device.transport, run_id, result, list(inputs), timings, installed_now)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()


def _cleanup(device: Device, remote: str, say: Callable[[str], None] | None) -> None:
    """Best effort: a failed removal never hides the result (or the error) we already have."""
    try:
        r = device.shell(f"rm -rf {quote(remote)}", timeout_s=30)
        problem = r.stderr.strip() if r.exit_code else ""
    except DeviceProblem as exc:
        problem = exc.message
    if problem and say is not None:
        say(f"{device.serial}: could not remove {remote}: {problem}")


def device_slug(serial: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in serial)


@dataclass
class DeviceOutcome:
    """One device of a multi-device deploy: its run, or the error that stopped it."""

    spec: str
    run: DeviceRun | None = None
    error: LiteshipError | None = None
    transport: str = ""


def deploy_many(model: Path, specs: Sequence[str], *, images: Sequence[Path] = (),
                options: DeployOptions = DeployOptions(), transport: str | None = None,
                key_path: Path | None = None, work_dir: Path,
                open_device: Callable[..., Device] | None = None,
                log: Callable[[str], None] | None = None) -> list[DeviceOutcome]:
    """A thread per device; the inputs are prepared once. Never raises for one device's
    failure: each outcome carries its run or its typed error (in ``specs`` order)."""
    from liteship.tflite_inspect import read_model_file

    if open_device is None:
        from liteship.device.connect import open_device as opener
    else:
        opener = open_device
    data = read_model_file(model)
    inputs = prepare_inputs(data, images, work_dir / "inputs")
    outcomes = [DeviceOutcome(spec) for spec in specs]

    def one(outcome: DeviceOutcome, index: int) -> None:
        try:
            device = opener(outcome.spec, transport=transport, key_path=key_path)
            with device:
                outcome.transport = device.transport
                outcome.run = deploy(model, device, options=options, work_dir=work_dir / f"device-{index}",
                                     inputs=inputs, log=log)
        except LiteshipError as exc:
            outcome.error = exc
        except Exception as exc:  # noqa: BLE001 - a bug in one device's thread must not hide the others
            outcome.error = LiteshipError(f"{outcome.spec}: internal error: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(o, k), name=f"deploy:{o.spec}", daemon=True)
               for k, o in enumerate(outcomes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """The per-device table the CLI prints: one line per device, engine and accelerator
    (rows are report.json ``devices[]`` entries)."""
    lines = [f"{'device':<24} {'transport':<10} {'producer':<9} {'engine':<11} {'accel':<6} {'used':<5} "
             f"{'status':<11} {'median ms':>9} {'p90 ms':>8}  verdict"]
    for d in rows:
        label = d.get("producer_kind") or "-"
        if not d.get("delegates"):
            err = d.get("error") or {}
            lines.append(f"{d['serial']:<24} {d.get('transport') or '-':<10} {label:<9} {'-':<11} {'-':<6} {'-':<5} "
                         f"{'error':<11} {'-':>9} {'-':>8}  {err.get('kind', 'error')} (exit {err.get('exit_code', '?')})")
            continue
        for dl in d["delegates"]:
            lat = dl.get("latency") or {}
            med = f"{lat['median_ms']:.3f}" if lat.get("median_ms") is not None else "-"
            p90 = f"{lat['p90_ms']:.3f}" if lat.get("p90_ms") is not None else "-"
            fails = [c["id"] for c in dl.get("checks", []) if c["verdict"] == "fail"]
            verdict = ("FAIL " + ",".join(fails)) if fails else ("skip" if dl["status"] != "ok" else "ok")
            used = dl.get("accelerator_used") or ("-" if dl["status"] != "ok" else dl["delegate"])
            lines.append(f"{d['serial']:<24} {d.get('transport') or '-':<10} {label:<9} "
                         f"{dl.get('engine', protocol.INTERPRETER):<11} {dl['delegate']:<6} {used:<5} "
                         f"{dl['status']:<11} {med:>9} {p90:>8}  {verdict}")
            if dl.get("fallback_reason"):
                lines.append(f"    {dl['delegate']} fell back to {used}: {dl['fallback_reason'][:300]}")
            if dl["status"] == "error" and (dl.get("error") or {}).get("message"):
                lines.append(f"    error: {dl['error']['message'][:400]}")
    if any(d.get("producer_kind") == "emulated" for d in rows):
        lines.append("emulated — not on-device evidence (the desktop runtimes behind an emulated adbd)")
    return "\n".join(lines)
