"""The benchmark's keys and their goals (judging only: values come from measure.py).

Per-model keys exist for the embedded demo (top level, as before) and for the full-size SSD
MobileNet v2 320x320 (under ``ssd320``); goals are per model because some properties are
the model's, not liteship's (a 1 ms, 2.6 MB demo cannot show int8's gain). The other keys
are measured on the demo only. ``goals["ssd320.KEY"]`` is the goal of ``ssd320[KEY]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from liteship.validation.gates import Gates

MODELS = ("demo", "ssd320")

#: liteship's default --max-map50-drop (the gate's default, not a copy of the number)
MAX_MAP50_DROP = Gates().max_map50_drop


@dataclass(frozen=True)
class Goal:
    text: str
    #: (value, details) -> met? None = no value, or informational (no goal)
    judge: Callable[[Any, dict[str, Any]], bool | None]


def le(limit: float) -> Goal:
    return Goal(f"<= {limit:g}", lambda v, d: None if v is None else v <= limit)


def ge(limit: float) -> Goal:
    return Goal(f">= {limit:g}", lambda v, d: None if v is None else v >= limit)


def info(why: str) -> Goal:
    return Goal(f"none (informational: {why})", lambda v, d: None)


def _map_goal(value: Any, details: dict[str, Any]) -> bool | None:
    if not value or value.get("fp32") is None:
        return None
    return all(v is not None and v >= value["fp32"] - MAX_MAP50_DROP for v in value.values())


def _rerun_goal(value: Any, details: dict[str, Any]) -> bool | None:
    if value is None:
        return None
    return value <= 0.15 and bool(details.get("models_byte_identical"))


def _cores_goal(value: Any, details: dict[str, Any]) -> bool | None:
    if value is None:
        return None
    return value >= 0.75 * float(details.get("cores_usable") or 1)


DEMO_IS_TINY = "the demo's invoke takes ~1 ms and its file 2.6 MB; the goal is ssd320's"

#: key -> goal, per model
MODEL_GOALS: dict[str, dict[str, Goal]] = {
    "demo": {
        "pipeline_vs_manual_wall_ratio": le(0.30),
        "harness_overhead_ratio": le(1.10),
        "int8_fp32_latency_ratio": info(DEMO_IS_TINY),
        "int8_fp32_latency_ratio_2threads": info(DEMO_IS_TINY),
        "fp16_fp32_latency_ratio": info("XNNPACK on x86 computes fp16 models in fp32"),
        "fp16_fp32_latency_ratio_2threads": info("XNNPACK on x86 computes fp16 models in fp32"),
        "int8_fp32_size_ratio": info(DEMO_IS_TINY),
        "fp16_fp32_size_ratio": le(0.55),
    },
    "ssd320": {
        "pipeline_vs_manual_wall_ratio": le(0.30),
        "harness_overhead_ratio": le(1.05),
        "int8_fp32_latency_ratio": le(0.5),
        "int8_fp32_latency_ratio_2threads": info("the goal is at 1 thread"),
        "fp16_fp32_latency_ratio": info("XNNPACK on x86 computes fp16 models in fp32"),
        "fp16_fp32_latency_ratio_2threads": info("XNNPACK on x86 computes fp16 models in fp32"),
        "int8_fp32_size_ratio": le(0.30),
        "fp16_fp32_size_ratio": le(0.55),
    },
}
MODEL_KEYS = tuple(MODEL_GOALS["demo"])

#: measured on the demo only (top level)
DEMO_ONLY_GOALS: dict[str, Goal] = {
    "map50": Goal(f"every variant >= fp32 - {MAX_MAP50_DROP:g} (liteship's default --max-map50-drop)", _map_goal),
    "scale_time_per_image_ratio": le(1.1),
    "scale_peak_rss_ratio": le(1.2),
    "scale_cores_used": Goal(">= 0.75 x usable cores (1.5 on 2)", _cores_goal),
    "run_peak_rss_bytes": le(2.5e9),
    "rerun_cached_wall_ratio": Goal("<= 0.15, models byte-identical", _rerun_goal),
    "push_throughput_ratio": ge(0.9),
}

#: every flat key: demo keys as they are, ssd320's as "ssd320.KEY"
KEYS: tuple[str, ...] = (*MODEL_KEYS, *DEMO_ONLY_GOALS, *(f"ssd320.{k}" for k in MODEL_KEYS))


def goal_of(flat_key: str) -> Goal:
    if flat_key.startswith("ssd320."):
        return MODEL_GOALS["ssd320"][flat_key.split(".", 1)[1]]
    if flat_key in DEMO_ONLY_GOALS:
        return DEMO_ONLY_GOALS[flat_key]
    return MODEL_GOALS["demo"][flat_key]


def judge(values: dict[str, Any], details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``goals``: per flat key, the goal text, the value and met (True / False / None)."""
    out = {}
    for key in KEYS:
        g = goal_of(key)
        value = values.get(key)
        out[key] = {"goal": g.text, "value": value, "met": g.judge(value, details.get(key) or {})}
    return out
