"""The Python API for CI scripts: ``liteship.lint(...)`` and ``liteship.run(...)``.

Both take the same inputs as the CLI and go through the same validation and the same judge
(they build the command line and call the one parser, so flags and keyword arguments cannot
drift apart). Neither raises for what the CLI reports with an exit code: the result carries
the exit code, the status and the report, all JSON-serialisable (``to_dict()``). See
docs/api.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunResult:
    """What ``liteship run`` returned: ``exit_code`` as the CLI's, ``report`` = report.json."""

    exit_code: int
    status: str
    report: dict[str, Any]
    #: the error that ended the run (kind, exit_code, message, failed_checks), None when it passed
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "status": self.status, "error": self.error, "report": self.report}


@dataclass(frozen=True)
class LintReport:
    """What ``liteship lint`` found: every contract's checks, and the exit code it gives."""

    model: str
    exit_code: int
    contracts: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def failed(self) -> dict[str, list[str]]:
        """contract -> ids of its failed checks."""
        return {name: [c["id"] for c in c_["checks"] if c["verdict"] == "fail"] for name, c_ in self.contracts.items()
                if any(c["verdict"] == "fail" for c in c_["checks"])}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "exit_code": self.exit_code, "contracts": self.contracts, "error": self.error}


def lint(path: str | Path, contracts: Sequence[str] | None = None, *, max_results: int | None = None,
         gpu: bool = True, runtime: bool = True, allow_skip: Sequence[str] = ()) -> LintReport:
    """Check any .tflite against the app contracts (default: all), loading it in each contract's
    real runtime unless ``runtime=False``. An unreadable file gives exit code 15 in the result,
    like the CLI."""
    from liteship.errors import LiteshipError
    from liteship.validation import contracts as contracts_mod
    from liteship.validation import judge
    from liteship.validation import lint as lint_mod

    names = tuple(dict.fromkeys(contracts)) if contracts else contracts_mod.NAMES
    unknown = [n for n in names if n not in contracts_mod.NAMES]
    if unknown:
        from liteship.errors import UsageProblem

        err = UsageProblem(f"unknown contract(s) {unknown}; choose from {', '.join(contracts_mod.NAMES)}")
        return LintReport(str(path), err.exit_code, error=err.to_dict())
    try:
        result = lint_mod.lint_file(path, names, max_results=max_results, gpu=gpu, runtime=runtime)
    except LiteshipError as exc:
        return LintReport(str(path), exc.exit_code, error=exc.to_dict())
    groups = {str(path): [c.to_dict() for c in judge.lint_checks(result.contracts, names)]}
    judge.mark_allowed_skips(groups, allow_skip)
    decision = judge.decide(groups, allow_skip)
    return LintReport(str(path), decision.exit_code if decision else 0,
                      {k: v.to_dict() for k, v in result.contracts.items()},
                      decision.to_dict() if decision else None)


def run(*, out: str | Path = "liteship-out", pipeline_config: str | Path | None = None,
        checkpoint_dir: str | Path | None = None, checkpoint: str | None = None,
        saved_model: str | Path | None = None, frozen_graph: str | Path | None = None,
        label_map: str | Path | None = None, images: str | Path | None = None,
        ground_truth: str | Path | None = None, variants: Sequence[str] | None = None,
        gates: str | Path | None = None, contracts: Sequence[str] = (), allow_skip: Sequence[str] = (),
        min_map50: float | None = None, max_map50_drop: float | None = None, parity_images: int | None = None,
        demo: str | None = None, extra_args: Sequence[str] = ()) -> RunResult:
    """``liteship run`` (no model arguments: the embedded demo, ``demo`` names which one:
    ``mobilenetv2`` by default, ``fpnlite``). ``extra_args`` passes any other CLI flag as
    written (e.g. ``["--int8-input", "int8"]``)."""
    argv: list[str] = ["run", "--out", str(out), "--quiet"]
    for flag, value in (("--demo", demo), ("--pipeline-config", pipeline_config), ("--checkpoint-dir", checkpoint_dir),
                        ("--checkpoint", checkpoint), ("--saved-model", saved_model),
                        ("--frozen-graph", frozen_graph), ("--label-map", label_map), ("--images", images),
                        ("--ground-truth", ground_truth), ("--gates", gates), ("--min-map50", min_map50),
                        ("--max-map50-drop", max_map50_drop), ("--parity-images", parity_images)):
        if value is not None:
            argv += [flag, str(value)]
    if variants:
        argv += ["--variants", ",".join(variants)]
    for name in contracts:
        argv += ["--contract", name]
    for pattern in allow_skip:
        argv += ["--allow-skip", pattern]
    argv += list(extra_args)
    return _run_argv(argv)


def _run_argv(argv: list[str]) -> RunResult:
    import sys

    from liteship import cli, pipeline
    from liteship.errors import LiteshipError, UsageProblem

    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # argparse already printed why on stderr
        err = UsageProblem(f"invalid arguments: {' '.join(argv)} (see the message above)")
        return RunResult(err.exit_code, "error", {}, err.to_dict())
    try:
        data = pipeline.run(cli.request_from_args(args, command=("liteship", *argv)))
    except LiteshipError as exc:
        data = getattr(exc, "report", None) or {}
        return RunResult(exc.exit_code, data.get("status", "error"), data, exc.to_dict())
    finally:
        sys.stdout.flush()
    return RunResult(0, data["status"], data)
