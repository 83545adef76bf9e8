"""The device stage: deploy to every device (a thread each), compare each result with the
desktop run, and decide the exit: a device error (40-45, the first device's in order) wins
over the judge's verdict on the device checks (33; 3 for a check that could not run). Used by ``liteship deploy`` and ``liteship run --device``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from liteship.device import compare
from liteship.device.deploy import DeployOptions, deploy_many
from liteship.errors import DeviceAppProblem, LiteshipError


def validate_on_devices(model: Path, specs: Sequence[str], *, images: Sequence[Path], options: DeployOptions,
                        work_dir: Path, transport: str | None = None, key_path: Path | None = None,
                        variant: str | None = None, score_threshold: float = 0.3,
                        open_device: Callable[..., Any] | None = None,
                        log: Callable[[str], None] | None = None,
                        allow_skip: Sequence[str] = ()) -> tuple[list[dict[str, Any]], LiteshipError | None]:
    """report.json ``devices[]`` entries (in ``specs`` order) and the error to raise, if any."""
    outcomes = deploy_many(model, specs, images=images, options=options, transport=transport, key_path=key_path,
                           work_dir=work_dir, open_device=open_device, log=log)
    entries: list[dict[str, Any]] = []
    device_errors: list[LiteshipError] = []
    for outcome in outcomes:
        if outcome.run is None:
            assert outcome.error is not None
            device_errors.append(outcome.error)
            entries.append(compare.error_entry(outcome.spec, outcome.transport, outcome.error))
            continue
        result = outcome.run.result
        if result["status"] == "error":
            err = result.get("error") or {}
            exc = DeviceAppProblem(
                f"{outcome.run.serial}: the validation app could not run the request "
                f"({err.get('stage', '?')}: {err.get('type', '?')}: {err.get('message', '')})",
                hint="a model the device's LiteRT cannot load is a finding: check the ops with `liteship lint`")
            device_errors.append(exc)
            entry = compare.error_entry(outcome.run.serial, outcome.run.transport, exc)
            entry.update(producer_kind=outcome.run.producer_kind,
                         evidence=compare.evidence_label(outcome.run.producer_kind),
                         device=result["device"], producer=result["producer"], result_error=err)
            entries.append(entry)
            continue
        entries.append(compare.compare_run(outcome.run, model, options=options, variant=variant,
                                           score_threshold=score_threshold))
    for outcome, entry in zip(outcomes, entries):
        entry["spec"] = outcome.spec  # as given on the command line; `serial` is what the transport reports
    if device_errors:
        first = device_errors[0]
        if len(specs) > 1:
            failed = sum(1 for e in entries if e["status"] == "error")
            first = type(first)(f"{first.message} ({failed} of {len(specs)} devices failed; see report.json)",
                                hint=first.hint) if type(first) is not LiteshipError else first
        return entries, first
    from liteship.validation import judge

    groups = {e["serial"]: compare.all_checks(e) for e in entries}
    judge.mark_allowed_skips(groups, allow_skip)
    decision = judge.decide(groups, allow_skip)
    if decision is not None and any(e.get("producer_kind") == "emulated" for e in entries):
        decision.message += " [emulated — not on-device evidence]"
    return entries, decision
