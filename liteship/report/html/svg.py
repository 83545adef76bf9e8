"""Inline SVG bar charts for report.html (no plotting library: the page has no scripts)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from liteship.report.html.text import e

SERIES_COLOURS = ["#0969da", "#bf3989", "#b35900", "#1a7f37", "#8250df", "#cf222e", "#57606a"]


def bars(
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
        hi = y_max if y_max is not None else nice_ceil(max(values) * 1.05 if values and max(values) > 0 else 1.0)

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


def nice_ceil(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above ``value`` (round axis maxima)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def short(x: Any) -> str:
    text = f"{x:g}" if isinstance(x, (int, float)) else str(x)
    return text[1:] if text.startswith("0.") else text
