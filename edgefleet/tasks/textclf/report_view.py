"""Terminal view of a text-classification compression report."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from edgefleet.report_view import deployment_table
from edgefleet.report_view import table as titled_table
from edgefleet.rundir import COMPRESSION_REPORT


def _kept(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a (teacher at 0)"


def print_textclf_report(report: dict, out: Path) -> None:
    """Teacher vs deployed student on the test rows, retention, size, and the students at equal budget."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    t, s, r, rows = report["teacher"], report["student"], report["retention"], report["rows"]
    table = titled_table(f"Your task: {len(report['labels'])} classes, {rows['train']:,} train rows, scored on "
                         f"{rows['test']:,} test rows", ["model", "accuracy", "macro-F1", "latency b1 ms", "params"])
    table.add_row("Teacher: MiniLM fine-tuned fp32 (PyTorch)", f"{t['accuracy']:.4f}", f"{t['macro_f1']:.4f}",
                  f"{t['latency_ms_b1']:.2f}", f"{t['params']:,}")
    table.add_row(f"Student {s['variant']} int{s['bits']} {s['quantization']} (device runtime)",
                  f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}", f"{s['latency_ms_b1']:.2f}", f"{s['params']:,}")
    console.print(table)
    console.print(f"retention accuracy {_kept(r['accuracy'])}, macro-F1 {_kept(r['macro_f1'])}; speedup b1 "
                  f"{r['speedup_b1']:.1f}x; artifact {report['artifact_bytes']:,} bytes; inference peak "
                  f"{s['peak_mem_bytes']:,} bytes")
    sizes = ", ".join(f"{k} {v:,}" for k, v in report["size_breakdown"].items())
    console.print(f"size breakdown: {sizes}")
    ab = titled_table("Students at equal budget (test rows; deployed: device runtime on the artifact)",
                      ["student", "float acc", "deployed acc", "deployed macro-F1", "artifact bytes", "params"])
    for name, v in report["ablation"].items():
        d = v["deployed"]
        ab.add_row(name, f"{v['float']['accuracy']:.4f}", f"{d['accuracy']:.4f}", f"{d['macro_f1']:.4f}",
                   f"{d['artifact_bytes']:,}", f"{v['params']:,}")
    for bits, d in report["quantization"].items():
        ab.add_row(f"{s['variant']} {bits} {d['quantization']}", "", f"{d['accuracy']:.4f}", f"{d['macro_f1']:.4f}",
                   f"{d['artifact_bytes']:,}", "")
    console.print(ab)
    if (deployed := deployment_table(report)) is not None:
        console.print(deployed)
    transfer = report["transfer_set"]
    console.print(f"transfer set: {transfer['texts']:,} texts ({transfer['train']:,} training, "
                  f"{transfer['unlabeled']:,} unlabelled, {transfer['views']:,} views)")
    console.print(f"artifact: {report['artifact_path']}")
    console.print(f"report: {out / COMPRESSION_REPORT}")
