"""Terminal views of finished reports."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

NAMES = {
    "popularity": "Popularity",
    "itemknn": "ItemKNN",
    "bpr_mf": "BPR-MF (fold-in)",
    "minilm_zero_shot": "MiniLM zero-shot",
}


def print_teacher_report(report: dict, out: Path) -> None:
    """Teacher and baselines on device-owned users' test items, sampled and full ranking."""
    proto = report["protocol"]
    ev = proto["evaluated_on"]
    k = proto["k"]
    table = Table(title=f"Device-owned users ({ev['users']}), test items: 1 positive + {ev['negatives']} negatives"
                        f" | full ranking over {proto['items']} items")
    for col in ("model", f"HR@{k}", f"NDCG@{k}", "MRR", f"full HR@{k}", f"full NDCG@{k}"):
        table.add_column(col, justify="left" if col == "model" else "right")
    rows = [("Teacher: MiniLM fine-tuned", report["teacher"])]
    rows += [(NAMES.get(name, name), m) for name, m in report["baselines"].items()]
    for name, m in rows:
        table.add_row(name, f"{m[f'hr@{k}']:.4f}", f"{m[f'ndcg@{k}']:.4f}", f"{m['mrr']:.4f}",
                      f"{m['full'][f'hr@{k}']:.4f}", f"{m['full'][f'ndcg@{k}']:.4f}")
    # Figures go to stdout (progress goes to stderr), so they survive --quiet and can be piped.
    out_console = Console(width=None if sys.stdout.isatty() else 110)
    out_console.print(table)
    out_console.print(f"server-owned users: {proto['server_users']} (train), device-owned: {proto['device_users']}; "
                      f"seed {proto['seed']}; wall {report['wall_s']:.1f} s")
    out_console.print(f"report: {out / 'teacher_report.json'}")


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def print_compression_report(report: dict, out: Path) -> None:
    """Teacher vs deployed student, retention, size, and the ablations."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    t, s, r = report["teacher"], report["student"], report["retention"]
    table = _table("Teacher vs on-device student (device-owned users' test items)",
                   ["model", "HR@10", "NDCG@10", "MRR", "latency b1 ms", "params"])
    table.add_row("Teacher: MiniLM fp32 (PyTorch)", f"{t['hr@10']:.4f}", f"{t['ndcg@10']:.4f}", f"{t['mrr']:.4f}",
                  f"{t['latency_ms_b1']:.2f}", f"{t['params']:,}")
    table.add_row(f"Student {s['variant']} int{s['bits']} (device runtime)", f"{s['hr@10']:.4f}",
                  f"{s['ndcg@10']:.4f}", f"{s['mrr']:.4f}", f"{s['latency_ms_b1']:.2f}", f"{s['params']:,}")
    console.print(table)
    console.print(f"retention HR@10 {r['hr@10']:.3f}, NDCG@10 {r['ndcg@10']:.3f}; speedup b1 {r['speedup_b1']:.1f}x; "
                  f"artifact {report['artifact_bytes']:,} bytes; inference peak {s['peak_mem_bytes']:,} bytes")
    sizes = ", ".join(f"{k} {v:,}" for k, v in report["size_breakdown"].items())
    console.print(f"size breakdown: {sizes}")
    ab = _table("Students at equal budget (float weights)", ["variant", "HR@10", "NDCG@10", "params"])
    for name, v in report["ablation"].items():
        ab.add_row(name, f"{v['float']['hr@10']:.4f}", f"{v['float']['ndcg@10']:.4f}", f"{v['params']:,}")
    for name, v in report["quantization"].items():
        ab.add_row(f"{s['variant']} {name}", f"{v['hr@10']:.4f}", f"{v['ndcg@10']:.4f}", f"{v['weight_bytes']:,} B")
    console.print(ab)
    g = report.get("genre")
    if g:
        console.print(f"genre tagging from titles (micro-F1): teacher {g['teacher']['micro_f1']:.3f}, "
                      f"student {g['student']['micro_f1']:.3f} (retention {g['retention']:.3f})")
    rows = report.get("token_pruning", {}).get("rows", [])
    if rows:
        tp = _table(f"Input-token pruning after layer {report['token_pruning']['prune_after_layer']} (float student)",
                    ["keep ratio", "HR@10", "NDCG@10", "latency b1 ms", "speed gain", "HR@10 lost"])
        for row in rows:
            tp.add_row(f"{row['keep_ratio']:.2f}", f"{row['hr@10']:.4f}", f"{row['ndcg@10']:.4f}",
                       f"{row['latency_ms_b1']:.3f}", f"{row['latency_gain']:.2f}x", f"{row['hr_loss']:+.4f}")
        console.print(tp)
    console.print(f"artifact: {report['artifact_path']}")
    console.print(f"report: {out / 'compression_report.json'}")


def print_textclf_report(report: dict, out: Path) -> None:
    """Teacher vs deployed student on the user's own classification task."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    t, s, rows = report["teacher"], report["student"], report["rows"]
    table = _table(f"Your task: {len(report['labels'])} classes, {rows['train']:,} train rows, accuracy on "
                   f"{rows['valid']:,} valid rows", ["model", "accuracy", "params"])
    table.add_row("Teacher: MiniLM fine-tuned fp32", f"{t['accuracy']:.4f}", f"{t['params']:,}")
    table.add_row(f"Student {s['kind']} int{s['bits']} (artifact weights)", f"{s['accuracy']:.4f}",
                  f"{s['params']:,}")
    console.print(table)
    retention = report["retention"]["accuracy"]
    kept = f"{retention:.3f}" if retention is not None else "n/a (teacher accuracy 0)"
    console.print(f"retention (student / teacher accuracy) {kept}; artifact {report['artifact_bytes']:,} bytes")
    console.print(f"artifact: {report['artifact_path']}")
    console.print(f"report: {out / 'compression_report.json'}")


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
            f"{p['clip_norm_last']:.3g}, device-level{secagg})")


def print_sim_summary(summary: dict, out: Path) -> None:
    """Headline figures of a simulation and its outcomes per phone tier."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    s = summary
    head = Table(title=f"{s['devices']:,} devices, {s['rounds']} rounds, cohort {s['cohort']}")
    head.add_column("figure")
    head.add_column("value", justify="right")
    rows = [
        ("HR@10 start -> end (delta)", f"{s['hr@10_start']:.4f} -> {s['hr@10']:.4f} ({s['hr@10_delta']:+.4f})"),
        ("NDCG@10 start -> end (delta)",
         f"{s['ndcg@10_start']:.4f} -> {s['ndcg@10']:.4f} ({s['ndcg@10_delta']:+.4f})"),
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
    console.print(f"summary: {out / 'summary.json'}  (wall {s['wall_s']:.1f} s)")
