"""The benchmark result as a console table and as markdown (docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

from liteship.bench.goals import KEYS


def value_of(result: dict[str, Any], key: str) -> Any:
    if key.startswith("ssd320."):
        return (result.get("ssd320") or {}).get(key.split(".", 1)[1])
    return result.get(key)


def fmt(key: str, value: Any) -> str:
    if value is None:
        return "null"
    if key == "map50":
        return " ".join(f"{k}={v:.3f}" for k, v in value.items())
    if key == "run_peak_rss_bytes":
        return f"{value / 1e9:.2f} GB"
    return f"{value:.3f}"


def _verdict(met: bool | None, bold: bool = False) -> str:
    if met is None:
        return "-"
    if met:
        return "met"
    return "**missed**" if bold else "MISSED"


def table(result: dict[str, Any]) -> str:
    rows = [f"{'key':<42} {'value':<40} {'goal':<14} verdict"]
    for key in KEYS:
        g = result["goals"][key]
        goal = g["goal"] if len(g["goal"]) <= 14 else g["goal"].split(" (")[0][:14]
        rows.append(f"{key:<42} {fmt(key, value_of(result, key)):<40} {goal:<14} {_verdict(g['met'])}")
    return "\n".join(rows)


def _rng(x: dict[str, Any] | None, unit: str = "", digits: int = 2) -> str:
    if not x or x.get("median") is None:
        return "-"
    return f"{x['median']:.{digits}f}{unit} ({x['min']:.{digits}f}-{x['max']:.{digits}f})"


def figures(key: str, d: dict[str, Any]) -> tuple[str, str]:
    """(medians and ranges, N) of one key's details."""
    base = key.split(".", 1)[1] if key.startswith("ssd320.") else key
    if base == "pipeline_vs_manual_wall_ratio":
        return (f"liteship metadata {_rng(d['pipeline_s'], ' s', 1)} vs manual {_rng(d['manual_s'], ' s', 1)}",
                str(d["pipeline_s"]["n"]))
    if base == "harness_overhead_ratio":
        return (f"{_rng(d['parity_ms'], ' ms')} vs bare {_rng(d['bare_ms'], ' ms')} per image (4 variants); "
                f"the comparison {d['compare_ms']['median']:.3f} ms", f"{d['images']} images")
    if base.endswith("_latency_ratio") or base.endswith("_latency_ratio_2threads"):
        variant = base.split("_", 1)[0]
        t = 2 if base.endswith("2threads") else 1
        ms = d["ms"]
        return (f"{variant} {_rng(ms[f'{variant}@{t}'], ' ms')} vs fp32 {_rng(ms[f'fp32@{t}'], ' ms')} at {t} thread(s)",
                f"{ms[f'fp32@{t}']['n']} invokes each")
    if base in ("int8_fp32_size_ratio", "fp16_fp32_size_ratio"):
        b = d["bytes"]
        return ", ".join(f"{v} {b[v]:,} B" for v in ("fp32", "fp16", "int8")), "1"
    if base == "map50":
        ref = d.get("reference") or {}
        extra = f"; desktop reference {ref['map50']:.3f}" if ref.get("map50") is not None else ""
        return ("mAP@0.5 per variant" + extra, "val set")
    if base in ("scale_time_per_image_ratio", "scale_peak_rss_ratio", "scale_cores_used"):
        runs = d["runs"]
        small, large = sorted(runs, key=int)
        if base == "scale_time_per_image_ratio":
            return (f"{runs[small]['per_image_ms']:.1f} ms/image at {small} vs {runs[large]['per_image_ms']:.1f} at {large}",
                    "1 run each")
        if base == "scale_cores_used":
            return (f"CPU time / wall time at {large} images: {runs[large]['cores_used']:.2f} "
                    f"({small}: {runs[small]['cores_used']:.2f}); usable cores {d['cores_usable']}", "1 run each")
        return (f"{runs[small]['wait4_maxrss_bytes'] / 1e6:.0f} MB at {small} vs "
                f"{runs[large]['wait4_maxrss_bytes'] / 1e6:.0f} MB at {large}", "1 run each")
    if base == "run_peak_rss_bytes":
        return (f"tree PSS {d['process_tree_pss_peak_bytes'] / 1e9:.2f} GB; tree RSS sum "
                f"{d['process_tree_rss_sum_peak_bytes'] / 1e9:.2f} GB; largest process "
                f"{d['largest_process_maxrss_bytes'] / 1e9:.2f} GB; wall {d['wall_s']:.0f} s", "1")
    if base == "rerun_cached_wall_ratio":
        same = "byte-identical models" if d.get("models_byte_identical") else "MODELS DIFFER"
        return (f"rerun {_rng(d['rerun_s'], ' s')} vs first run {d['first_wall_s']:.1f} s; {same}",
                str(d["rerun_s"]["n"]))
    if base == "push_throughput_ratio":
        return (f"liteship {d['liteship_mb_s']:.1f} MB/s vs adb-shell {d['adb_shell_mb_s']:.1f} MB/s, "
                f"{d['size_bytes'] / 2**20:.0f} MiB", f"best of {d['repeats']}")
    return "", ""


def markdown(result: dict[str, Any]) -> str:
    rows = ["| key | value | figures (median (min-max)) | N | goal | verdict |", "|---|---|---|---|---|---|"]
    for key in KEYS:
        g = result["goals"][key]
        value = value_of(result, key)
        if value is None:
            fig, n = result["notes"].get(key, ""), "-"
        else:
            try:
                fig, n = figures(key, result["details"][key])
            except (KeyError, TypeError, ValueError):
                fig, n = "", ""
        rows.append(f"| `{key}` | {fmt(key, value)} | {fig} | {n} | {g['goal']} | {_verdict(g['met'], bold=True)} |")
    return "\n".join(rows) + "\n"
