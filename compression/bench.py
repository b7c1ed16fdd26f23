"""`edgefleet bench compress`: build (or reuse cached training of) the on-device model, measure it against the
teacher in the same process, and print each figure beside the compression targets."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from compression.pipeline import run_compress
from edgefleet.config import Config
from edgefleet.progress import Reporter
from edgefleet.report_view import deployment_table

# (figure, how to read it from the report, required, goal, higher is better). The goals are the deployed default's:
# at most 500 KB (distill.deploy_max_bytes) and 50x the teacher at batch 1.
TARGETS = [
    ("artifact bytes", lambda r: r["artifact_bytes"], 1_910_000, 500_000, False),
    ("retention HR@10", lambda r: r["retention"]["hr@10"], 0.92, 0.97, True),
    ("retention NDCG@10", lambda r: r["retention"]["ndcg@10"], 0.92, 0.97, True),
    ("speedup b1 (teacher ms / student ms)", lambda r: r["retention"]["speedup_b1"], 10.0, 50.0, True),
    ("inference peak memory bytes", lambda r: r["student"]["peak_mem_bytes"], 4 * 1024 * 1024, None, False),
]


def verdicts(report: dict) -> list[tuple[str, float, float, float | None, str]]:
    rows = []
    for name, read, required, goal, higher in TARGETS:
        value = read(report)

        def ok(bound: float) -> bool:
            return value >= bound if higher else value <= bound

        verdict = "goal met" if goal is not None and ok(goal) else "required met" if ok(required) else "MISSED"
        rows.append((name, value, required, goal, verdict))
    return rows


def run_bench_compress(cfg: Config, out: Path, reporter: Reporter) -> dict:
    report = run_compress(cfg, out, reporter)
    console = Console(width=None if sys.stdout.isatty() else 110)
    table = Table(title=f"bench compress ({cfg.preset} preset): student vs teacher, measured in one process")
    for col in ("figure", "measured", "required", "goal", "verdict"):
        table.add_column(col, justify="left" if col in ("figure", "verdict") else "right")
    for name, value, required, goal, verdict in verdicts(report):
        fmt = "{:,.0f}" if value > 100 else "{:.3f}"
        table.add_row(name, fmt.format(value), fmt.format(required), "-" if goal is None else fmt.format(goal),
                      verdict)
    console.print(table)
    if (deployed := deployment_table(report)) is not None:
        console.print(deployed)
    t, s = report["teacher"], report["student"]
    console.print(f"teacher {t['latency_ms_b1']:.2f} ms vs student {s['latency_ms_b1']:.2f} ms per item text "
                  f"(batch 1, one thread); build {report['wall_s']:.0f} s; report {out / 'compression_report.json'}")
    return report
