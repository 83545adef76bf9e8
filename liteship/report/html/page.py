"""report.html: one self-contained page that a person reads after a run.

Everything is inline (CSS, SVG plots, base64 JPEG overlays): no scripts, no external URLs,
so the page opens from disk, from a CI artifact or from an e-mail attachment. It is built
from the report.json dict only (plus, for the image overlays, the images and detections the
validation stage computed: the renderer runs no model and reads no file) and renders for every status, including a failed run
with no variants. Each section is rendered on its own: a bug in one section shows a note
in its place instead of losing the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from liteship import atomic
from liteship.report.html.consumers import consumers_section
from liteship.report.html.overlays import Overlays, overlays_section
from liteship.report.html.svg import bars, short
from liteship.report.html.text import checks_of, e, fmt, get, num, variants_of
from liteship.report.html import ship

STATUS_COLOURS = {"ok": "#1a7f37", "partial": "#b35900", "fail": "#cf222e", "error": "#82071e"}
VERDICT_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "skip": "#b35900", "n/a": "#6e7781"}


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
.pass{color:#1a7f37}.fail{color:#cf222e}.skip{color:#b35900}
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
        ("wall time", f"{fmt(num(report.get('wall_seconds')))} s" if num(report.get("wall_seconds")) is not None else "—"),
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
        f"<td>{fmt(check.get('message'), limit=600)}{' (skip allowed)' if check.get('allowed') else ''}</td>",
        f"<td>{fmt(check.get('fix'), limit=600)}</td>",
    ]
    row_class = ' class="bad"' if verdict == "fail" or (verdict == "skip" and not check.get("allowed")) else ""
    return f"<tr{row_class}>{''.join(cells)}</tr>"


def _blocking(check: dict[str, Any]) -> bool:
    """A failed check, or a gating check that could not run and was not allowed to skip."""
    return check.get("verdict") == "fail" or (check.get("verdict") == "skip" and not check.get("allowed"))


def _failing(report: dict[str, Any]) -> str:
    rows = []
    for check in checks_of(report):
        if _blocking(check):
            rows.append(_check_row(check, "(run)"))
    for variant in variants_of(report):
        for check in checks_of(variant):
            if _blocking(check):
                rows.append(_check_row(check, variant.get("name")))
    for check in checks_of(get(report, "validation", "reference") or {}):
        if _blocking(check):
            rows.append(_check_row(check, "desktop reference"))
    for device in report.get("devices") or []:
        if not isinstance(device, dict):
            continue
        tag = f"{device.get('serial')}" + (" (emulated)" if device.get("producer_kind") == "emulated" else "")
        for owner in [device, *[d for d in device.get("delegates") or [] if isinstance(d, dict)]]:
            for check in checks_of(owner):
                if _blocking(check):
                    rows.append(_check_row(check, tag))
    out = ['<h2 id="failing">Failing checks</h2><p class="note">failed checks, and gating checks that could '
           'not run (skip) unless allowed with --allow-skip</p>']
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
    n = num(value)
    if n is None:
        return "—"
    return e(f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB")


def _input_text(variant: dict[str, Any]) -> str:
    inp = variant.get("input") if isinstance(variant.get("input"), dict) else {}
    text = f"{inp.get('dtype', '?')} {json.dumps(inp.get('shape'))}" if inp else "—"
    quant = inp.get("quantization") if inp else None
    if isinstance(quant, dict) and quant.get("scales"):
        scale = num(get(quant, "scales", 0))
        text += f" (scale {scale:.4g}, zero point {get(quant, 'zero_points', 0)})" if scale is not None else " (quantized)"
    return e(text)


def _roles(variant: dict[str, Any]) -> str:
    outputs = [o for o in (variant.get("outputs") or []) if isinstance(o, dict)]
    if not outputs:
        return "—"
    return "<br>".join(f"{e(o.get('position'))}: {e(o.get('role'))}" for o in outputs)


def _variants_section(report: dict[str, Any]) -> str:
    variants = variants_of(report)
    out = ['<h2 id="variants">Variants</h2>']
    if not variants:
        if report.get("devices"):  # `liteship deploy`: a model given, none converted
            return ""
        out.append('<p class="note">The run wrote no model variant.</p>')
        return "".join(out)

    def pct(value: Any) -> str:
        n = num(value)
        return "—" if n is None else e(f"{n:.4f}")

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("file", lambda v: f"<code>{e(v.get('path'))}</code>"),
        ("size", lambda v: _size(v.get("size_bytes"))),
        ("sha256", lambda v: _short_sha(v.get("sha256"))),
        ("input", _input_text),
        ("output roles (order)", _roles),
        ("output order", lambda v: fmt(v.get("output_order"))),
        ("conversion", lambda v: f"{fmt(num(v.get('conversion_seconds')))} s" if num(v.get("conversion_seconds")) is not None else "—"),
        ("mAP@0.5", lambda v: pct(v.get("map50"))),
        ("mAP@[.5:.95]", lambda v: pct(v.get("map"))),
        ("parity recall", lambda v: pct(get(v, "parity", "recall"))),
        ("parity precision", lambda v: pct(get(v, "parity", "precision"))),
        ("class agreement", lambda v: pct(get(v, "parity", "class_agreement"))),
        ("mean IoU", lambda v: pct(get(v, "parity", "iou", "mean"))),
        ("score delta mean / max", lambda v: (
            f"{fmt(get(v, 'parity', 'score_delta', 'mean'))} / {fmt(get(v, 'parity', 'score_delta', 'max'))}"
            if get(v, "parity", "score_delta") else "—")),
        ("box head max abs", lambda v: fmt(get(v, "parity", "heads", "box_encodings", "max_abs"))),
        ("box head PSNR dB", lambda v: fmt(get(v, "parity", "heads", "box_encodings", "psnr_db"))),
        ("class head max abs", lambda v: fmt(get(v, "parity", "heads", "class_predictions", "max_abs"))),
        ("class head PSNR dB", lambda v: fmt(get(v, "parity", "heads", "class_predictions", "psnr_db"))),
        ("checks", lambda v: _check_counts(checks_of(v))),
    ]
    reference = get(report, "validation", "reference")
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
        checks = checks_of(variant)
        failed = any(c.get("verdict") == "fail" for c in checks)
        rows_html = "".join(_check_row(c) for c in checks) or '<tr><td colspan="6" class="note">no checks</td></tr>'
        out.append(
            f"<details{' open' if failed else ''}><summary>{e(variant.get('name'))}: {_check_counts(checks)}</summary>"
            "<table><tr><th>id</th><th>verdict</th><th>expected</th><th>found</th><th>message</th><th>fix</th></tr>"
            f"{rows_html}</table></details>"
        )
    run_checks = checks_of(report)
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


def _run_name(dl: dict[str, Any]) -> str:
    """``cpu`` for the interpreter (as before engines), ``compiled gpu -> cpu`` for an engine
    that fell back: what ran is always shown."""
    engine = dl.get("engine") or "interpreter"
    name = str(dl.get("delegate")) if engine == "interpreter" else f"{engine} {dl.get('delegate')}"
    used = dl.get("accelerator_used")
    return f"{name} -> {used}" if used and used != dl.get("delegate") else name


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
            outputs = get(dl, "parity", "tensors", "outputs", default={}) or {}
            worst = max((num(v.get("max_abs")) or 0.0 for v in outputs.values() if isinstance(v, dict)), default=None)
            checks = checks_of(dl)
            bad = any(c.get("verdict") == "fail" for c in checks)
            row_class = ' class="bad"' if bad else ""
            rows.append(
                f"<tr{row_class}>{lead}<td>{e(_run_name(dl))}</td><td>{e(dl.get('status'))}</td>"
                f'<td class="num">{fmt(lat.get("median_ms"))}</td><td class="num">{fmt(lat.get("p90_ms"))}</td>'
                f'<td class="num">{fmt(lat.get("min_ms"))} / {fmt(lat.get("max_ms"))}</td>'
                f'<td class="num">{fmt(worst)}</td>'
                f'<td class="num">{fmt(get(dl, "parity", "detections", "recall"))} / {fmt(get(dl, "parity", "detections", "precision"))}</td>'
                f"<td>{_check_counts(checks)}</td></tr>"
            )
    out.append(f'<table id="device-table">{head}{"".join(rows)}</table>')
    for d in devices:
        label = f" [{d.get('evidence')}]" if d.get("evidence") else ""
        groups = [("device", checks_of(d))] + [(_run_name(dl), checks_of(dl)) for dl in d.get("delegates") or []]
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


def _plots_section(report: dict[str, Any]) -> str:
    variants = variants_of(report)
    out = ['<h2 id="plots">Plots</h2>']
    if not variants and report.get("devices"):  # `liteship deploy`: no variant by design
        return ""
    if not variants:
        out.append('<p class="note">No plots: the run wrote no model variant.</p>')
        return "".join(out)
    plots: list[str] = []
    notes: list[str] = []

    with_map = [v for v in variants if num(v.get("map50")) is not None]
    if with_map:
        ref_value = num(get(report, "validation", "reference", "map50"))
        ref = (f"desktop reference {ref_value:.4f}", ref_value) if ref_value is not None else None
        lo = min([num(v["map50"]) or 0.0 for v in with_map] + ([ref_value] if ref_value is not None else []))
        # Zoom in when all values are close to each other (the interesting case: small drops).
        y_min = max(0.0, math.floor((lo - 0.05) * 10) / 10) if lo > 0.5 else 0.0
        plots.append(
            bars(
                "mAP@0.5 per variant",
                [str(v.get("name")) for v in with_map],
                [("mAP@0.5", [num(v.get("map50")) for v in with_map])],
                y_min=y_min,
                y_max=1.0,
                ref=ref,
            )
        )
    else:
        notes.append("mAP@0.5: no variant has one (the run had no ground truth).")

    with_hist = [v for v in variants if get(v, "parity", "iou", "histogram", "counts")]
    for v in with_hist:
        hist = get(v, "parity", "iou", "histogram")
        edges, counts = hist.get("edges") or [], hist.get("counts") or []
        labels = [
            f"{short(edges[i])}–{short(edges[i + 1])}" if i + 1 < len(edges) else str(i) for i in range(len(counts))
        ]
        plots.append(
            bars(
                f"IoU vs reference: {v.get('name')} (n={get(v, 'parity', 'iou', 'count', default='?')})",
                labels,
                [("matched detections", [num(c) for c in counts])],
                width=300,
                height=220,
                colour="#0969da",
            )
        )
    if not with_hist:
        notes.append("IoU histograms: no variant has parity data (no desktop reference or no images).")

    with_delta = [v for v in variants if isinstance(get(v, "parity", "score_delta"), dict)]
    if with_delta:
        plots.append(
            bars(
                "score delta vs reference (log scale)",
                [str(v.get("name")) for v in with_delta],
                [
                    ("mean", [num(get(v, "parity", "score_delta", "mean")) for v in with_delta]),
                    ("max", [num(get(v, "parity", "score_delta", "max")) for v in with_delta]),
                ],
                log=True,
            )
        )
    else:
        notes.append("Score deltas: no variant has parity data.")
    out.append(f'<div class="plots">{"".join(f"<div class=plot>{p}</div>" for p in plots)}</div>')
    out.extend(f'<p class="note">{e(n)}</p>' for n in notes)
    return "".join(out)


# ---------------------------------------------------------------------------- page


def _section(name: str, render: Callable[[], str]) -> str:
    try:
        return render()
    except Exception as exc:  # one broken section never loses the page
        return f'<div class="sectionerror">The {e(name)} section could not be rendered: {e(type(exc).__name__)}: {e(exc)}</div>'


def render_html(report: dict[str, Any], overlays: Overlays | None = None) -> str:
    """The whole page as a string (see the module docstring)."""
    report = report if isinstance(report, dict) else {}
    status = str(report.get("status") or "unknown")
    sections = [
        _section("header", lambda: _header(report)),
        _section("failing checks", lambda: _failing(report)),
        _section("variants", lambda: _variants_section(report)),
        _section("which variant to ship", lambda: ship.render(report)),
        _section("consumers", lambda: consumers_section(report)),
        _section("devices", lambda: _devices_section(report)),
        _section("plots", lambda: _plots_section(report)),
        _section("overlays", lambda: overlays_section(report, overlays)),
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


def write_html(report: dict[str, Any], out_dir: Path, overlays: Overlays | None = None) -> Path:
    """``out_dir / "report.html"``, written atomically."""
    return atomic.write_text(Path(out_dir) / "report.html", render_html(report, overlays))


def fallback_html(exc: BaseException) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>liteship report</title></head>"
        "<body><h1>liteship report</h1><p>The HTML renderer failed: "
        f"<code>{e(type(exc).__name__)}: {e(exc)}</code></p>"
        "<p>The run's results are in report.json and junit.xml next to this file.</p></body></html>\n"
    )


def write_html_safely(report: dict[str, Any], out_dir: Path, overlays: Overlays | None = None) -> Path | None:
    """:func:`write_html`, but a rendering bug never breaks the run: on any exception a
    minimal page saying so is written instead (still atomically)."""
    try:
        return write_html(report, out_dir, overlays)
    except Exception as exc:
        try:
            return atomic.write_text(Path(out_dir) / "report.html", fallback_html(exc))
        except Exception:
            return None
