"""junit.xml from a report dict: one testsuite per variant (and per device and delegate,
named ``liteship.device.<serial>[.emulated].<delegate>``), one testcase per check.

CI systems (GitHub Actions, GitLab, Jenkins) show failing checks by name with the
expected/found numbers and the fix. Run-level errors become a failing ``liteship.run``
testcase so a run that stopped early is never green.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def junit_xml(report: dict[str, Any]) -> str:
    suites = ET.Element("testsuites", name="liteship")
    total = failures = skipped = 0
    groups: list[tuple[str, list[dict[str, Any]]]] = [
        (f"liteship.{variant['name']}", variant.get("checks", [])) for variant in report.get("variants", [])
    ]
    reference = (report.get("validation") or {}).get("reference") or {}
    if reference.get("checks"):
        groups.append(("liteship.reference", reference["checks"]))
    groups += _device_groups(report)
    for name, checks in groups:
        suite = ET.SubElement(suites, "testsuite", name=name)
        n = f = s = 0
        for check in checks:
            n += 1
            case = ET.SubElement(suite, "testcase", classname=name, name=check["id"])
            detail = f"expected {_text(check['expected'])}, found {_text(check['found'])}"
            if check["verdict"] == "fail" or (check["verdict"] == "skip" and not check.get("allowed")):
                # a gating check that could not run fails the gate (exit 3): CI must show it red
                f += 1
                prefix = "" if check["verdict"] == "fail" else "could not run: "
                message = prefix + "; ".join(x for x in (detail, check.get("message", ""), check.get("fix", "")) if x)
                ET.SubElement(case, "failure", message=message).text = message
            elif check["verdict"] in ("skip", "n/a"):
                s += 1
                ET.SubElement(case, "skipped", message=check.get("message") or detail)
            else:
                ET.SubElement(case, "system-out").text = detail
        suite.set("tests", str(n))
        suite.set("failures", str(f))
        suite.set("skipped", str(s))
        total, failures, skipped = total + n, failures + f, skipped + s
    run = ET.SubElement(suites, "testsuite", name="liteship.run")
    errors = report.get("errors", [])
    case = ET.SubElement(run, "testcase", classname="liteship.run", name="run")
    for err in errors:
        ET.SubElement(case, "failure", message=f"[{err['kind']}, exit {err['exit_code']}] {err['message']}").text = err["message"]
    run.set("tests", "1")
    run.set("failures", "1" if errors else "0")
    suites.set("tests", str(total + 1))
    suites.set("failures", str(failures + (1 if errors else 0)))
    suites.set("skipped", str(skipped))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _device_groups(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """One suite per device and delegate (``liteship.device.<serial>[.emulated].<delegate>``);
    a device that returned no result is one failing ``device.result`` testcase."""
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for device in report.get("devices") or []:
        tag = ".emulated" if device.get("producer_kind") == "emulated" else ""
        base = f"liteship.device.{device.get('serial')}{tag}"
        if device.get("checks"):
            groups.append((base, device["checks"]))
        for delegate in device.get("delegates", []):
            groups.append((f"{base}.{delegate['delegate']}", delegate.get("checks", [])))
        err = device.get("error")
        if err:
            groups.append((base, [{"id": "device.result", "verdict": "fail", "expected": "a result from the app",
                                   "found": f"{err.get('kind')} (exit {err.get('exit_code')})",
                                   "message": err.get("message", ""), "fix": err.get("hint") or ""}]))
    return groups
