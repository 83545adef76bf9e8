"""report.html's "Which variant to ship" section: one table and a latency-vs-mAP plot.

A renderer of the report dict only: ``render(report) -> str``. Per variant: size, desktop
latency (``variants[].latency``, liteship/validation/latency.py), mAP@0.5, the parity
verdict, which apps can load it (the consumer matrix, ``validation.consumers``,
liteship/validation/consumers.py), and whether every check passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from liteship.report.html.svg import nice_ceil
from liteship.report.html.text import e as _e
from liteship.report.html.text import get, num as _num, variants_of as _variants

DEVICE_NOTE = (
    "Latency here is desktop latency: this machine's CPU ({cpu}) running LiteRT with XNNPACK. "
    "It is not phone latency: ARM cores, int8 dot-product instructions and the GPU / NNAPI "
    "delegates can change the numbers and even the order. Measure on the phone with "
    "<code>liteship deploy</code> (per delegate: median, p90)."
)

STYLE = (
    "<style>"
    "#ship table{border-collapse:collapse;margin:6px 0}"
    "#ship th,#ship td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;font-size:13px}"
    "#ship th:first-child,#ship td:first-child,#ship .l{text-align:left}"
    "#ship tr.best td{background:#dafbe1}"
    "#ship .pass{color:#1a7f37}#ship .fail{color:#cf222e;font-weight:600}#ship .skip{color:#9a6700}"
    "#ship .muted{color:#57606a}"
    "</style>"
)

COLOURS = {"fp32": "#0969da", "fp16": "#8250df", "dynamic": "#bf8700", "int8": "#1a7f37"}


def _latency(v: dict[str, Any], threads: str | None) -> dict[str, Any] | None:
    by = (v.get("latency") or {}).get("threads") or {}
    if not by:
        return None
    if threads is None:  # the largest thread count
        threads = max(by, key=lambda k: int(k))
    return by.get(threads)


def _max_threads(variants: Sequence[dict[str, Any]]) -> str | None:
    counts = {k for v in variants for k in ((v.get("latency") or {}).get("threads") or {})}
    return max(counts, key=int) if counts else None


def _size(n: Any) -> str:
    n = _num(n)
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _verdict(checks: Sequence[dict[str, Any]], prefix: str) -> str:
    mine = [c for c in checks if str(c.get("id", "")).startswith(prefix)]
    if not mine:
        return "n/a"
    verdicts = {str(c.get("verdict")) for c in mine}
    for v in ("fail", "skip", "pass"):
        if v in verdicts:
            return v
    return "n/a"


MARKS = {"pass": "✓", "fail": "✗", "skip": "?"}


def _contracts(report: dict[str, Any], v: dict[str, Any]) -> str:
    """The variant's column of the consumer matrix: ✓ loads, ✗ fails, ? not verified here."""
    row = get(report, "validation", "consumers", "variants", v.get("name")) or {}
    if not row:
        return '<span class="muted">not validated</span>'
    parts = []
    for name in get(report, "validation", "consumers", "consumers") or list(row):
        cell = row.get(name)
        if not isinstance(cell, dict):
            continue
        verdict = str(cell.get("verdict"))
        parts.append(f'<span class="{_e(verdict)}" title="{_e(cell.get("reason", ""))}">'
                     f'{MARKS.get(verdict, "-")} {_e(name)}</span>')
    return " ".join(parts)


def _all_pass(v: dict[str, Any]) -> bool:
    return all(c.get("verdict") != "fail" for c in v.get("checks") or [])


def best_variant(report: dict[str, Any]) -> dict[str, Any] | None:
    """The fastest (1 thread) variant with no failing check; ties: the smaller file."""
    candidates = [v for v in _variants(report) if _all_pass(v) and _latency(v, "1")]
    if not candidates:
        return None
    return min(candidates, key=lambda v: (_latency(v, "1")["median_ms"], v.get("size_bytes") or 0))


def _ms(x: dict[str, Any] | None) -> str:
    if not x or _num(x.get("median_ms")) is None:
        return "-"
    return f"{x['median_ms']:.2f} <span class=muted>(p90 {x['p90_ms']:.2f})</span>"


def _table(report: dict[str, Any]) -> str:
    variants = _variants(report)
    nt = _max_threads(variants)
    fp32 = next((v for v in variants if v.get("name") == "fp32"), None)
    base_size, base_map = (_num(fp32.get("size_bytes")), _num(fp32.get("map50"))) if fp32 else (None, None)
    best = best_variant(report)
    head = ("<tr><th>variant</th><th>size</th><th>latency 1 thread, ms</th>"
            + (f"<th>latency {nt} threads, ms</th>" if nt and nt != "1" else "")
            + '<th>mAP@0.5</th><th>parity</th><th class="l">apps that load it</th><th>all checks</th></tr>')
    rows = []
    for v in variants:
        size = _size(v.get("size_bytes"))
        if base_size and _num(v.get("size_bytes")) is not None and v is not fp32:
            size += f' <span class="muted">({v["size_bytes"] / base_size:.0%} of fp32)</span>'
        m = _num(v.get("map50"))
        map_text = "-" if m is None else f"{m:.3f}"
        if m is not None and base_map is not None and v is not fp32:
            map_text += f' <span class="muted">({m - base_map:+.3f})</span>'
        parity = _verdict(v.get("checks") or [], "parity.")
        ok = _all_pass(v)
        cells = [
            f"<td><strong>{_e(v.get('name'))}</strong>{' ← fastest passing' if v is best else ''}</td>",
            f"<td>{size}</td>",
            f"<td>{_ms(_latency(v, '1'))}</td>",
            f"<td>{_ms(_latency(v, nt))}</td>" if nt and nt != "1" else "",
            f"<td>{map_text}</td>",
            f'<td class="{parity if parity in ("pass", "fail", "skip") else "muted"}">{_e(parity)}</td>',
            f'<td class="l">{_contracts(report, v)}</td>',
            f'<td class="{"pass" if ok else "fail"}">{"pass" if ok else "fail"}</td>',
        ]
        rows.append(f'<tr{" class=best" if v is best else ""}>{"".join(cells)}</tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def latency_map_svg(report: dict[str, Any], width: int = 520, height: int = 320) -> str | None:
    """Scatter: x = median latency at 1 thread (line to p90), y = mAP@0.5; None without data."""
    points = []
    for v in _variants(report):
        lat, m = _latency(v, "1"), _num(v.get("map50"))
        if lat and m is not None and _num(lat.get("median_ms")) is not None:
            points.append((str(v.get("name")), float(lat["median_ms"]), float(lat.get("p90_ms") or lat["median_ms"]), m,
                           _num(v.get("size_bytes"))))
    if not points:
        return None
    left, right, top, bottom = 60, 20, 30, 46
    pw, ph = width - left - right, height - top - bottom
    x_hi = nice_ceil(max(p[2] for p in points) * 1.1)
    lo = min(p[3] for p in points)
    y_lo = max(0.0, math.floor((lo - 0.05) * 10) / 10) if lo > 0.5 else 0.0
    y_hi = 1.0

    def x_of(x: float) -> float:
        return left + min(max(x, 0.0), x_hi) / x_hi * pw

    def y_of(y: float) -> float:
        return top + ph - (min(max(y, y_lo), y_hi) - y_lo) / (y_hi - y_lo) * ph

    parts = [f'<svg id="latency-map" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="latency vs mAP" font-family="system-ui,sans-serif" font-size="11">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">'
             "desktop latency (1 thread) vs mAP@0.5</text>"]
    for i in range(6):
        xv, yv = x_hi * i / 5, y_lo + (y_hi - y_lo) * i / 5
        parts.append(f'<line x1="{x_of(xv):.1f}" x2="{x_of(xv):.1f}" y1="{top}" y2="{top + ph}" stroke="#eaeef2"/>'
                     f'<text x="{x_of(xv):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#57606a">{xv:.3g}</text>')
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y_of(yv):.1f}" y2="{y_of(yv):.1f}" stroke="#eaeef2"/>'
                     f'<text x="{left - 4}" y="{y_of(yv) + 4:.1f}" text-anchor="end" fill="#57606a">{yv:.3g}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#57606a"/>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">median invoke() ms, this desktop CPU '
                 "(line: to p90; left = faster)</text>")
    parts.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">mAP@0.5</text>')
    placed: list[tuple[float, float, float]] = []  # label boxes: x0, x1, baseline y
    for name, med, p90, m, size in sorted(points, key=lambda p: p[1]):
        cx, cy = x_of(med), y_of(m)
        colour = COLOURS.get(name, "#57606a")
        label_w = 6.5 * len(f"{name} · {_size(size)}")
        # the first free slot, alternately above and below the point, inside the plot area
        # (variants of equal mAP sit on one line: their labels must not pile up over the title)
        slots = [d for k in range(12) for d in ((-8 - 13 * k), (17 + 13 * k))]
        free = [d for d in slots if top + 10 <= cy + d <= top + ph - 3
                and not any(cx + 7 < x1 and x0 < cx + 7 + label_w and abs(cy + d - y) < 13 for x0, x1, y in placed)]
        dy = free[0] if free else -8
        placed.append((cx + 7, cx + 7 + label_w, cy + dy))
        if dy not in (-8, 17):  # a label away from its point: a leader line to it
            parts.append(f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{cx + 7:.1f}" y2="{cy + dy - 4:.1f}" '
                         f'stroke="{colour}" stroke-width="0.7" opacity="0.7"/>')
        parts.append(f'<line x1="{cx:.1f}" x2="{x_of(p90):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{colour}" '
                     'stroke-width="2" opacity="0.6"/>')
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}"><title>{_e(name)}: {med:.3f} ms '
                     f"(p90 {p90:.3f}), mAP@0.5 {m:.3f}, {_e(_size(size))}</title></circle>")
        parts.append(f'<text x="{cx + 7:.1f}" y="{cy + dy:.1f}" fill="{colour}">{_e(name)} · {_e(_size(size))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(report: dict[str, Any]) -> str:
    """The section (empty when the run wrote no variant)."""
    report = report if isinstance(report, dict) else {}
    variants = _variants(report)
    if not variants:
        return ""
    out = [STYLE, '<section id="ship"><h2 id="which-variant">Which variant to ship</h2>']
    cpu = next(((v.get("latency") or {}).get("cpu") for v in variants if v.get("latency")), None)
    if cpu is None:
        out.append('<p class="note">No latency: this run did not measure it (only <code>liteship run</code> does).</p>')
    else:
        out.append(f'<p class="note">{DEVICE_NOTE.format(cpu=_e(cpu))}</p>')
    out.append(_table(report))
    best = best_variant(report)
    if best is not None:
        lat = _latency(best, "1") or {}
        out.append(f"<p>Fastest on this desktop CPU among the variants that pass every check: "
                   f"<strong>{_e(best.get('name'))}</strong> ({lat.get('median_ms', 0):.2f} ms at 1 thread, "
                   f"{_e(_size(best.get('size_bytes')))}"
                   + (f", mAP@0.5 {best['map50']:.3f}" if _num(best.get("map50")) is not None else "")
                   + "). Confirm on the phone before shipping.</p>")
    elif cpu is not None:
        out.append('<p class="note">No variant passes every check: see the failing checks above.</p>')
    svg = latency_map_svg(report)
    if svg is not None:
        out.append(f'<div class="plot">{svg}</div>')
    elif cpu is not None:
        out.append('<p class="note">No latency-vs-mAP plot: no variant has an mAP (the run had no ground truth).</p>')
    out.append("</section>")
    return "".join(out)
