"""`edgefleet bench task --data F [--valid F] [--test F]`: your text classifier through the whole testbed, in one run.

1. Compression (compression/textclf/, or the report beside `sim.model` when one is given): the teacher against the
   deployed student on the test rows (accuracy, macro-F1), the artifact's size, batch-1 speedup; retention against
   the targets of the task issue (>= 0.97 of the teacher's test accuracy with an artifact <= 1 MB).
2. Federation: the same student deployed to `sim.devices` devices holding Dirichlet label-skewed shards, at
   alpha 0.1 (each device sees few classes) and 1.0, for `sim.rounds` rounds of `sim.cohort`: the gain in test
   accuracy and macro-F1 over the deployed model, and each phone tier's outcomes.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefleet.config import Config
from edgefleet.errors import ConfigError
from edgefleet.progress import Reporter
from edgefleet.rundir import COMPRESS_DIR, COMPRESSION_REPORT, MODEL, TASK_BENCH, prepare, write_json
from edgefleet.tasks import get_task
from simulation.run import run_simulate

ALPHAS = (0.1, 1.0)
TARGETS = {"retention_accuracy": 0.97, "artifact_bytes": 1_000_000, "goal_retention": 1.0, "goal_bytes": 500_000}


def compression_figures(report: dict) -> dict:
    t, s = report["teacher"], report["student"]
    return {"teacher": {k: t[k] for k in ("accuracy", "macro_f1", "latency_ms_b1", "params")},
            "student": {k: s[k] for k in ("accuracy", "macro_f1", "latency_ms_b1", "params", "peak_mem_bytes")},
            "retention": report["retention"], "artifact_bytes": report["artifact_bytes"],
            "speedup_b1": report["speedup_b1"], "artifact_path": report["artifact_path"]}


def federated_figures(summary: dict, alpha: float) -> dict:
    keys = ("devices", "rounds", "cohort", "accuracy_start", "accuracy", "accuracy_delta", "macro_f1_start",
            "macro_f1", "macro_f1_delta", "participation_rate", "oom_rate", "round_wall_s_mean")
    return {"alpha": alpha, **{k: summary[k] for k in keys}, "outcomes_by_tier": summary["outcomes_by_tier"]}


def run_bench_task(cfg: Config, out: Path, reporter: Reporter) -> dict:
    if cfg.task.name != "textclf":
        raise ConfigError("bench task needs your text,label data: --data F (and --valid F, --test F)")
    out = prepare(out, TASK_BENCH)
    if cfg.sim.model is None:
        from compression.jobs import compress_job

        compress_job(cfg.task.name)(cfg, out / COMPRESS_DIR, reporter)
        model = out / COMPRESS_DIR / MODEL
    else:
        model = Path(cfg.sim.model)
    report_path = model.parent / COMPRESSION_REPORT
    if not report_path.exists():
        raise ConfigError(f"{model}: no {COMPRESSION_REPORT} beside it to take the compression figures from")
    report = {"task": cfg.task.name, "compression": compression_figures(json.loads(report_path.read_text())),
              "federated": [], "targets": TARGETS}
    for alpha in ALPHAS:
        sim = cfg.sim.model_copy(update={"model": model.resolve(), "partitioner": "dirichlet", "alpha": alpha})
        summary = run_simulate(cfg.model_copy(update={"sim": sim}), out / f"alpha-{alpha:g}", reporter)
        report["federated"].append(federated_figures(summary, alpha))
    get_task(cfg.task.name).write_description(out)
    write_json(out / TASK_BENCH, report)
    print_bench_task(report, out)
    return report


def print_bench_task(report: dict, out: Path) -> None:
    console = Console(width=120)
    c = report["compression"]
    t = Table(title="bench task: teacher vs the deployed student, on the test rows (2 cores)")
    for col in ("model", "accuracy", "macro-F1", "latency b1 ms", "params", "bytes"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, m, size in (("teacher (MiniLM, PyTorch)", c["teacher"], "-"),
                          ("student (artifact, device runtime)", c["student"], f"{c['artifact_bytes']:,}")):
        t.add_row(name, f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", f"{m['latency_ms_b1']:.2f}",
                  f"{m['params']:,}", size)
    console.print(t)
    r, tg = c["retention"], report["targets"]
    met = r["accuracy"] >= tg["retention_accuracy"] and c["artifact_bytes"] <= tg["artifact_bytes"]
    console.print(f"retention: accuracy {r['accuracy']:.3f}, macro-F1 {r['macro_f1']:.3f}; speedup b1 "
                  f"{c['speedup_b1']:.1f}x; target >= {tg['retention_accuracy']} at <= {tg['artifact_bytes']:,} B: "
                  f"{'met' if met else 'NOT met'}")
    f = Table(title="federated: Dirichlet label skew per device, test rows")
    for col in ("alpha", "devices", "rounds", "cohort", "accuracy start -> end", "gain", "macro-F1 start -> end",
                "gain ", "participation", "OOM", "s / round"):
        f.add_column(col, justify="right")
    for row in report["federated"]:
        f.add_row(f"{row['alpha']:g}", f"{row['devices']:,}", str(row["rounds"]), str(row["cohort"]),
                  f"{row['accuracy_start']:.4f} -> {row['accuracy']:.4f}", f"{row['accuracy_delta']:+.4f}",
                  f"{row['macro_f1_start']:.4f} -> {row['macro_f1']:.4f}", f"{row['macro_f1_delta']:+.4f}",
                  f"{row['participation_rate']:.3f}", f"{row['oom_rate']:.3f}", f"{row['round_wall_s_mean']:.2f}")
    console.print(f)
    tiers = Table(title="outcomes per tier (device-rounds), alpha " + " | ".join(f"{r['alpha']:g}"
                                                                               for r in report["federated"]))
    outcomes = ("ok", "oom", "dropout", "straggler", "error")
    tiers.add_column("tier")
    for o in outcomes:
        tiers.add_column(o, justify="right")
    names = sorted({t for r in report["federated"] for t in r["outcomes_by_tier"]})
    for tier in names:
        tiers.add_row(tier, *(" | ".join(str(r["outcomes_by_tier"].get(tier, {}).get(o, 0))
                                         for r in report["federated"]) for o in outcomes))
    console.print(tiers)
    console.print(f"report: {out / TASK_BENCH}")
