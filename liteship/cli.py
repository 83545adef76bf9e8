"""The ``liteship`` command line. ``main(argv) -> int``; one error boundary -> exit codes."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liteship import __version__
from liteship.errors import Interrupted, LiteshipError, UsageProblem
from liteship.types import (
    DEFAULT_FROZEN_INPUT_SIZE,
    DEFAULT_VARIANTS,
    ConvertOptions,
    ExportOptions,
    FrozenGraphOptions,
    GpuPrecision,
    InputKind,
    Int8Input,
    Normalization,
    OutputOrder,
    Variant,
)

def _exit_codes_help() -> str:
    from liteship.errors import EXIT_CODES

    return "exit codes:\n" + "\n".join(f"  {code:<3} {text.replace('`', '')}" for code, text in EXIT_CODES) + "\n"


EXIT_CODES_HELP = _exit_codes_help()


def _variants(text: str) -> tuple[Variant, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(Variant(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown variant {part!r}; choose from {', '.join(v.value for v in Variant)}"
            ) from None
    return tuple(dict.fromkeys(out))


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
        if h <= 0 or w <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH like 300x300, found {text!r}") from None
    return h, w


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 3 comma-separated numbers, found {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected 1 or 3 values, found {len(values)}")
    return values


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], found {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], found {value}")
    return value


def _number(kind: type, minimum: float, what: str) -> Any:
    """An argparse type: a ``kind`` number > ``minimum``, else a message saying what was expected."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
            if not value > minimum:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}") from None
        return value
    return parse


_positive = _number(int, 0, "a positive integer")
_seconds = _number(float, 0.0, "a number of seconds > 0")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the report as JSON on stdout (logs stay on stderr)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    g.add_argument("--debug", action="store_true", help="show tracebacks")


def _demo_names() -> list[str]:
    from liteship.pipeline import DEMOS

    return list(DEMOS)


def _model_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", type=Path, metavar="PATH",
                   help="a folder an OD API tool wrote (training folder, exporter / model-zoo folder, "
                        "export_tflite_graph_tf2 or export_tflite_ssd_graph output): liteship finds the input in it")
    g = p.add_argument_group("model (one of a, b, c; none = the embedded demo)")
    g.add_argument("--demo", metavar="NAME", choices=_demo_names(),
                   help="which embedded demo when no model is given: " + ", ".join(_demo_names())
                        + " (default mobilenetv2: SSD MobileNetV2; fpnlite: SSD MobileNetV2-FPNLite; docs/demo.md)")
    g.add_argument("--pipeline-config", type=Path, metavar="FILE", help="(a) pipeline.config used for training")
    g.add_argument("--checkpoint-dir", type=Path, metavar="DIR", help="(a) model_dir written by model_main_tf2.py")
    g.add_argument("--checkpoint", metavar="NAME", help="(a) a checkpoint in --checkpoint-dir (e.g. ckpt-12); default: latest")
    g.add_argument("--saved-model", type=Path, metavar="DIR", help="(b) saved_model/ from export_tflite_graph_tf2.py")
    g.add_argument("--frozen-graph", type=Path, metavar="FILE", help="(c) tflite_graph.pb from TF1 export_tflite_ssd_graph.py")
    fg = FrozenGraphOptions()
    g.add_argument("--input-name", default=fg.input_name, help=f"(c) input node (default {fg.input_name})")
    g.add_argument("--input-size", type=_size, metavar="HxW",
                   help="(c) input height x width (default: the graph's input placeholder; "
                        f"{DEFAULT_FROZEN_INPUT_SIZE[0]}x{DEFAULT_FROZEN_INPUT_SIZE[1]} when it has no static shape)")
    g.add_argument("--output-names", default=",".join(fg.output_names),
                   help="(c) comma-separated output arrays (default: the 4 TFLite_Detection_PostProcess ports)")
    g.add_argument("--label-map", type=Path, metavar="FILE", help="OD API label_map.pbtxt (default: the one the config names)")
    g.add_argument("--images", type=Path, metavar="DIR", help="calibration images for int8 (jpg/png)")
    g.add_argument("--norm-mean", type=_floats, metavar="M", help="input mean for (b)/(c) metadata (default 127.5)")
    g.add_argument("--norm-std", type=_floats, metavar="S", help="input std for (b)/(c) metadata (default 127.5)")
    g.add_argument("--out", type=Path, default=Path("liteship-out"), metavar="DIR", help="output folder (default liteship-out)")


def _export_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("export (input a)")
    g.add_argument("--max-detections", type=_positive, default=10, help="N of the postprocess op (default 10)")
    g.add_argument("--nms", choices=["fast", "regular"], default="fast", help="TFLite NMS flavour (default fast)")
    g.add_argument("--score-threshold", type=_unit, help="NMS score threshold (default: the config's)")
    g.add_argument("--iou-threshold", type=_unit, help="NMS IoU threshold (default: the config's)")


def _convert_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("convert")
    g.add_argument("--variants", type=_variants, default=DEFAULT_VARIANTS, metavar="LIST",
                   help="comma-separated: fp32,fp16,dynamic,int8,gpu (default fp32,fp16,dynamic,int8; gpu = raw "
                        "heads + MediaPipe DETECTOR_METADATA, no postprocess op, for MediaPipe and the GPU delegate)")
    g.add_argument("--gpu-precision", choices=[p.value for p in GpuPrecision], default=GpuPrecision.FP16.value,
                   help="weights of the gpu variant (default fp16)")
    g.add_argument("--int8-input", choices=[v.value for v in Int8Input], default=Int8Input.UINT8.value,
                   help="input type of the int8 variant (default uint8; the Task Library rejects int8)")
    g.add_argument("--calibration-images", type=_positive, default=100, metavar="N",
                   help="number of calibration images for int8 (default 100)")
    g.add_argument("--output-order", choices=[o.value for o in OutputOrder], default=OutputOrder.PORT.value,
                   help="port: boxes, classes, scores, count (default; what apps reading by index expect); "
                        "converter: keep the TF2 converter's scores, boxes, count, classes")
    g.add_argument("--fold-normalization", action=argparse.BooleanOptionalAction, default=True,
                   help="per-channel mean/std (ResNet-FPN, EfficientDet): fold it into the float variants so they "
                        "take 0-255 pixels and MediaPipe can load them (default); --no-fold-normalization keeps it "
                        "in the metadata (MediaPipe then refuses the float variants). int8 always has it in its graph: "
                        "no uint8 input can express a per-channel normalization")


def _validation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("validation (run only)")
    g.add_argument("--ground-truth", type=Path, metavar="PATH",
                   help="Pascal VOC folder, CSV (filename,width,height,class,xmin,ymin,xmax,ymax) or OD API "
                        "TFRecord (x.record, or shards x.record-?????-of-NNNNN): mAP per variant")
    g.add_argument("--parity-images", type=_positive, default=50, metavar="N",
                   help="images compared with the desktop reference (default 50)")
    g.add_argument("--gates", type=Path, metavar="FILE.toml",
                   help="gates file: [accuracy], [lint] contracts, [parity.<variant>] tolerances (flags override it)")
    g.add_argument("--max-map50-drop", type=_unit, metavar="D",
                   help="largest mAP@0.5 drop of a variant below fp32 (default 0.02)")
    g.add_argument("--min-map50", type=_unit, metavar="M", help="minimum mAP@0.5 of every variant (default: none)")
    g.add_argument("--contract", action="append", metavar="NAME", dest="contracts",
                   help="app contract every variant must pass (repeatable; default: bundled-app, task-library, "
                        "mediapipe, litert-compiled; all six are linted and reported)")
    g.add_argument("--no-runtime", action="store_true",
                   help="do not load the variants in the real runtimes (Task Library, MediaPipe, CompiledModel); "
                        "their checks are then n/a (not requested); a runtime that cannot start is a skip (exit 3)")
    g.add_argument("--allow-skip", action="append", metavar="CHECK_ID", dest="allow_skip", default=[],
                   help="a gating check that may be skipped when it cannot run here (repeatable; fnmatch patterns "
                        "such as 'lint.*.task_library.load'); without it such a skip fails the run with exit 3")


def _cache_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cache (liteship/stepcache.py, docs/cache.md)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the step cache")
    g.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="step cache folder (default OUT/.liteship-cache; one folder may serve several outputs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liteship",
        description="Take an OD API SSD detector to Android: export, convert (fp32/fp16/dynamic/int8), metadata, checks.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"liteship {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {
        "run": "the whole flow: export, convert, metadata, checks (no model arguments: the embedded demo)",
        "export": "only export: SavedModel with TFLite_Detection_PostProcess + desktop reference",
        "convert": "export and convert to the TFLite variants (no metadata)",
        "metadata": "export, convert and write TFLite metadata (labels, normalization, named outputs)",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text, epilog=EXIT_CODES_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _model_inputs(p)
        _export_options(p)
        if name != "export":
            _convert_options(p)
        if name == "run":
            _validation_options(p)
            _device_options(p, run=True)
        _cache_options(p)
        _common(p)
    p = sub.add_parser("doctor", help="check the installation (imports, versions)")
    _common(p)
    _lint_parser(sub)
    _device_parsers(sub)
    # listed here; its arguments are liteship.bench's own (see `liteship bench --help`)
    sub.add_parser("bench", help="benchmarks on this machine, as ratios, to a JSON (liteship/bench/)", add_help=False)
    return parser


def _lint_parser(sub: Any) -> None:
    from liteship.validation.contracts import CONTRACTS

    text = "check any .tflite against what the app that loads it needs (exit 30 when a contract fails)"
    contracts_help = "\n".join(f"  {c.name:<14} {c.app}" for c in CONTRACTS)
    p = sub.add_parser("lint", help=text, description=text,
                       epilog="contracts:\n" + contracts_help + "\n\n" + EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, metavar="MODEL.tflite")
    p.add_argument("--contract", action="append", choices=[c.name for c in CONTRACTS], metavar="NAME",
                   help="contract to check (repeatable; default: all of " + ", ".join(c.name for c in CONTRACTS) + ")")
    p.add_argument("--max-results", type=_positive, metavar="N",
                   help="the app's max results (default: each contract's own); N of the postprocess op must be >= it")
    p.add_argument("--no-gpu", action="store_true",
                   help="skip the GPU-delegate compatibility analysis (it starts TensorFlow in a child process)")
    p.add_argument("--no-runtime", action="store_true",
                   help="skip loading and running the model in the real runtimes of the contracts (Task Library, "
                        "MediaPipe, CompiledModel; each in a child process, on by default when installed)")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="photos the runtimes detect on, compared with the desktop run (first 5; default: a synthetic one)")
    p.add_argument("--task-check", action="store_true", help=argparse.SUPPRESS)  # the runtimes run by default now
    p.add_argument("--allow-skip", action="append", metavar="CHECK_ID", dest="allow_skip", default=[],
                   help="a check that may be skipped when it cannot run here, e.g. 'lint.*.gpu.compatibility' "
                        "(repeatable; without it such a skip exits 3)")
    _common(p)

    text = ("check a built APK or App Bundle before Google Play: every .tflite stored uncompressed and "
            "4-byte aligned and linted against the app contracts, every 64-bit native library 16 KB-aligned, "
            "the ML runtimes found and their known problems (exit 30 when a check fails, 3 when one could not run, "
            "15 on an unreadable file)")
    p = sub.add_parser("apk", help=text, description=text, epilog="contracts:\n" + contracts_help + "\n\n" +
                       EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("apk", type=Path, metavar="APP.apk|APP.aab")
    p.add_argument("--contract", action="append", choices=[c.name for c in CONTRACTS], metavar="NAME",
                   help="contract every model must pass (repeatable; default: inferred from the runtime libraries "
                        "in the APK: Task Library -> task-library, LiteRT 2.x -> litert-sample + litert-compiled, "
                        "LiteRT 1.x/TFLite -> litert-sample, MediaPipe Tasks -> mediapipe, liteship's own "
                        "app -> bundled-app)")
    p.add_argument("--runtime", action="store_true",
                   help="also load and run every model in the real runtimes of its contracts (Task Library, "
                        "MediaPipe, CompiledModel; child processes), as `liteship lint` does")
    p.add_argument("--allow-skip", action="append", metavar="CHECK_ID", dest="allow_skip", default=[],
                   help="a check that may be skipped when it cannot run here, e.g. 'apk.model.*.lint' "
                        "(repeatable; without it such a skip exits 3)")
    p.add_argument("--out", type=Path, metavar="DIR", help="also write DIR/apk-report.json")
    _common(p)


def _delegates(text: str) -> tuple[str, ...]:
    from liteship.device.deploy import DELEGATES

    out = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    bad = [x for x in out if x not in DELEGATES]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"unknown delegate(s) {bad or text!r}; choose from {', '.join(DELEGATES)}")
    return out


def _engines(text: str) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    from liteship.device.protocol import ENGINE_ACCELERATORS

    out: dict[str, tuple[str, ...] | None] = {}
    for part in (x.strip() for x in text.split(",") if x.strip()):
        name, _, accs = part.partition(":")
        if name not in ENGINE_ACCELERATORS:
            raise argparse.ArgumentTypeError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_ACCELERATORS)}")
        chosen = tuple(dict.fromkeys(a for a in accs.split("+") if a)) if accs else None
        bad = [a for a in chosen or () if a not in ENGINE_ACCELERATORS[name]]
        if bad or (accs and not chosen):
            raise argparse.ArgumentTypeError(f"engine {name} runs on {'/'.join(ENGINE_ACCELERATORS[name])}, found "
                                             f"{', '.join(bad) or accs!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"engine {name} is listed twice")
        out[name] = chosen
    if not out:
        raise argparse.ArgumentTypeError("--engines needs at least one of " + ", ".join(ENGINE_ACCELERATORS))
    return tuple(out.items())


def _variant_name(text: str) -> str:
    try:
        return Variant(text).value
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown variant {text!r}; choose from {', '.join(v.value for v in Variant)}") from None


def _device_options(p: argparse.ArgumentParser, *, run: bool = False) -> None:
    from liteship.device.connect import TRANSPORTS

    g = p.add_argument_group("device (on-device validation over adb)" + (" — adds the device stage at the end" if run else ""))
    g.add_argument("--device", action="append", metavar="SERIAL|tcp:HOST:PORT", dest="devices", required=not run,
                   help="a serial from `adb devices`, or tcp:HOST:PORT for adbd over TCP (repeatable: devices run in parallel)")
    g.add_argument("--transport", choices=TRANSPORTS,
                   help="adb-shell (direct, Python) or adb-server (the local `adb` server); default: adb-shell for "
                        "tcp: specs, the adb server for serials")
    g.add_argument("--apk", type=Path, metavar="FILE",
                   help="install/upgrade the validation app first (android_app/app/build/outputs/apk/debug/app-debug.apk)")
    g.add_argument("--delegates", type=_delegates, default=("cpu",), metavar="LIST",
                   help="the interpreter's delegates, comma-separated: cpu,gpu,nnapi (default cpu; NNAPI is "
                        "deprecated since Android 15)")
    g.add_argument("--engines", type=_engines, metavar="LIST",
                   help="engines the app runs the model with, compared each with the same engine on the desktop: "
                        "interpreter,compiled,mediapipe; ENGINE:ACC+ACC picks accelerators (compiled:cpu+gpu); "
                        "without one, the interpreter uses --delegates, the others cpu (default: interpreter only)")
    g.add_argument("--threads", type=_positive, default=4, metavar="N", help="interpreter threads on the device (default 4)")
    g.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed invokes before timing (default 2)")
    g.add_argument("--iterations", type=_positive, default=10, metavar="N", help="timed invokes per delegate (default 10)")
    g.add_argument("--timeout", type=_seconds, default=120.0, metavar="S", help="seconds to wait for the app's result (default 120)")
    g.add_argument("--keep", action="store_true", help="keep the run folder on the device (default: removed)")
    g.add_argument("--adb-key", type=Path, metavar="FILE", help="adb private key for adb-shell (default ~/.android/adbkey)")
    if not run:  # `run` has its own --allow-skip (validation options)
        g.add_argument("--allow-skip", action="append", metavar="CHECK_ID", dest="allow_skip", default=[],
                       help="a device check that may be skipped when it cannot run (e.g. 'device.gpu.status' "
                            "on a phone without GPU support; repeatable)")
    if run:
        g.add_argument("--device-variant", type=_variant_name, metavar="VARIANT",
                       help="variant validated on the device (default int8, else the last converted)")
        g.add_argument("--device-images", type=_positive, default=3, metavar="N",
                       help="images sent to the device (default 3, from the parity images)")


def _device_parsers(sub: Any) -> None:
    p = sub.add_parser("devices", help="list connected Android devices (adb server; tcp: specs probed with --device)",
                       description="list the devices the local adb server sees (and probe tcp:HOST:PORT specs)",
                       epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", action="append", metavar="tcp:HOST:PORT", dest="devices", default=[],
                   help="also probe this adbd over TCP with adb-shell (repeatable)")
    p.add_argument("--adb-key", type=Path, metavar="FILE", help="adb private key for adb-shell")
    _common(p)

    text = ("run a .tflite on Android devices with the validation app and compare with the desktop run of the "
            "same model on the same inputs (exit 33 when they differ, 40-45 on device errors)")
    p = sub.add_parser("deploy", help=text, description=text, epilog=EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, metavar="MODEL.tflite")
    _device_options(p)
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="images sent to the device (jpg/png; default: 3 of the embedded demo's images)")
    p.add_argument("--max-images", type=_positive, default=10, metavar="N", help="use at most N images (default 10)")
    p.add_argument("--variant", type=_variant_name, metavar="VARIANT",
                   help="tolerances to apply: fp32, fp16, dynamic, int8 or gpu (default: from the file name; the gpu variant's form: gpu; else the input type)")
    p.add_argument("--out", type=Path, default=Path("liteship-deploy"), metavar="DIR",
                   help="output folder for report.json, junit.xml, report.html (default liteship-deploy)")
    _common(p)

    text = ("run an emulated Android device (adbd on loopback, the validation app on the desktop LiteRT) until "
            "Ctrl-C; its results are labelled emulated, never on-device evidence")
    p = sub.add_parser("emulator", help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="faults: " + ", ".join(_FAULTS) + " (and drop-after-bytes=N, storage-limit=N)")
    p.add_argument("--port", type=int, default=5555, help="TCP port (default 5555; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--root", type=Path, required=True, metavar="DIR", help="the device's filesystem (a host folder)")
    p.add_argument("--serial", help="serial the device reports (default HOST:PORT)")
    p.add_argument("--fault", action="append", default=[], metavar="NAME[=N]", help="simulate a failure (repeatable)")
    _common(p)


#: --fault names -> Faults field (flags); drop-after-bytes / storage-limit take =N
_FAULTS = {
    "refuse-auth": "refuse_auth",
    "app-not-installed": "app_installed",
    "app-crash": "app_crash",
    "app-hang": "app_hang",
    "corrupt-result": "corrupt_result",
    "perturb-result": "perturb_result",
}


def _faults(specs: Sequence[str]) -> Any:
    from liteship.device.emulator import Faults

    faults = Faults()
    for spec in specs:
        name, _, value = spec.partition("=")
        if name in ("drop-after-bytes", "storage-limit"):
            if not value.isdigit():
                raise UsageProblem(f"--fault {name} needs =BYTES, e.g. --fault {name}=4096")
            setattr(faults, "drop_after_bytes" if name == "drop-after-bytes" else "storage_limit_bytes", int(value))
        elif name in _FAULTS and not value:
            setattr(faults, _FAULTS[name], name != "app-not-installed")
        else:
            raise UsageProblem(f"unknown --fault {spec!r}; choose from {', '.join(_FAULTS)}, drop-after-bytes=N, storage-limit=N")
    return faults


def _deploy_options(args: argparse.Namespace) -> Any:
    from liteship.device.deploy import DeployOptions

    engines = None
    if getattr(args, "engines", None):
        engines = tuple((name, accs or (args.delegates if name == "interpreter" else ("cpu",)))
                        for name, accs in args.engines)
    options = DeployOptions(delegates=args.delegates, threads=args.threads, warmup=args.warmup,
                            iterations=args.iterations, timeout_s=args.timeout, keep=args.keep, apk=args.apk,
                            engines=engines)
    for warning in options.warnings:
        if not getattr(args, "quiet", False):
            print(f"liteship: warning: {warning}", file=sys.stderr)
    return options


def _deploy_images(folder: Path | None, limit: int) -> list[Path]:
    from liteship.converter.calibration import find_images
    from liteship.pipeline import DEMO_DIR

    if folder is not None and not folder.is_dir():
        raise UsageProblem(f"--images {folder} is not a folder; give a folder of jpg/png images")
    source = folder if folder is not None else DEMO_DIR / "data" / "calibration"
    paths = find_images(source)[0][: limit if folder is not None else min(limit, 3)]
    if not paths:
        raise UsageProblem(f"--images {source} holds no jpg/png image")
    return paths


def _deploy(args: argparse.Namespace, progress: Any) -> dict[str, Any]:
    import tempfile

    from liteship import pipeline
    from liteship.device import deploy as deploy_mod
    from liteship.device.validate import validate_on_devices
    from liteship.report import Report, status_of
    from liteship.tflite_inspect import inspect_file

    pipeline.check_out_dir(args.out)
    inspect_file(args.model)  # exit 15 before any device is touched
    options = _deploy_options(args)
    from liteship.converter import gpu_variant

    if gpu_variant.is_gpu_form(args.model.read_bytes()):
        problem = gpu_variant.deploy_engines_problem(str(args.model), options.engines)
        if problem is not None:
            raise problem
    images = _deploy_images(args.images, args.max_images)
    report = Report(command=list(sys.argv), out_dir=args.out)
    report.inputs = {"kind": "tflite", "model": str(args.model), "images": [str(p) for p in images],
                     "devices": list(args.devices), "transport": args.transport,
                     "deploy_options": {"delegates": list(options.delegates),
                                        "engines": [{"engine": e, "accelerators": list(a)} for e, a in options.runs],
                                        "threads": options.threads,
                                        "warmup": options.warmup, "iterations": options.iterations,
                                        "timeout_s": options.timeout_s, "keep": options.keep,
                                        "apk": str(options.apk) if options.apk else None}}
    with tempfile.TemporaryDirectory(prefix="liteship-deploy-") as tmp, progress.step(
            f"deploy to {len(args.devices)} device(s)"):
        entries, error = validate_on_devices(args.model, args.devices, images=images, options=options,
                                             work_dir=Path(tmp), transport=args.transport, key_path=args.adb_key,
                                             variant=args.variant, log=progress.info, allow_skip=args.allow_skip)
    report.devices = entries
    if not args.json and not args.quiet:
        progress.info(deploy_mod.summary_table(entries))
    if error is not None:
        report.add_error(error)
    data = report.write(status_of(error), error.exit_code if error else 0)
    if not args.json and not args.quiet:
        progress.info(f"output: {Path(args.out).resolve()}")
    if error is not None:
        error.report = data  # type: ignore[attr-defined]
        raise error
    return data


def _devices(args: argparse.Namespace) -> int:
    from liteship.device.connect import list_devices

    found = list_devices(tuple(args.devices), key_path=args.adb_key)
    rows = [_asdict(d) for d in found]
    if args.json:
        print(json.dumps({"devices": rows, "notes": list(getattr(found, "notes", []))}, indent=2))
        return 0
    if not args.quiet:
        print(f"{'serial':<28} {'state':<13} {'transport':<10} model")
        for d in found:
            print(f"{d.serial:<28} {d.state:<13} {d.transport:<10} {d.model}")
        if not rows:
            print("no device (connect a phone with USB debugging on, or pass --device tcp:HOST:PORT)")
        for note in getattr(found, "notes", []):
            print(f"note: {note}", file=sys.stderr)
    return 0


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)


def _emulator(args: argparse.Namespace) -> int:
    from liteship.device import emulator, protocol

    faults = _faults(args.fault)
    if not 0 <= args.port < 65536:
        raise UsageProblem(f"--port must be 0..65535, found {args.port}")
    installed = (protocol.APP_PACKAGE,) if faults.app_installed else ()
    if args.port == 0:  # pick the port now: the line printed below must name the real one
        import socket

        with socket.socket() as probe:
            probe.bind((args.host, 0))
            args.port = probe.getsockname()[1]
    serial = args.serial or f"{args.host}:{args.port}"
    if not args.quiet:
        print(f"liteship emulated device on {args.host}:{args.port} (root {args.root}); connect with "
              f"--device tcp:{args.host}:{args.port} or `adb connect {args.host}:{args.port}`; "
              "results are emulated — not on-device evidence. Ctrl-C stops it.", file=sys.stderr, flush=True)
    print(serial, flush=True)  # stdout: the serial to connect to (scripts read this line)
    args.root.mkdir(parents=True, exist_ok=True)
    try:
        emulator.serve_forever(args.root, args.port, args.host, faults, args.serial, installed_packages=installed)
    except KeyboardInterrupt:  # Ctrl-C is how it stops
        pass
    return 0


def _lint(args: argparse.Namespace) -> int:
    from liteship.errors import LintFailed
    from liteship.validation import judge, lint
    from liteship.validation.contracts import NAMES

    names = tuple(dict.fromkeys(args.contract)) if args.contract else NAMES
    images = None
    if args.images is not None and not args.no_runtime:
        from liteship.converter import calibration

        paths = calibration.find_images(args.images)[0][:5]
        if not paths:
            raise UsageProblem(f"--images {args.images}: no jpg/png/bmp/webp images found")
        images = [calibration.load_rgb(p) for p in paths]
    result = lint.lint_file(args.model, names, max_results=args.max_results,
                            gpu=not args.no_gpu, runtime=not args.no_runtime, images=images)
    checks = [c.to_dict() for c in judge.lint_checks(result.contracts, names)]
    groups = {str(args.model): checks}
    judge.mark_allowed_skips(groups, args.allow_skip)
    decision = judge.decide(groups, args.allow_skip)
    if args.json:
        print(json.dumps({**result.to_dict(), "exit_code": decision.exit_code if decision else 0}, indent=2))
    elif not args.quiet:
        print(lint.format_table(result))
    if isinstance(decision, LintFailed):
        failed = [f"{n} ({', '.join(r.failed())})" for n, r in result.contracts.items() if r.failed()]
        decision.message = f"{args.model} breaks {len(failed)} contract(s): {'; '.join(failed)}"
    if decision is not None:
        decision.printed = True  # type: ignore[attr-defined]
        raise decision
    return 0


def _apk(args: argparse.Namespace) -> int:
    from liteship import atomic
    from liteship.apk.check import check_apk, format_report
    from liteship.errors import ApkCheckFailed
    from liteship.validation import judge

    result = check_apk(args.apk, args.contract or None, runtime=args.runtime)
    doc = result.to_dict()
    groups = {str(args.apk): doc["checks"]}
    judge.mark_allowed_skips(groups, args.allow_skip)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(args.out / "apk-report.json", doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        print(format_report(result))
    if not result.ok:
        failed = result.failed()
        exc = ApkCheckFailed(f"{args.apk}: {len(failed)} check(s) failed: {', '.join(failed[:6])}"
                             f"{' ...' if len(failed) > 6 else ''}")
        exc.printed = args.json  # type: ignore[attr-defined] # the JSON report is already on stdout
        raise exc
    # no check failed: the judge's skip policy decides (a check that could not run is exit 3 unless allowed)
    decision = judge.decide({str(args.apk): [c for c in doc["checks"] if c["verdict"] == "skip"]}, args.allow_skip)
    if decision is not None:
        decision.printed = args.json  # type: ignore[attr-defined]
        raise decision
    return 0


def _kind(args: argparse.Namespace) -> InputKind | None:
    given = {
        InputKind.CHECKPOINT: args.pipeline_config is not None or args.checkpoint_dir is not None,
        InputKind.SAVED_MODEL: args.saved_model is not None,
        InputKind.FROZEN_GRAPH: args.frozen_graph is not None,
    }
    chosen = [k for k, v in given.items() if v]
    if len(chosen) > 1:
        raise UsageProblem(
            "give one model input: --pipeline-config/--checkpoint-dir, --saved-model, or --frozen-graph "
            f"(found {', '.join(k.value for k in chosen)})"
        )
    if args.checkpoint and args.checkpoint_dir is None:
        raise UsageProblem("--checkpoint names a checkpoint inside --checkpoint-dir; pass --checkpoint-dir too")
    if not chosen:
        return None
    kind = chosen[0]
    if kind is InputKind.CHECKPOINT and (args.pipeline_config is None or args.checkpoint_dir is None):
        missing = "--checkpoint-dir" if args.checkpoint_dir is None else "--pipeline-config"
        raise UsageProblem(f"input (a) needs both --pipeline-config and --checkpoint-dir; {missing} is missing")
    for flag, path in (("--label-map", args.label_map),):
        if path is not None and not path.is_file():
            raise UsageProblem(f"{flag} {path} does not exist or is not a file")
    if args.images is not None and not args.images.is_dir():
        raise UsageProblem(f"--images {args.images} is not a folder; give a folder of jpg/png images")
    return kind


def _discover(args: argparse.Namespace) -> None:
    """``run PATH``, ``--checkpoint-dir`` of an exporter folder, ``--saved-model`` of an
    exporter_main_v2 export: fill in the model flags from the folder (liteship/converter/discover.py)."""
    from liteship.converter import discover

    found = None
    if args.path is not None:
        given = [f for f, v in (("--checkpoint-dir", args.checkpoint_dir), ("--saved-model", args.saved_model),
                                ("--frozen-graph", args.frozen_graph)) if v is not None]
        if given:
            raise UsageProblem(f"give the model as PATH or with {', '.join(given)}, not both")
        found = discover.discover(args.path)
    elif args.checkpoint_dir is not None and args.pipeline_config is None and args.checkpoint_dir.is_dir():
        try:  # a folder holding its own pipeline.config (exporter / zoo / TF1 training folder)
            found = discover.discover(args.checkpoint_dir)
        except LiteshipError:
            found = None  # _kind says what is missing
    elif args.saved_model is not None:
        found = discover.saved_model_parent(args.saved_model)
        if found is not None:
            args.saved_model = None
    if args.checkpoint_dir is not None:
        args.checkpoint_dir = discover.checkpoint_dir(args.checkpoint_dir)
    if found is None:
        return
    args.pipeline_config = args.pipeline_config or found.pipeline_config
    args.checkpoint_dir = found.checkpoint_dir
    args.checkpoint = args.checkpoint or found.checkpoint
    args.saved_model, args.frozen_graph = found.saved_model, found.frozen_graph
    args.label_map = args.label_map or found.label_map
    if not args.quiet:
        print(found.describe(), file=sys.stderr)


def request_from_args(args: argparse.Namespace, command: Sequence[str] | None = None) -> Any:
    """The pipeline request the parsed arguments of run/export/convert/metadata describe."""
    from liteship import pipeline

    _discover(args)
    kind = _kind(args)
    norm = None
    if args.norm_mean is not None or args.norm_std is not None:
        if args.norm_mean is None or args.norm_std is None:
            raise UsageProblem("--norm-mean and --norm-std go together")
        if any(s == 0 for s in args.norm_std):
            raise UsageProblem("--norm-std must not be 0")
        norm = Normalization(mean=args.norm_mean, std=args.norm_std)
    export = ExportOptions(
        max_detections=args.max_detections,
        use_regular_nms=args.nms == "regular",
        score_threshold=args.score_threshold,
        iou_threshold=args.iou_threshold,
    )
    convert = ConvertOptions()
    if args.command != "export":
        convert = ConvertOptions(
            variants=args.variants,
            int8_input=Int8Input(args.int8_input),
            calibration_images=args.calibration_images,
            output_order=OutputOrder(args.output_order),
            gpu_precision=GpuPrecision(args.gpu_precision),
            fold_normalization=args.fold_normalization,
        )
    until = {
        "export": pipeline.Stage.EXPORT,
        "convert": pipeline.Stage.CONVERT,
        "metadata": pipeline.Stage.METADATA,
    }.get(args.command, pipeline.Stage.RUN)
    h, w = args.input_size if args.input_size is not None else (None, None)
    validation: dict[str, Any] = {}
    if args.command == "run":
        from liteship.validation.groundtruth import is_tfrecord

        if args.ground_truth is not None and not args.ground_truth.exists() and not is_tfrecord(args.ground_truth):
            raise UsageProblem(f"--ground-truth {args.ground_truth} does not exist; "
                               "give a VOC folder, a CSV file or an OD API TFRecord")
        import dataclasses

        from liteship.validation import contracts, gates

        unknown = [c for c in args.contracts or [] if c not in contracts.NAMES]
        if unknown:
            raise UsageProblem(f"unknown contract(s) {unknown}; choose from {', '.join(contracts.NAMES)}")
        resolved = gates.load(args.gates) if args.gates is not None else gates.Gates()
        flags: dict[str, Any] = {}
        if args.max_map50_drop is not None:
            flags["max_map50_drop"] = args.max_map50_drop
        if args.min_map50 is not None:
            flags["min_map50"] = args.min_map50
        if args.contracts:
            flags["contracts"] = tuple(dict.fromkeys(args.contracts))
        if args.allow_skip:
            flags["allow_skip"] = tuple(dict.fromkeys((*resolved.allow_skip, *args.allow_skip)))
        validation = dict(parity_images=args.parity_images, gates=dataclasses.replace(resolved, **flags),
                          runtime_checks=not args.no_runtime)
        if args.devices:
            validation.update(devices=tuple(args.devices), device_options=_deploy_options(args),
                              device_transport=args.transport, device_key=args.adb_key,
                              device_variant=args.device_variant, device_images=args.device_images)
        if args.ground_truth is not None:
            validation["ground_truth"] = args.ground_truth
    common = dict(
        **validation,
        export=export,
        convert=convert,
        until=until,
        normalization=norm,
        command=tuple(sys.argv if command is None else command),
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
    )
    if kind is None:
        return pipeline.demo_request(args.out, demo=args.demo or pipeline.DEFAULT_DEMO, label_map=args.label_map,
                                     images=args.images, **common)
    if args.demo is not None:
        raise UsageProblem(f"--demo {args.demo} runs an embedded demo; it cannot go with a model input ({kind.value})")
    return pipeline.Request(
        out=args.out,
        kind=kind,
        pipeline_config=args.pipeline_config,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint=args.checkpoint,
        saved_model=args.saved_model,
        frozen_graph=args.frozen_graph,
        frozen_graph_options=FrozenGraphOptions(
            input_name=args.input_name,
            height=h,
            width=w,
            output_names=tuple(n.strip() for n in args.output_names.split(",")),
        ),
        label_map=args.label_map,
        images=args.images,
        **common,
    )


def _summary(report: dict[str, Any]) -> str:
    lines = [f"{'variant':<8} {'size KB':>9} {'convert s':>9}  {'input':<8} {'ms@1t':>7} {'ms@Nt':>7} "
             f"{'mAP@0.5':>8} {'recall':>7}  checks"]
    for v in report.get("variants", []):
        fails = [c["id"] for c in v["checks"] if c["verdict"] == "fail"]
        map50 = f"{v['map50']:.3f}" if v.get("map50") is not None else "-"
        parity = v.get("parity") or {}
        recall = f"{parity['recall']:.3f}" if parity.get("recall") is not None else "-"
        ms = _latency_cells(v.get("latency"))
        lines.append(
            f"{v['name']:<8} {v['size_bytes'] / 1024:>9.0f} {v['conversion_seconds']:>9.1f}  "
            f"{v['input']['dtype']:<8} {ms[0]:>7} {ms[1]:>7} {map50:>8} {recall:>7}  "
            f"{'FAIL ' + ','.join(fails) if fails else 'ok'}"
        )
    ref = (report.get("validation") or {}).get("reference") or {}
    if ref.get("map50") is not None:  # without ground truth the reference has its sanity run only
        lines.append(f"desktop reference mAP@0.5 {ref['map50']:.3f} (the OD API model, same images)")
    if any(v.get("latency") for v in report.get("variants", [])):
        lines.append("ms@1t / ms@Nt: median invoke() on this desktop CPU at 1 / all threads, not phone latency "
                     "(measure that with `liteship deploy`)")
    cached = [k for k, o in ((report.get("cache") or {}).get("steps") or {}).items() if o == "hit"]
    if (report.get("cache") or {}).get("replayed"):
        lines.append("cache: unchanged inputs, every step replayed from the cache (latency measured again)")
    elif cached:
        lines.append(f"cache: {', '.join(cached)} from the cache")
    return "\n".join(lines)


def _latency_cells(latency: dict[str, Any] | None) -> tuple[str, str]:
    by = (latency or {}).get("threads") or {}
    if not by:
        return "-", "-"
    one = by.get("1")
    most = by[max(by, key=int)]
    return (f"{one['median_ms']:.1f}" if one else "-", f"{most['median_ms']:.1f}")


def _doctor() -> dict[str, Any]:
    from liteship import odapi, report, tflsupport

    odapi.model_builder()
    odapi.export_tflite_lib()
    tflsupport.object_detector_writer()
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    return {"status": "ok", "versions": report.versions()}


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["bench"]:  # its own options and error boundary (liteship/bench/cli.py)
        from liteship.bench import main as bench_main

        return bench_main(raw[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from liteship import nativelog
    from liteship.progress import Progress

    nativelog.quiet(not args.debug)
    progress = Progress(quiet=args.quiet or args.json)
    try:
        if args.command == "lint":
            return _lint(args)
        if args.command == "devices":
            return _devices(args)
        if args.command == "emulator":
            return _emulator(args)
        if args.command == "apk":
            return _apk(args)
        if args.command == "deploy":
            result = _deploy(args, progress)
        elif args.command == "doctor":
            result = _doctor()
        else:
            from liteship import pipeline

            req = request_from_args(args)
            result = pipeline.run(req, progress)
            if not args.json and not args.quiet:
                progress.info(_summary(result))
                progress.info(f"output: {Path(args.out).resolve()}")
        if args.json:
            print(json.dumps(result, indent=2))
        elif args.command == "doctor":
            print(json.dumps(result, indent=2))
        return 0
    except KeyboardInterrupt:
        return _interrupted()
    except LiteshipError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"liteship: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        if args.json and not getattr(exc, "printed", False):  # lint already printed its result
            report = getattr(exc, "report", None)  # the run's report, written before raising
            print(json.dumps(report if report is not None else
                             {"status": "error", "exit_code": exc.exit_code, "error": exc.to_dict()}, indent=2))
        return exc.exit_code
    except Exception as exc:  # the one boundary: a bug, never a user error
        if args.debug:
            traceback.print_exc()
        print(f"liteship: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _interrupted() -> int:
    exc: LiteshipError = Interrupted("interrupted; files already written are complete, rerun to finish")
    print(f"liteship: {exc.message}", file=sys.stderr)
    return exc.exit_code


def entrypoint() -> None:
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before main's own boundary: while importing, parsing arguments
        code = _interrupted()
    sys.exit(code)
