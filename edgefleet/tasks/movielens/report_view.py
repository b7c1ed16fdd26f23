"""Terminal views of the MovieLens task's reports: the teacher and baselines, and the compressed recommender."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefleet.report_view import deployment_table
from edgefleet.report_view import table as titled_table
from edgefleet.rundir import COMPRESSION_REPORT, TEACHER_REPORT

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
    out_console.print(f"report: {out / TEACHER_REPORT}")



def print_compression_report(report: dict, out: Path) -> None:
    """Teacher vs deployed student, retention, size, and the ablations."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    t, s, r = report["teacher"], report["student"], report["retention"]
    table = titled_table("Teacher vs on-device student (device-owned users' test items)",
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
    ab = titled_table("Students at equal budget (float weights)", ["variant", "HR@10", "NDCG@10", "params"])
    for name, v in report["ablation"].items():
        ab.add_row(name, f"{v['float']['hr@10']:.4f}", f"{v['float']['ndcg@10']:.4f}", f"{v['params']:,}")
    for name, v in report["quantization"].items():
        ab.add_row(f"{s['variant']} {name}", f"{v['hr@10']:.4f}", f"{v['ndcg@10']:.4f}", f"{v['weight_bytes']:,} B")
    console.print(ab)
    if (deployed := deployment_table(report)) is not None:
        console.print(deployed)
    g = report.get("genre")
    if g:
        console.print(f"genre tagging from titles (micro-F1): teacher {g['teacher']['micro_f1']:.3f}, "
                      f"student {g['student']['micro_f1']:.3f} (retention {g['retention']:.3f})")
    rows = report.get("token_pruning", {}).get("rows", [])
    if rows:
        layer = report["token_pruning"]["prune_after_layer"]
        tp = titled_table(f"Input-token pruning after layer {layer} (float student)",
                          ["keep ratio", "HR@10", "NDCG@10", "latency b1 ms", "speed gain", "HR@10 lost"])
        for row in rows:
            tp.add_row(f"{row['keep_ratio']:.2f}", f"{row['hr@10']:.4f}", f"{row['ndcg@10']:.4f}",
                       f"{row['latency_ms_b1']:.3f}", f"{row['latency_gain']:.2f}x", f"{row['hr_loss']:+.4f}")
        console.print(tp)
    console.print(f"artifact: {report['artifact_path']}")
    console.print(f"report: {out / COMPRESSION_REPORT}")
