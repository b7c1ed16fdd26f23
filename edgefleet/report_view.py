"""Terminal views of what every task's simulation reports, and the table style every report view shares."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefleet.rundir import SUMMARY
from edgefleet.tasks.base import Task


def table(title: str, columns: list[str]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def deployment_table(report: dict) -> Table | None:
    """Which trained student the artifact holds and why (compression/choose.py); None for reports without one."""
    d = report.get("deployment")
    if not d:
        return None
    metric = d["valid_metric"]
    t = table(f"Deployed: {d['chosen']} ({d['reason']}; budget {d['max_bytes']:,} bytes)",
              ["variant", "artifact bytes", f"validation {metric}", "fits"])
    for name, c in d["candidates"].items():
        t.add_row(name + (" (deployed)" if name == d["chosen"] else ""), f"{c['artifact_bytes']:,}",
                  f"{c[f'valid_{metric}']:.4f}", "yes" if c["fits"] else "no")
    return t


def _tier_order(tier: str) -> tuple:
    """ram-2gb < ram-12gb+ by their number; tiers named otherwise (a profile file's) after them, by name."""
    digits = "".join(c for c in tier if c.isdigit())
    return (0, int(digits), tier) if digits else (1, 0, tier)


def _privacy(s: dict) -> str:
    p = s.get("privacy") or {}
    secagg = ", SecAgg+" if p.get("secagg") else ""
    if "noise_multiplier" not in p:
        return f"none (no DP{secagg})"
    if s["epsilon"] is None:
        return f"infinite (noise 0: clipping only{secagg})"
    clip = "adaptive clip" if p["adaptive"] else "clip"
    return (f"{s['epsilon']:.3f} at delta {s['delta']:.1e} (noise {p['noise_multiplier']:g}, {clip} "
            f"{p['clip_norm_last']:.3g}, {p.get('unit', 'device')}-level{secagg})")


def print_sim_summary(summary: dict, out: Path, task: Task) -> None:
    """The task's figures before and after the rounds, the fleet's outcomes, latency, memory, privacy; outcomes per
    phone tier."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    s = summary
    head = Table(title=f"{s['devices']:,} devices, {s['rounds']} rounds, cohort {s['cohort']}")
    head.add_column("figure")
    head.add_column("value", justify="right")
    rows = [
        (f"{m.label} start -> end (delta)", f"{s[f'{m.key}_start']:.4f} -> {s[m.key]:.4f} ({s[f'{m.key}_delta']:+.4f})")
        for m in task.metrics if f"{m.key}_start" in s
    ] + ([("released model (what the figures are of)", s["released"])] if "released" in s else []) + [
        ("participation / oom / dropout / straggler / error",
         " / ".join(f"{s[k]:.3f}" for k in ("participation_rate", "oom_rate", "dropout_rate", "straggler_rate",
                                            "error_rate"))),
        ("on-device inference p50 / p95 (ms, device clock)",
         f"{s['latency_ms_p50'] or 0:.1f} / {s['latency_ms_p95'] or 0:.1f}"),
        ("on-device training p50 / p95 (ms, device clock)",
         f"{s['train_ms_p50'] or 0:.1f} / {s['train_ms_p95'] or 0:.1f}"),
        ("virtual round time (mean s)", f"{s['round_virtual_s_mean']:.2f}"),
        ("wall per round (mean s) / device-rounds per s",
         f"{s['round_wall_s_mean']:.2f} / {s['device_rounds_per_s']:.2f}"),
        ("peak RSS of the process tree", f"{s['peak_rss_bytes'] / 2**30:.2f} GiB"),
        ("bytes up / down", f"{s['bytes_up']:,} / {s['bytes_down']:,}"),
        ("epsilon", _privacy(s)),
    ]
    for name, value in rows:
        head.add_row(name, value)
    console.print(head)
    tiers = Table(title="Outcomes per tier (device-rounds)")
    outcomes = ("ok", "oom", "dropout", "straggler", "error")
    tiers.add_column("tier")
    for o in outcomes:
        tiers.add_column(o, justify="right")
    for tier, counts in sorted(s["outcomes_by_tier"].items(), key=lambda kv: _tier_order(kv[0])):
        tiers.add_row(tier, *(str(counts.get(o, 0)) for o in outcomes))
    console.print(tiers)
    console.print(f"summary: {out / SUMMARY}  (wall {s['wall_s']:.1f} s)")
