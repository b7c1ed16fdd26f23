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
