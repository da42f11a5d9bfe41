"""The one report format: success with its 95% Wilson interval, episodes, frames, the runner's safety
counts, and where the outputs are. Every app that runs episodes prints `summary_lines` of its report.

A report is a dict with at least `episodes` (a count), `successes`, `success_rate`, `success_ci95`,
`frames`, `seconds` and `interrupted`; optionally `runner` (the runner's metrics), `dataset` (a
DatasetSink summary), `videos` (paths relative to `output_dir`), `report` (the JSON file written) and
`table` (lines printed first: vla-rollout's per-task and per-checkpoint tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla.metrics import wilson_interval


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate, Wilson 95% interval and lengths of per-episode records (rate None: nothing ran), and
    where episodes say which object was touched first, `named_first_share` (episodes whose first touch was
    the named object, over all episodes) and `touched_share` (episodes that touched any)."""
    n = len(episodes)
    wins = sum(e["success"] for e in episodes)
    lengths = [e["steps"] for e in episodes]
    out = {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else None,
        "success_ci95": list(wilson_interval(wins, n)),
        "mean_length": float(np.mean(lengths)) if lengths else None,
        "lengths": lengths,
    }
    grounded = [e for e in episodes if "named_first" in e]
    if grounded:
        named = sum(e["named_first"] for e in grounded)
        out["named_first_share"] = named / len(grounded)
        out["named_first_ci95"] = list(wilson_interval(named, len(grounded)))
        out["touched_share"] = sum(e["first_touched"] is not None for e in grounded) / len(grounded)
    return out


def per_task(episodes: list[dict[str, Any]], tasks: list[str]) -> dict[str, dict[str, Any]]:
    return {t: summarize([e for e in episodes if e["task"] == t]) for t in tasks}


def task_table(per_task_stats: dict[str, dict[str, Any]], overall: dict[str, Any]) -> str:
    """Per task and overall: episodes, success, its 95% interval, mean length (and named-first share)."""
    w = max(10, *(len(name) for name in per_task_stats))  # long task names (Meta-World) stay aligned
    grounding = any("named_first_share" in s for s in per_task_stats.values())
    extra = f" {'named first':>12}" if grounding else ""
    lines = [f"{'task':<{w}} {'episodes':>8} {'success':>8} {'95% CI':>15} {'mean length':>12}{extra}"]
    for name, s in [*per_task_stats.items(), ("all", overall)]:
        if not s["episodes"]:
            lines.append(f"{name:<{w}} {0:>8} {'-':>8} {'-':>15} {'-':>12}")
            continue
        lo, hi = s["success_ci95"]
        ci = f"{100 * lo:.1f}-{100 * hi:.1f}%"
        rate, length = 100 * s["success_rate"], s["mean_length"]
        named = s.get("named_first_share")
        cell = (f" {100 * named:>11.1f}%" if named is not None else f" {'-':>12}") if grounding else ""
        lines.append(f"{name:<{w}} {s['episodes']:>8} {rate:>7.1f}% {ci:>15} {length:>12.1f}{cell}")
    return "\n".join(lines)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The closing summary every app prints (see the module's docstring for the keys it reads)."""
    lines = list(report.get("table", []))
    n, wins = report["episodes"], report["successes"]
    if n:
        lo, hi = report["success_ci95"]
        lines.append(
            f"policy success: {wins}/{n} = {100 * wins / n:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"
        )
    extra = " (interrupted)" if report["interrupted"] else ""
    lines.append(f"{n} episodes, {report['frames']} frames in {report['seconds']:.1f} s{extra}")
    m = report.get("runner")
    if m:
        lines.append(
            f"runner: {m['ticks']} ticks, {m['missed_ticks']} missed, jitter p99 {_ms(m['jitter_p99_ms'])}, "
            f"safety interventions {m['safety_interventions']}"
        )
        for name, stats in m.get("bus", {}).items():
            lines.append(
                f"{name} bus: {stats.get('transactions', 0)} transactions, {stats.get('retries', 0)} "
                f"retries, {stats.get('checksum_errors', 0)} bad checksums, {stats.get('timeouts', 0)} "
                f"timeouts, {stats.get('failures', 0)} failures"
            )
    d = report.get("dataset")
    if d:
        lines.append(
            f"dataset: {d['root']} (repo_id {d['repo_id']}): kept {d['episodes_saved']} episodes, "
            f"{d['frames_saved']} frames ({d['episodes_in_dataset']} episodes in all)"
        )
    out = Path(report.get("output_dir") or ".")
    if report.get("videos"):
        lines.append(f"videos: {out / 'videos'} ({len(report['videos'])} files)")
    if report.get("report"):
        lines.append(f"report: {report['report']}")
    return lines


def outcome_stats(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts the summary needs from per-episode records: episodes, successes, rate, interval, frames."""
    n = len(episodes)
    wins = sum(bool(e["success"]) for e in episodes)
    return {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else None,
        "success_ci95": list(wilson_interval(wins, n)),
        "frames": sum(int(e["steps"]) for e in episodes),
    }
