"""junit.xml mirrors the report's checks (fast, no TF)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from liteship.report.junit import junit_xml


def _report(errors: list[dict] | None = None) -> dict:
    checks = [
        {"id": "postprocess_op", "verdict": "pass", "expected": 1, "found": 1, "message": "", "fix": ""},
        {"id": "parity.detections.recall", "verdict": "fail", "expected": ">= 0.98", "found": 0.5, "message": "", "fix": "the variant misses detections"},
        {"id": "parity", "verdict": "n/a", "expected": "x", "found": None, "message": "no reference", "fix": ""},
    ]
    return {"variants": [{"name": "fp32", "checks": checks}, {"name": "int8", "checks": checks[:1]}], "errors": errors or []}


def test_one_testcase_per_check_per_variant_plus_the_run() -> None:
    root = ET.fromstring(junit_xml(_report()))
    cases = root.findall(".//testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("liteship.fp32", "postprocess_op"), ("liteship.fp32", "parity.detections.recall"), ("liteship.fp32", "parity"),
        ("liteship.int8", "postprocess_op"), ("liteship.run", "run"),
    ]
    assert root.get("tests") == "5" and root.get("failures") == "1" and root.get("skipped") == "1"


def test_a_failure_carries_expected_found_and_fix() -> None:
    root = ET.fromstring(junit_xml(_report()))
    failure = root.find(".//testcase[@name='parity.detections.recall']/failure")
    assert failure is not None
    assert "expected >= 0.98, found 0.5" in failure.get("message", "")
    assert "misses detections" in failure.get("message", "")


def test_run_errors_make_the_run_testcase_fail() -> None:
    root = ET.fromstring(junit_xml(_report([{"kind": "calibration", "exit_code": 14, "message": "no images"}])))
    failure = root.find(".//testcase[@name='run']/failure")
    assert failure is not None and "exit 14" in failure.get("message", "")


def test_a_gating_skip_fails_unless_allowed() -> None:
    """A gating check that could not run fails the gate (exit 3): junit must be red too."""
    skip = {"id": "lint.task-library.task_library.load", "verdict": "skip", "expected": "loads", "found": None,
            "message": "cannot import the Task Library", "fix": ""}
    root = ET.fromstring(junit_xml({"variants": [{"name": "fp32", "checks": [skip]}], "errors": []}))
    failure = root.find(".//testcase[@name='lint.task-library.task_library.load']/failure")
    assert failure is not None and failure.get("message", "").startswith("could not run")
    allowed = ET.fromstring(junit_xml({"variants": [{"name": "fp32", "checks": [{**skip, "allowed": True}]}], "errors": []}))
    case = allowed.find(".//testcase[@name='lint.task-library.task_library.load']")
    assert case is not None and case.find("failure") is None and case.find("skipped") is not None
    assert allowed.get("failures") == "0" and allowed.get("skipped") == "1"


def test_reference_checks_get_their_own_suite() -> None:
    ref = {"id": "detections.any", "verdict": "fail", "expected": ">= 1", "found": 0, "message": "detects nothing", "fix": "x"}
    root = ET.fromstring(junit_xml({"variants": [], "validation": {"reference": {"checks": [ref]}}, "errors": []}))
    suite = root.find("testsuite[@name='liteship.reference']")
    assert suite is not None and suite.get("failures") == "1"


def test_reports_are_written_when_a_measurement_object_is_left_in_the_report(tmp_path) -> None:
    """A typed value in a report entry (a dataclass, a numpy number, a Path, an enum) is
    written as plain JSON: such a slip must never keep report.json from being written."""
    import json
    from dataclasses import dataclass
    from pathlib import Path

    import numpy as np

    from liteship.report.write import write_reports
    from liteship.types import Variant, Verdict

    @dataclass(frozen=True)
    class Stats:
        max_abs: float
        where: Path

    report = _report()
    report["variants"][0]["parity"] = {"heads": {"box_encodings": Stats(float("nan"), Path("/x/y"))},
                                       "recall": np.float32(0.5), "counts": np.arange(3), Variant.FP32: Verdict.PASS}
    data = write_reports(report, tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == data
    assert on_disk["variants"][0]["parity"] == {"heads": {"box_encodings": {"max_abs": "nan", "where": "/x/y"}},
                                                "recall": 0.5, "counts": [0, 1, 2], "fp32": "pass"}
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "report.html").is_file()
