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
    ConvertOptions,
    ExportOptions,
    FrozenGraphOptions,
    InputKind,
    Int8Input,
    Normalization,
    OutputOrder,
    Variant,
)

EXIT_CODES_HELP = """exit codes:
  0   success
  1   internal error (a bug: rerun with --debug and report it)
  2   usage: bad or conflicting arguments, missing files, unusable --out
  3   environment: a dependency is missing or broken
  10  pipeline.config refused (not SSD, not fixed_shape_resizer, syntax...)
  11  label map refused (ids, duplicates, count != num_classes...)
  12  checkpoint missing, corrupt or not matching the config
  13  --saved-model / --frozen-graph is not a TFLite-exportable SSD
  14  int8 refused: no usable calibration images (other variants were written)
  15  a .tflite file is unreadable or not a TFLite model
  16  ground truth (VOC folder / CSV / TFRecord) unreadable or inconsistent
  20  export failed
  21  conversion failed or a converted model failed its checks
  22  metadata could not be written or verified
  30  lint: the model breaks a named app contract
  31  parity: a variant differs from the desktop reference beyond its tolerances
  32  accuracy: mAP below --min-map50, or a variant dropped more than --max-map50-drop below fp32
  33  device parity: the device's outputs differ from the desktop run of the same model
  40  device: not found, connection refused or dropped
  41  device: our adb key was refused (accept the prompt on the phone)
  42  device: storage full, read-only path or permission denied
  43  device: app not installed, install failed, or the app died without a result
  44  device: timed out waiting for the result
  45  device: the result file is corrupt or breaks the protocol schema
  130 interrupted
"""


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


def _positive(text: str) -> int:
    try:
        value = int(text)
        if value <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    return value


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the report as JSON on stdout (logs stay on stderr)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    g.add_argument("--debug", action="store_true", help="show tracebacks")


def _model_inputs(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (one of a, b, c; none = the embedded demo)")
    g.add_argument("--pipeline-config", type=Path, metavar="FILE", help="(a) pipeline.config used for training")
    g.add_argument("--checkpoint-dir", type=Path, metavar="DIR", help="(a) model_dir written by model_main_tf2.py")
    g.add_argument("--checkpoint", metavar="NAME", help="(a) a checkpoint in --checkpoint-dir (e.g. ckpt-12); default: latest")
    g.add_argument("--saved-model", type=Path, metavar="DIR", help="(b) saved_model/ from export_tflite_graph_tf2.py")
    g.add_argument("--frozen-graph", type=Path, metavar="FILE", help="(c) tflite_graph.pb from TF1 export_tflite_ssd_graph.py")
    fg = FrozenGraphOptions()
    g.add_argument("--input-name", default=fg.input_name, help=f"(c) input node (default {fg.input_name})")
    g.add_argument("--input-size", type=_size, default=(fg.height, fg.width), metavar="HxW",
                   help=f"(c) input height x width (default {fg.height}x{fg.width})")
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
    g.add_argument("--variants", type=_variants, default=tuple(Variant), metavar="LIST",
                   help="comma-separated: fp32,fp16,dynamic,int8 (default all)")
    g.add_argument("--int8-input", choices=[v.value for v in Int8Input], default=Int8Input.UINT8.value,
                   help="input type of the int8 variant (default uint8; the Task Library rejects int8)")
    g.add_argument("--calibration-images", type=_positive, default=100, metavar="N",
                   help="number of calibration images for int8 (default 100)")
    g.add_argument("--output-order", choices=[o.value for o in OutputOrder], default=OutputOrder.PORT.value,
                   help="port: boxes, classes, scores, count (default; what apps reading by index expect); "
                        "converter: keep the TF2 converter's scores, boxes, count, classes")


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
                   help="app contract every variant must pass (repeatable; default: bundled-app and task-library; "
                        "all four are linted and reported)")


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
        _common(p)
    p = sub.add_parser("doctor", help="check the installation (imports, versions)")
    _common(p)
    _lint_parser(sub)
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
    p.add_argument("--task-check", action="store_true",
                   help="task-library: also load the model with the real Task Library ObjectDetector (child process)")
    _common(p)


def _lint(args: argparse.Namespace) -> int:
    from liteship.errors import LintFailed
    from liteship.validation import lint
    from liteship.validation.contracts import NAMES

    names = tuple(dict.fromkeys(args.contract)) if args.contract else NAMES
    result = lint.lint_file(args.model, names, max_results=args.max_results,
                            gpu=not args.no_gpu, task_check=args.task_check)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.quiet:
        print(lint.format_table(result))
    if not result.ok:
        failed = [f"{n} ({', '.join(r.failed())})" for n, r in result.contracts.items() if r.failed()]
        raise LintFailed(f"{args.model} breaks {len(failed)} contract(s): {'; '.join(failed)}")
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


def _request(args: argparse.Namespace) -> Any:
    from liteship import pipeline

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
        )
    until = {
        "export": pipeline.Stage.EXPORT,
        "convert": pipeline.Stage.CONVERT,
        "metadata": pipeline.Stage.METADATA,
    }.get(args.command, pipeline.Stage.RUN)
    h, w = args.input_size
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
        validation = dict(parity_images=args.parity_images, gates=dataclasses.replace(resolved, **flags))
        if args.ground_truth is not None:
            validation["ground_truth"] = args.ground_truth
    common = dict(
        **validation,
        export=export,
        convert=convert,
        until=until,
        normalization=norm,
        command=tuple(sys.argv),
    )
    if kind is None:
        return pipeline.demo_request(args.out, label_map=args.label_map, images=args.images, **common)
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
    lines = [f"{'variant':<8} {'size KB':>9} {'convert s':>9}  {'input':<8} {'mAP@0.5':>8} {'recall':>7}  checks"]
    for v in report.get("variants", []):
        fails = [c["id"] for c in v["checks"] if c["verdict"] == "fail"]
        map50 = f"{v['map50']:.3f}" if v.get("map50") is not None else "-"
        parity = v.get("parity") or {}
        recall = f"{parity['recall']:.3f}" if parity.get("recall") is not None else "-"
        lines.append(
            f"{v['name']:<8} {v['size_bytes'] / 1024:>9.0f} {v['conversion_seconds']:>9.1f}  "
            f"{v['input']['dtype']:<8} {map50:>8} {recall:>7}  {'FAIL ' + ','.join(fails) if fails else 'ok'}"
        )
    ref = (report.get("validation") or {}).get("reference")
    if ref:
        lines.append(f"desktop reference mAP@0.5 {ref['map50']:.3f} (the OD API model, same images)")
    return "\n".join(lines)


def _doctor() -> dict[str, Any]:
    from liteship import odapi, report, tflsupport

    odapi.model_builder()
    odapi.export_tflite_lib()
    tflsupport.object_detector_writer()
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    return {"status": "ok", "versions": report.versions()}


def main(argv: Sequence[str] | None = None) -> int:
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
        if args.command == "doctor":
            result = _doctor()
        else:
            from liteship import pipeline

            req = _request(args)
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
        exc: LiteshipError = Interrupted("interrupted; files already written are complete, rerun to finish")
        print(f"liteship: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except LiteshipError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"liteship: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        if args.json and exc.kind != "lint":  # lint already printed its result
            print(json.dumps({"status": "error", "error": {"kind": exc.kind, "exit_code": exc.exit_code, "message": exc.message}}))
        return exc.exit_code
    except Exception as exc:  # the one boundary: a bug, never a user error
        if args.debug:
            traceback.print_exc()
        print(f"liteship: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def entrypoint() -> None:
    sys.exit(main())
