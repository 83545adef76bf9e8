"""Render a report dict to report.json, junit.xml and report.html, each written atomically.

The renderers only render what they are given: no model runs, no file reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.report.html import write_html_safely
from liteship.report.junit import junit_xml


def write_reports(data: dict[str, Any], out_dir: Path, overlays: Any = None) -> dict[str, Any]:
    """junit.xml, report.html (never raises: a fallback page on a renderer bug), then
    report.json last: a report.json on disk means the other two are complete. Returns the
    report exactly as report.json holds it (strict JSON: tuples as lists, NaN as "nan")."""
    data = json.loads(json.dumps(atomic.json_safe(data), allow_nan=False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "junit.xml", junit_xml(data))
    write_html_safely(data, out_dir, overlays)
    atomic.write_json(out_dir / "report.json", data)
    return data
