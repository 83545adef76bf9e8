"""The "which apps can load this model" matrix (consumer x variant: verdict and the reason)."""

from __future__ import annotations

import html
from typing import Any

from liteship.report.html.text import get

_STYLE = {"pass": "#1b7f3b", "fail": "#b3261e", "skip": "#8a6d00"}


def consumers_section(report: dict[str, Any]) -> str:
    """``validation.consumers`` (liteship.validation.consumers.matrix) as one ``<section>``."""
    m = get(report, "validation", "consumers") or {}
    consumers, table, apps = m.get("consumers", []), m.get("variants", {}), m.get("apps", {})
    if not table:
        return ""
    head = "".join(f'<th style="text-align:left;padding:4px 8px">{html.escape(v)}</th>' for v in table)
    rows = []
    for consumer in consumers:
        cells = []
        for variant in table:
            cell = table[variant].get(consumer)
            if cell is None:
                cells.append('<td style="padding:4px 8px;color:#777">-</td>')
                continue
            verdict = cell["verdict"]
            cells.append(f'<td style="padding:4px 8px;vertical-align:top"><b style="color:{_STYLE.get(verdict, "#333")}">'
                         f'{html.escape(verdict)}</b><br><span style="font-size:85%;overflow-wrap:anywhere">'
                         f'{html.escape(cell["reason"])}</span></td>')
        rows.append(f'<tr><th style="text-align:left;padding:4px 8px;vertical-align:top" '
                    f'title="{html.escape(apps.get(consumer, consumer))}">{html.escape(consumer)}</th>{"".join(cells)}</tr>')
    return ('<section id="consumers"><h2>Which apps can load this model</h2>'
            '<table style="border-collapse:collapse;width:100%"><thead><tr><th style="text-align:left;padding:4px 8px">'
            f'app</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')
