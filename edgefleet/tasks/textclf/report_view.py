"""Terminal view of a text-classification compression report."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from edgefleet.report_view import table as titled_table
from edgefleet.rundir import COMPRESSION_REPORT


def print_textclf_report(report: dict, out: Path) -> None:
    """Teacher vs deployed student on the user's own classification task."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    t, s, rows = report["teacher"], report["student"], report["rows"]
    table = titled_table(f"Your task: {len(report['labels'])} classes, {rows['train']:,} train rows, accuracy on "
                   f"{rows['valid']:,} valid rows", ["model", "accuracy", "params"])
    table.add_row("Teacher: MiniLM fine-tuned fp32", f"{t['accuracy']:.4f}", f"{t['params']:,}")
    table.add_row(f"Student {s['kind']} int{s['bits']} (artifact weights)", f"{s['accuracy']:.4f}",
                  f"{s['params']:,}")
    console.print(table)
    retention = report["retention"]["accuracy"]
    kept = f"{retention:.3f}" if retention is not None else "n/a (teacher accuracy 0)"
    console.print(f"retention (student / teacher accuracy) {kept}; artifact {report['artifact_bytes']:,} bytes")
    console.print(f"artifact: {report['artifact_path']}")
    console.print(f"report: {out / COMPRESSION_REPORT}")
