"""Escaping and short display text of report values (shared by the HTML sections)."""

from __future__ import annotations

import html
import json
import math
from typing import Any


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


def get(obj: Any, *keys: Any, default: Any = None) -> Any:
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


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def variants_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in (report.get("variants") or []) if isinstance(v, dict)]


def checks_of(obj: Any) -> list[dict[str, Any]]:
    checks = obj.get("checks") if isinstance(obj, dict) else None
    return [c for c in (checks or []) if isinstance(c, dict)]
