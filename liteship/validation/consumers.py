"""Which apps can load this model: per-variant verdicts of every consumer, and a forecast.

* :func:`lint_summary` -- one contract's lint result as report data (verdict, failed checks,
  the one-line reason);
* :func:`matrix` -- pure function over the report's ``variants`` list: consumer x variant,
  pass / fail / skip with a one-line reason (``report.json`` ``validation.consumers``);
  (rendered by :mod:`liteship.report.html.consumers`);
* :func:`forecast` -- before anything is converted: which consumers the chosen options and
  the model's normalization will fail, and why (pre-flight).

A consumer whose real runtime could not start is ``skip`` (with the reason), never ``pass``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from liteship.types import Check, Normalization, Verdict
from liteship.validation import contracts as C

#: the LiteRT interpreter every variant is run with when it is written (verify.runtime_check)
INTERPRETER = "litert-interpreter"
INTERPRETER_CHECK = "litert_runs"


def lint_summary(result: Any) -> dict[str, Any]:
    """A ``lint.ContractResult`` as report data: verdict, failed ids and the one-line reason."""
    return {"verdict": str(result.verdict), "failed": result.failed(), **_cell([c for c in result.checks])}


def _cell(checks: Sequence[Check]) -> dict[str, str]:
    """verdict + reason of one consumer from its checks: the first failure (its fix line names
    what the runtime says), else the first skip, else the first warning, else the runtime run."""
    def line(c: Check) -> str:
        text = c.fix if c.verdict == Verdict.FAIL and c.fix else c.message
        return f"{c.id}: {text}" if text else c.id

    fails = [c for c in checks if c.verdict == Verdict.FAIL]
    if fails:
        return {"cell": "fail", "reason": line(fails[0])}
    skips = [c for c in checks if c.verdict == Verdict.SKIP]
    if skips:
        return {"cell": "skip", "reason": f"not verified: {line(skips[0])}"}
    warnings = [c for c in checks if c.message.startswith("warning:")]
    if warnings:
        return {"cell": "pass", "reason": line(warnings[0])}
    ran = [c for c in checks if c.id.endswith(".load") and c.verdict == Verdict.PASS]
    return {"cell": "pass", "reason": line(ran[0]) if ran else "every check passes"}


def matrix(variants: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"consumers": [...], "variants": {variant: {consumer: {"verdict", "reason"}}}}`` from the
    report's variants (their ``lint`` summaries and the interpreter check)."""
    names = [INTERPRETER, *C.NAMES]
    table: dict[str, dict[str, dict[str, str]]] = {}
    for v in variants:
        row: dict[str, dict[str, str]] = {}
        interp = next((c for c in v.get("checks", []) if c.get("id") == INTERPRETER_CHECK), None)
        if interp is not None:
            ok = interp["verdict"] == Verdict.PASS
            row[INTERPRETER] = {"verdict": "pass" if ok else "fail",
                                "reason": "loads and runs in ai-edge-litert" if ok else f"{interp.get('found')}"}
        for name, summary in (v.get("lint") or {}).items():
            row[name] = {"verdict": summary.get("cell", summary.get("verdict", "skip")),
                         "reason": summary.get("reason", ", ".join(summary.get("failed", [])))}
        table[v["name"]] = row
    apps = {c.name: c.app for c in C.CONTRACTS}
    apps[INTERPRETER] = "LiteRT Interpreter (ai-edge-litert), as every variant is checked when written"
    consumers = [n for n in names if any(n in row for row in table.values())]
    return {"consumers": consumers, "apps": {n: apps.get(n, n) for n in consumers}, "variants": table}


def forecast(
    normalization: Normalization | None,
    *,
    fold_normalization: bool,
    int8_input: str,
    output_order: str,
    max_detections: int,
    float_variants: bool,
    int8_variant: bool = False,
) -> list[str]:
    """What the consumers will refuse, from the options and the model's normalization, before
    any conversion. One line per (consumer, cause); empty = no consumer is expected to fail."""
    out = []
    per_channel = normalization is not None and (len(set(normalization.mean)) > 1 or len(set(normalization.std)) > 1)
    if per_channel and int8_variant:
        out.append("every app: the model normalizes per channel; the int8 variant gets it in its graph (uint8 input "
                   "= the raw pixel, scale 1, zero point 0): no uint8 input quantization can express it")
    if per_channel and float_variants:
        if fold_normalization:
            out.append("mediapipe: the model normalizes per channel (mean "
                       f"{list(normalization.mean)}, std {list(normalization.std)}); the float variants get it folded "
                       "into the graph (input 0-255) so that MediaPipe can load them")
        else:
            out.append("mediapipe: fp32/fp16/dynamic will fail: \"" + C.MEDIAPIPE_ERRORS[
                "input.normalization.per_channel"].text + "\" (per-channel mean/std; drop --no-fold-normalization)")
    if int8_input == "int8":
        refuse = [c.name for c in C.CONTRACTS if "int8" not in c.input_dtypes]
        out.append(f"{', '.join(refuse)}: the int8 variant will fail: int8 input (use --int8-input uint8)")
    if output_order == "converter":
        by_index = [c.name for c in C.CONTRACTS if c.binding == C.Binding.INDEX]
        out.append(f"{', '.join(by_index)}: every variant will fail: they read outputs by index and "
                   "--output-order converter leaves scores first (use --output-order port)")
    short = [c.name for c in C.CONTRACTS if c.max_results > max_detections]
    if short:
        out.append(f"{', '.join(short)}: every variant will fail: --max-detections {max_detections} is below the "
                   "app's max results (" + ", ".join(f"{c.name} {c.max_results}" for c in C.CONTRACTS
                                                    if c.name in short) + ")")
    return out
