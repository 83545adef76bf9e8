"""report.html: one self-contained page that a person reads after a run.

Everything is inline (CSS, SVG plots, base64 JPEG overlays): no scripts, no external URLs,
so the page opens from disk, from a CI artifact or from an e-mail attachment. It is built
from the report.json dict only (plus, for the image overlays, the model files and the
ground truth the report points at) and renders for every status, including a failed run
with no variants. Each section is rendered on its own: a bug in one section shows a note
in its place instead of losing the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.validation import shipview

STATUS_COLOURS = {"ok": "#1a7f37", "partial": "#b35900", "fail": "#cf222e", "error": "#82071e"}
VERDICT_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "skip": "#6e7781"}
SERIES_COLOURS = ["#0969da", "#bf3989", "#b35900", "#1a7f37", "#8250df", "#cf222e", "#57606a"]
OVERLAY_SCORE = 0.3
PANEL_WIDTH = 220


def e(value: Any) -> str:
    """HTML-escaped text of any value (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4, limit: int = 160) -> str:
    """Short, escaped display text of a report value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return e(value)
        if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 10**7):
            return e(f"{value:.{digits - 1}e}")
        return e(f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0").rstrip("."))
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return e(text)


def _get(obj: Any, *keys: Any, default: Any = None) -> Any:
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, (list, tuple)) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return default
        if obj is None:
            return default
    return obj


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _variants(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in (report.get("variants") or []) if isinstance(v, dict)]


def _checks(obj: Any) -> list[dict[str, Any]]:
    checks = obj.get("checks") if isinstance(obj, dict) else None
    return [c for c in (checks or []) if isinstance(c, dict)]


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.status{display:inline-block;color:#fff;font-weight:700;padding:2px 12px;border-radius:12px;text-transform:uppercase;letter-spacing:.05em}
table{border-collapse:collapse;background:#fff;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.verdict{font-weight:700}
.pass{color:#1a7f37}.fail{color:#cf222e}.skip{color:#6e7781}
.bad{background:#ffebe9}
.note{color:#57606a;font-style:italic}
.sectionerror{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px}
details{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:4px 10px;margin:6px 0}
summary{cursor:pointer;font-weight:600}
.kv th{width:180px}
.kv td{overflow-wrap:anywhere;word-break:break-word}
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.plot{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:6px}
.overlay td{padding:4px;text-align:center;font-size:12px}
.overlay img{display:block;margin:0 auto}
.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:18px;height:0;border-top:3px solid;vertical-align:middle;margin-right:4px}
"""


# ---------------------------------------------------------------------------- sections


def _header(report: dict[str, Any]) -> str:
    status = str(report.get("status") or "unknown")
    colour = STATUS_COLOURS.get(status, "#57606a")
    command = report.get("command")
    command_text = " ".join(str(c) for c in command) if isinstance(command, (list, tuple)) else command
    versions = report.get("versions") if isinstance(report.get("versions"), dict) else {}
    inputs = report.get("inputs") if isinstance(report.get("inputs"), dict) else {}
    platform = report.get("platform") if isinstance(report.get("platform"), dict) else {}
    rows = [
        ("status", f'<span class="status" style="background:{colour}">{e(status)}</span>'),
        ("command", f"<code>{e(command_text)}</code>"),
        ("created", fmt(report.get("created"))),
        ("wall time", f"{fmt(_num(report.get('wall_seconds')))} s" if _num(report.get("wall_seconds")) is not None else "—"),
        ("platform", e(" / ".join(f"{k} {v}" for k, v in platform.items())) or "—"),
        ("versions", e(", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)) or "—"),
    ]
    for key, value in inputs.items():
        if value is None or value == [] or value == {}:
            continue
        rows.append((f"input: {key}", f'<span class="mono">{fmt(value, limit=400)}</span>'))
    body = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<h1>liteship report <span class="status" style="background:{colour}">{e(status)}</span></h1>'
        f'<table class="kv" id="header">{body}</table>'
    )


def _check_row(check: dict[str, Any], variant: str | None = None) -> str:
    verdict = str(check.get("verdict") or "")
    cls = verdict if verdict in VERDICT_COLOURS else ""
    cells = [] if variant is None else [f"<td>{e(variant)}</td>"]
    cells += [
        f"<td><code>{e(check.get('id'))}</code></td>",
        f'<td class="verdict {cls}">{e(verdict)}</td>',
        f'<td class="mono">{fmt(check.get("expected"))}</td>',
        f'<td class="mono">{fmt(check.get("found"))}</td>',
        f"<td>{fmt(check.get('message'), limit=600)}</td>",
        f"<td>{fmt(check.get('fix'), limit=600)}</td>",
    ]
    row_class = ' class="bad"' if verdict == "fail" else ""
    return f"<tr{row_class}>{''.join(cells)}</tr>"


def _failing(report: dict[str, Any]) -> str:
    rows = []
    for check in _checks(report):
        if check.get("verdict") == "fail":
            rows.append(_check_row(check, "(run)"))
    for variant in _variants(report):
        for check in _checks(variant):
            if check.get("verdict") == "fail":
                rows.append(_check_row(check, variant.get("name")))
    for device in report.get("devices") or []:
        if not isinstance(device, dict):
            continue
        tag = f"{device.get('serial')}" + (" (emulated)" if device.get("producer_kind") == "emulated" else "")
        for owner in [device, *[d for d in device.get("delegates") or [] if isinstance(d, dict)]]:
            for check in _checks(owner):
                if check.get("verdict") == "fail":
                    rows.append(_check_row(check, tag))
    out = ['<h2 id="failing">Failing checks</h2>']
    if rows:
        out.append(
            '<table id="failing-checks"><tr><th>variant</th><th>id</th><th>verdict</th><th>expected</th>'
            f"<th>found</th><th>message</th><th>fix</th></tr>{''.join(rows)}</table>"
        )
    else:
        out.append('<p class="note">No check failed.</p>')
    errors = [x for x in (report.get("errors") or []) if isinstance(x, dict)]
    out.append('<h2 id="errors">Errors</h2>')
    if errors:
        body = "".join(
            f"<tr class=\"bad\"><td><code>{e(x.get('kind'))}</code></td><td class=\"num\">{fmt(x.get('exit_code'))}</td>"
            f"<td>{fmt(x.get('message'), limit=4000)}</td></tr>"
            for x in errors
        )
        out.append(f'<table id="error-list"><tr><th>kind</th><th>exit code</th><th>message</th></tr>{body}</table>')
    else:
        out.append('<p class="note">No errors.</p>')
    return "".join(out)


def _short_sha(value: Any) -> str:
    return f'<code title="{e(value)}">{e(str(value)[:12])}</code>' if value else "—"


def _size(value: Any) -> str:
    n = _num(value)
    if n is None:
        return "—"
    return e(f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB")


def _input_text(variant: dict[str, Any]) -> str:
    inp = variant.get("input") if isinstance(variant.get("input"), dict) else {}
    text = f"{inp.get('dtype', '?')} {json.dumps(inp.get('shape'))}" if inp else "—"
    quant = inp.get("quantization") if inp else None
    if isinstance(quant, dict) and quant.get("scales"):
        scale = _num(_get(quant, "scales", 0))
        text += f" (scale {scale:.4g}, zero point {_get(quant, 'zero_points', 0)})" if scale is not None else " (quantized)"
    return e(text)


def _roles(variant: dict[str, Any]) -> str:
    outputs = [o for o in (variant.get("outputs") or []) if isinstance(o, dict)]
    if not outputs:
        return "—"
    return "<br>".join(f"{e(o.get('position'))}: {e(o.get('role'))}" for o in outputs)


def _variants_section(report: dict[str, Any]) -> str:
    variants = _variants(report)
    out = ['<h2 id="variants">Variants</h2>']
    if not variants:
        if report.get("devices"):  # `liteship deploy`: a model given, none converted
            return ""
        out.append('<p class="note">The run wrote no model variant.</p>')
        return "".join(out)

    def pct(value: Any) -> str:
        n = _num(value)
        return "—" if n is None else e(f"{n:.4f}")

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("file", lambda v: f"<code>{e(v.get('path'))}</code>"),
        ("size", lambda v: _size(v.get("size_bytes"))),
        ("sha256", lambda v: _short_sha(v.get("sha256"))),
        ("input", _input_text),
        ("output roles (order)", _roles),
        ("output order", lambda v: fmt(v.get("output_order"))),
        ("conversion", lambda v: f"{fmt(_num(v.get('conversion_seconds')))} s" if _num(v.get("conversion_seconds")) is not None else "—"),
        ("mAP@0.5", lambda v: pct(v.get("map50"))),
        ("mAP@[.5:.95]", lambda v: pct(v.get("map"))),
        ("parity recall", lambda v: pct(_get(v, "parity", "recall"))),
        ("parity precision", lambda v: pct(_get(v, "parity", "precision"))),
        ("class agreement", lambda v: pct(_get(v, "parity", "class_agreement"))),
        ("mean IoU", lambda v: pct(_get(v, "parity", "iou", "mean"))),
        ("score delta mean / max", lambda v: (
            f"{fmt(_get(v, 'parity', 'score_delta', 'mean'))} / {fmt(_get(v, 'parity', 'score_delta', 'max'))}"
            if _get(v, "parity", "score_delta") else "—")),
        ("box head max abs", lambda v: fmt(_get(v, "parity", "heads", "box_encodings", "max_abs"))),
        ("class head max abs", lambda v: fmt(_get(v, "parity", "heads", "class_predictions", "max_abs"))),
        ("checks", lambda v: _check_counts(_checks(v))),
    ]
    reference = _get(report, "validation", "reference")
    head = "".join(f"<th>{e(v.get('name'))}</th>" for v in variants)
    if isinstance(reference, dict):
        head += "<th>desktop reference</th>"
    body = []
    for label, getter in rows:
        cells = "".join(f'<td class="num">{_safe_cell(getter, v)}</td>' for v in variants)
        if isinstance(reference, dict):
            key = {"mAP@0.5": "map50", "mAP@[.5:.95]": "map"}.get(label)
            cells += f'<td class="num">{pct(reference.get(key)) if key else ""}</td>'
        body.append(f"<tr><th>{e(label)}</th>{cells}</tr>")
    out.append(f'<table id="variant-table"><tr><th></th>{head}</tr>{"".join(body)}</table>')
    out.append("<h3>All checks</h3>")
    for variant in variants:
        checks = _checks(variant)
        failed = any(c.get("verdict") == "fail" for c in checks)
        rows_html = "".join(_check_row(c) for c in checks) or '<tr><td colspan="6" class="note">no checks</td></tr>'
        out.append(
            f"<details{' open' if failed else ''}><summary>{e(variant.get('name'))}: {_check_counts(checks)}</summary>"
            "<table><tr><th>id</th><th>verdict</th><th>expected</th><th>found</th><th>message</th><th>fix</th></tr>"
            f"{rows_html}</table></details>"
        )
    run_checks = _checks(report)
    if run_checks:
        out.append(
            f"<details><summary>run: {_check_counts(run_checks)}</summary><table><tr><th>id</th><th>verdict</th>"
            f"<th>expected</th><th>found</th><th>message</th><th>fix</th></tr>{''.join(_check_row(c) for c in run_checks)}</table></details>"
        )
    return "".join(out)


def _safe_cell(getter: Callable[[dict[str, Any]], str], variant: dict[str, Any]) -> str:
    try:
        return getter(variant)
    except Exception:  # a malformed value: show a dash, keep the table
        return "?"


def _check_counts(checks: Sequence[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for c in checks:
        counts[str(c.get("verdict"))] = counts.get(str(c.get("verdict")), 0) + 1
    if not counts:
        return "no checks"
    return ", ".join(
        f'<span class="{e(k) if k in VERDICT_COLOURS else ""}">{n} {e(k)}</span>' for k, n in sorted(counts.items())
    )


def _details_section(report: dict[str, Any]) -> str:
    """Export / calibration / labels as compact key-value tables (collapsed)."""
    out = []
    for key in ("export", "calibration", "labels", "validation"):
        value = report.get(key)
        if not isinstance(value, dict) or not value:
            continue
        body = "".join(
            f'<tr><th>{e(k)}</th><td class="mono">{fmt(v, limit=400)}</td></tr>' for k, v in value.items()
        )
        out.append(f'<details><summary>{e(key)}</summary><table class="kv">{body}</table></details>')
    if not out:
        return ""
    return '<h2 id="details">Export, calibration, labels</h2>' + "".join(out)


def _devices_section(report: dict[str, Any]) -> str:
    """The device stage: per-device table, latency and parity per delegate, the emulated banner."""
    devices = [d for d in (report.get("devices") or []) if isinstance(d, dict)]
    if not devices:
        return ""
    out = ['<h2 id="devices">Devices</h2>']
    if any(d.get("producer_kind") == "emulated" for d in devices):
        out.append(
            '<div class="sectionerror" id="emulated-banner"><strong>emulated — not on-device evidence.</strong> '
            "Results marked <em>emulated</em> come from liteship's emulated device (the desktop LiteRT runtime "
            "behind an emulated adbd): they test the deploy path, not the phone.</div>"
        )
    head = ("<tr><th>device</th><th>transport</th><th>producer</th><th>model / Android / ABI</th><th>delegate</th>"
            "<th>status</th><th>median ms</th><th>p90 ms</th><th>min / max ms</th><th>tensor max abs</th>"
            "<th>det. recall / precision</th><th>checks</th></tr>")
    rows = []
    for d in devices:
        facts = d.get("device") if isinstance(d.get("device"), dict) else {}
        producer = d.get("producer_kind") or "—"
        producer_html = f"<strong>{e(producer)}</strong>" + (f"<br><small>{e(d.get('evidence'))}</small>" if d.get("evidence") else "")
        who = e(" / ".join(str(facts.get(k)) for k in ("model", "android_version", "abi") if facts.get(k) is not None)) or "—"
        lead = f"<td><code>{e(d.get('serial'))}</code></td><td>{fmt(d.get('transport'))}</td><td>{producer_html}</td><td>{who}</td>"
        if not d.get("delegates"):
            err = d.get("error") if isinstance(d.get("error"), dict) else {}
            rows.append(f'<tr class="bad">{lead}<td>—</td><td>error</td><td colspan="6">{e(err.get("kind"))} '
                        f'(exit {e(err.get("exit_code"))}): {fmt(err.get("message"), limit=600)}</td></tr>')
            continue
        for dl in d["delegates"]:
            lat = dl.get("latency") if isinstance(dl.get("latency"), dict) else {}
            outputs = _get(dl, "parity", "tensors", "outputs", default={}) or {}
            worst = max((_num(v.get("max_abs")) or 0.0 for v in outputs.values() if isinstance(v, dict)), default=None)
            checks = _checks(dl)
            bad = any(c.get("verdict") == "fail" for c in checks)
            row_class = ' class="bad"' if bad else ""
            rows.append(
                f"<tr{row_class}>{lead}<td>{e(dl.get('delegate'))}</td><td>{e(dl.get('status'))}</td>"
                f'<td class="num">{fmt(lat.get("median_ms"))}</td><td class="num">{fmt(lat.get("p90_ms"))}</td>'
                f'<td class="num">{fmt(lat.get("min_ms"))} / {fmt(lat.get("max_ms"))}</td>'
                f'<td class="num">{fmt(worst)}</td>'
                f'<td class="num">{fmt(_get(dl, "parity", "detections", "recall"))} / {fmt(_get(dl, "parity", "detections", "precision"))}</td>'
                f"<td>{_check_counts(checks)}</td></tr>"
            )
    out.append(f'<table id="device-table">{head}{"".join(rows)}</table>')
    for d in devices:
        label = f" [{d.get('evidence')}]" if d.get("evidence") else ""
        groups = [("device", _checks(d))] + [(str(dl.get("delegate")), _checks(dl)) for dl in d.get("delegates") or []]
        for name, checks in groups:
            if not checks:
                continue
            failed = any(c.get("verdict") == "fail" for c in checks)
            body = "".join(_check_row(c) for c in checks)
            out.append(
                f"<details{' open' if failed else ''}><summary>{e(d.get('serial'))} {e(name)}{e(label)}: "
                f"{_check_counts(checks)}</summary><table><tr><th>id</th><th>verdict</th><th>expected</th>"
                f"<th>found</th><th>message</th><th>fix</th></tr>{body}</table></details>"
            )
    return "".join(out)


# ---------------------------------------------------------------------------- plots (inline SVG)


def _svg_bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    log: bool = False,
    y_max: float | None = None,
    y_min: float | None = None,
    ref: tuple[str, float] | None = None,
    width: int = 420,
    height: int = 260,
    colour: str | None = None,
) -> str:
    """A grouped bar chart as an inline SVG string (missing values are left out)."""
    left, right, top, bottom = 58, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vals in series for v in vals if v is not None]
    if ref is not None:
        values.append(ref[1])
    if log:
        positive = [v for v in values if v > 0] or [1.0]
        lo = math.floor(math.log10(min(positive))) if y_min is None else math.log10(y_min)
        hi = math.ceil(math.log10(max(positive))) if y_max is None else math.log10(y_max)
        if hi <= lo:
            hi = lo + 1

        def y_of(v: float) -> float:
            v = max(v, 10**lo)
            return top + plot_h - (math.log10(v) - lo) / (hi - lo) * plot_h

        ticks = [(10**p, f"1e{p}") for p in range(int(lo), int(hi) + 1)]
        if len(ticks) > 8:
            step = math.ceil(len(ticks) / 8)
            ticks = ticks[::step]
    else:
        lo = 0.0 if y_min is None else y_min
        hi = y_max if y_max is not None else _nice_ceil(max(values) * 1.05 if values and max(values) > 0 else 1.0)

        def y_of(v: float) -> float:
            return top + plot_h - (min(max(v, lo), hi) - lo) / (hi - lo) * plot_h

        ticks = [(lo + (hi - lo) * i / 5, f"{lo + (hi - lo) * i / 5:.3g}") for i in range(6)]
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{e(title)}" font-family="system-ui,sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">{e(title)}</text>',
    ]
    for value, label in ticks:
        y = y_of(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">{e(label)}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#57606a"/>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#57606a"/>')
    n = max(len(labels), 1)
    group_w = plot_w / n
    bar_w = group_w * 0.7 / max(len(series), 1)
    base = top + plot_h
    for i, label in enumerate(labels):
        gx = left + i * group_w + group_w * 0.15
        for s, (name, vals) in enumerate(series):
            v = vals[i] if i < len(vals) else None
            if v is None:
                continue
            y = y_of(v)
            fill = colour or (
                SERIES_COLOURS[s % len(SERIES_COLOURS)] if len(series) > 1 else SERIES_COLOURS[i % len(SERIES_COLOURS)]
            )
            x = gx + s * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.92:.1f}" height="{max(base - y, 0.5):.1f}" fill="{fill}">'
                f"<title>{e(label)} {e(name)}: {e(v)}</title></rect>"
            )
            if len(series) == 1:
                parts.append(
                    f'<text x="{x + bar_w * 0.46:.1f}" y="{y - 3:.1f}" text-anchor="middle" fill="#1f2328">{e(f"{v:.3g}")}</text>'
                )
        parts.append(
            f'<text x="{left + (i + 0.5) * group_w:.1f}" y="{base + 14}" text-anchor="middle">{e(label)}</text>'
        )
    if ref is not None:
        y = y_of(ref[1])
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<line x1="{left}" x2="{left + 22}" y1="{height - 9}" y2="{height - 9}" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<text x="{left + 26}" y="{height - 5}" fill="#cf222e">{e(ref[0])}</text>'
        )
    if len(series) > 1:
        x = left
        for s, (name, _) in enumerate(series):
            colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
            parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
            parts.append(f'<text x="{x + 14}" y="{height - 5}">{e(name)}</text>')
            x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _nice_ceil(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above ``value`` (round axis maxima)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _short(x: Any) -> str:
    text = f"{x:g}" if isinstance(x, (int, float)) else str(x)
    return text[1:] if text.startswith("0.") else text


def _plots_section(report: dict[str, Any]) -> str:
    variants = _variants(report)
    out = ['<h2 id="plots">Plots</h2>']
    if not variants and report.get("devices"):  # `liteship deploy`: no variant by design
        return ""
    if not variants:
        out.append('<p class="note">No plots: the run wrote no model variant.</p>')
        return "".join(out)
    plots: list[str] = []
    notes: list[str] = []

    with_map = [v for v in variants if _num(v.get("map50")) is not None]
    if with_map:
        ref_value = _num(_get(report, "validation", "reference", "map50"))
        ref = (f"desktop reference {ref_value:.4f}", ref_value) if ref_value is not None else None
        lo = min([_num(v["map50"]) or 0.0 for v in with_map] + ([ref_value] if ref_value is not None else []))
        # Zoom in when all values are close to each other (the interesting case: small drops).
        y_min = max(0.0, math.floor((lo - 0.05) * 10) / 10) if lo > 0.5 else 0.0
        plots.append(
            _svg_bars(
                "mAP@0.5 per variant",
                [str(v.get("name")) for v in with_map],
                [("mAP@0.5", [_num(v.get("map50")) for v in with_map])],
                y_min=y_min,
                y_max=1.0,
                ref=ref,
            )
        )
    else:
        notes.append("mAP@0.5: no variant has one (the run had no ground truth).")

    with_hist = [v for v in variants if _get(v, "parity", "iou", "histogram", "counts")]
    for v in with_hist:
        hist = _get(v, "parity", "iou", "histogram")
        edges, counts = hist.get("edges") or [], hist.get("counts") or []
        labels = [
            f"{_short(edges[i])}–{_short(edges[i + 1])}" if i + 1 < len(edges) else str(i) for i in range(len(counts))
        ]
        plots.append(
            _svg_bars(
                f"IoU vs reference: {v.get('name')} (n={_get(v, 'parity', 'iou', 'count', default='?')})",
                labels,
                [("matched detections", [_num(c) for c in counts])],
                width=300,
                height=220,
                colour="#0969da",
            )
        )
    if not with_hist:
        notes.append("IoU histograms: no variant has parity data (no desktop reference or no images).")

    with_delta = [v for v in variants if isinstance(_get(v, "parity", "score_delta"), dict)]
    if with_delta:
        plots.append(
            _svg_bars(
                "score delta vs reference (log scale)",
                [str(v.get("name")) for v in with_delta],
                [
                    ("mean", [_num(_get(v, "parity", "score_delta", "mean")) for v in with_delta]),
                    ("max", [_num(_get(v, "parity", "score_delta", "max")) for v in with_delta]),
                ],
                log=True,
            )
        )
    else:
        notes.append("Score deltas: no variant has parity data.")
    out.append(f'<div class="plots">{"".join(f"<div class=plot>{p}</div>" for p in plots)}</div>')
    out.extend(f'<p class="note">{e(n)}</p>' for n in notes)
    return "".join(out)


# ---------------------------------------------------------------------------- overlays


def _resolve(path: Any, out_dir: Path) -> Path | None:
    if not path:
        return None
    p = Path(str(path))
    candidates = [p] if p.is_absolute() else [out_dir / p, p, out_dir.parent / p]
    for c in candidates:
        if c.exists():
            return c
    return None


def _labels(report: dict[str, Any], out_dir: Path) -> list[str]:
    path = _resolve(_get(report, "labels", "path") or "labelmap.txt", out_dir) or _resolve("labelmap.txt", out_dir)
    if path is None or not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _dashed_rect(draw: Any, box: Sequence[float], colour: str, width: int = 2, dash: int = 5) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay, bx, by) in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
        length = math.hypot(bx - ax, by - ay)
        steps = max(int(length // dash), 1)
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min((k + 1) / steps, 1.0)
            draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                      fill=colour, width=width)


def _panel(rgb: Any, gt_boxes: Sequence[Any], detections: Any, labels: Sequence[str]) -> str:
    """A JPEG data URI: the image scaled to PANEL_WIDTH, ground truth dashed green,
    detections above OVERLAY_SCORE solid red/orange with 'label score'."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb, "RGB")
    scale = PANEL_WIDTH / image.width
    size = (PANEL_WIDTH, max(int(round(image.height * scale)), 1))
    image = image.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    font = _font(11)
    for box in gt_boxes:
        _dashed_rect(draw, [box.xmin * scale, box.ymin * scale, box.xmax * scale, box.ymax * scale], "#00e000")
    if detections is not None:
        for b, c, s in zip(detections.boxes, detections.classes, detections.scores):
            if float(s) < OVERLAY_SCORE:
                continue
            x0, y0, x1, y1 = (float(t) * scale for t in b)
            draw.rectangle([x0, y0, x1, y1], outline="#ff2020", width=2)
            name = labels[int(c)] if 0 <= int(c) < len(labels) else f"class {int(c)}"
            text = f"{name} {float(s):.2f}"
            tx, ty = x0 + 1, max(y0 - 13, 0)
            text_w = draw.textlength(text, font=font)
            tx = max(min(tx, image.width - text_w - 2), 0)
            bbox = draw.textbbox((tx, ty), text, font=font)
            draw.rectangle(bbox, fill="#ff2020")
            draw.text((tx, ty), text, fill="#ffffff", font=font)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _overlays_section(report: dict[str, Any], out_dir: Path, max_images: int) -> str:
    out = ['<h2 id="overlays">Detections on ground-truth images</h2>']
    gt_path = _get(report, "validation", "ground_truth")
    if not _variants(report) and report.get("devices"):
        return ""
    if not _variants(report):
        out.append('<p class="note">No overlays: the run wrote no model variant.</p>')
        return "".join(out)
    if not gt_path:
        out.append('<p class="note">No overlays: this run had no ground truth (pass ground-truth images to '
                   "<code>liteship run</code> to see each variant's detections here).</p>")
        return "".join(out)
    if max_images <= 0:
        out.append('<p class="note">No overlays: max_images is 0.</p>')
        return "".join(out)
    gt_dir = _resolve(gt_path, out_dir)
    if gt_dir is None:
        out.append(f'<p class="note">No overlays: the ground truth {e(gt_path)} does not exist on this machine.</p>')
        return "".join(out)
    models = [(v, _resolve(v.get("path"), out_dir)) for v in _variants(report)]
    missing = [str(v.get("name")) for v, p in models if p is None]
    models = [(v, p) for v, p in models if p is not None]
    if not models:
        out.append('<p class="note">No overlays: none of the model files exists in the output folder.</p>')
        return "".join(out)

    from liteship.validation.detect import TFLiteDetector
    from liteship.validation.groundtruth import load_ground_truth

    labels = _labels(report, out_dir)
    gt = load_ground_truth(gt_dir, labels or None)[:max_images]
    if not gt:
        out.append(f'<p class="note">No overlays: no ground-truth image in {e(gt_path)}.</p>')
        return "".join(out)
    detectors: list[tuple[str, Any, str | None]] = []
    for v, path in models:
        try:
            md = v.get("metadata") if isinstance(v.get("metadata"), dict) else {}
            mean = (md.get("norm_mean") or [127.5])
            std = (md.get("norm_std") or [127.5])
            mean = mean[0] if len(mean) == 1 else mean
            std = std[0] if len(std) == 1 else std
            detectors.append((str(v.get("name")), TFLiteDetector(path, num_threads=2, mean=mean, std=std), None))
        except Exception as exc:  # a model that cannot run: say so in its column
            detectors.append((str(v.get("name")), None, f"{type(exc).__name__}: {exc}"))

    out.append(
        '<p class="legend"><span><i class="swatch" style="border-color:#00c000;border-top-style:dashed"></i>ground truth</span>'
        f'<span><i class="swatch" style="border-color:#ff2020"></i>detections with score ≥ {OVERLAY_SCORE}</span>'
        f"first {len(gt)} ground-truth image(s); each model runs like an app: one image at a time.</p>"
    )
    head = "".join(f"<th>{e(name)}</th>" for name, _, _ in detectors)
    rows = []
    for g in gt:
        rgb = g.load_rgb()
        cells = []
        for name, detector, problem in detectors:
            if detector is None:
                cells.append(f'<td class="sectionerror">{e(problem)}</td>')
                continue
            try:
                det = detector.detect(rgb)
                shown = int((det.scores >= OVERLAY_SCORE).sum())
                uri = _panel(rgb, g.boxes, det, labels)
                cells.append(
                    f'<td><img src="{uri}" alt="{e(name)} on {e(g.filename)}" width="{PANEL_WIDTH}">'
                    f"{shown} det. / {len(g.boxes)} GT</td>"
                )
            except Exception as exc:
                cells.append(f'<td class="sectionerror">{e(type(exc).__name__)}: {e(exc)}</td>')
        rows.append(f"<tr><th><code>{e(g.filename)}</code></th>{''.join(cells)}</tr>")
    out.append(f'<table class="overlay"><tr><th>image</th>{head}</tr>{"".join(rows)}</table>')
    if missing:
        out.append(f'<p class="note">Not shown (model file missing): {e(", ".join(missing))}.</p>')
    return "".join(out)


# ---------------------------------------------------------------------------- page


def _section(name: str, render: Callable[[], str]) -> str:
    try:
        return render()
    except Exception as exc:  # one broken section never loses the page
        return f'<div class="sectionerror">The {e(name)} section could not be rendered: {e(type(exc).__name__)}: {e(exc)}</div>'


def render_html(report: dict[str, Any], out_dir: Path, max_images: int = 6) -> str:
    """The whole page as a string (see the module docstring)."""
    report = report if isinstance(report, dict) else {}
    out_dir = Path(out_dir)
    status = str(report.get("status") or "unknown")
    sections = [
        _section("header", lambda: _header(report)),
        _section("failing checks", lambda: _failing(report)),
        _section("variants", lambda: _variants_section(report)),
        _section("which variant to ship", lambda: shipview.render(report)),
        _section("devices", lambda: _devices_section(report)),
        _section("plots", lambda: _plots_section(report)),
        _section("overlays", lambda: _overlays_section(report, out_dir, max_images)),
        _section("details", lambda: _details_section(report)),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>liteship report: {e(status)}</title>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{''.join(sections)}"
        f'<p class="note">schema {e(report.get("schema"))} v{e(report.get("schema_version"))}; '
        "the machine-readable data is report.json next to this file.</p></main></body></html>\n"
    )


def write_html(report: dict[str, Any], out_dir: Path) -> Path:
    """``out_dir / "report.html"``, written atomically."""
    return atomic.write_text(Path(out_dir) / "report.html", render_html(report, Path(out_dir)))


def fallback_html(exc: BaseException) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>liteship report</title></head>"
        "<body><h1>liteship report</h1><p>The HTML renderer failed: "
        f"<code>{e(type(exc).__name__)}: {e(exc)}</code></p>"
        "<p>The run's results are in report.json and junit.xml next to this file.</p></body></html>\n"
    )


def write_html_safely(report: dict[str, Any], out_dir: Path) -> Path | None:
    """:func:`write_html`, but a rendering bug never breaks the run: on any exception a
    minimal page saying so is written instead (still atomically)."""
    try:
        return write_html(report, out_dir)
    except Exception as exc:
        try:
            return atomic.write_text(Path(out_dir) / "report.html", fallback_html(exc))
        except Exception:
            return None
