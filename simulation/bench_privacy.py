"""`edgefleet bench privacy`: the privacy-utility curve and what SecAgg+ costs, measured in one sitting.

On one population (default 10,000 devices, delta 1e-5), one after the other on this machine:
- the non-private federated run (the reference every figure is compared with, on the task's headline);
- DP-FedAvg at each noise multiplier of the sweep (fixed clipping at `privacy.clip`), and one with adaptive clipping;
- SecAgg+ without DP, and SecAgg+ with DP at noise 1.0: their wall time per round against the plain runs with the
  same privacy, and the bytes each device sends.
Writes `privacy_report.json` (`points`: epsilon vs the task's metrics, read by the dashboard's Privacy page).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefleet.config import Config
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import PRIVACY_REPORT as REPORT
from edgefleet.rundir import prepare, write_json
from edgefleet.tasks import federated_task, get_task
from simulation.run import run_simulate

NOISES = (0.3, 0.5, 1.0, 2.0)
TARGETS = {"epsilon": 8.0, "epsilon_goal": 3.0, "hr_ratio": 0.9}


def _run(cfg: Config, out: Path, reporter: Reporter, label: str, **privacy) -> dict:
    run_cfg = cfg.model_copy(update={"privacy": cfg.privacy.model_copy(update=privacy)})
    summary = run_simulate(run_cfg, out / label, reporter)
    rounds = Results(out / label).rounds()
    later = rounds["wall_s"].iloc[1:] if len(rounds) > 1 else rounds["wall_s"]
    sent = Results(out / label).devices()
    sent = sent[sent["bytes_up"].fillna(0) > 0]["bytes_up"]
    task = get_task(cfg.task.name)
    return {"label": label, "noise": privacy.get("noise"), "adaptive": bool(privacy.get("adaptive", False)),
            "secagg": bool(privacy.get("secagg", False)), "epsilon": summary["epsilon"],
            "delta": summary.get("delta"), **{m.key: summary[m.key] for m in task.metrics},
            f"{task.headline.key}_start": summary[f"{task.headline.key}_start"],
            "participation_rate": summary["participation_rate"],
            "round_wall_s": float(later.mean()), "bytes_up_per_update": float(sent.mean()) if len(sent) else 0.0,
            "clip_norm_last": (summary.get("privacy") or {}).get("clip_norm_last")}


def run_bench_privacy(cfg: Config, out: Path, reporter: Reporter, devices: int = 10_000,
                      noises: tuple[float, ...] = NOISES) -> dict:
    out = prepare(out, REPORT)
    model = cfg.sim.model
    if model is None:
        from simulation.prepare import build_model

        model = build_model(cfg, federated_task(cfg.task.name), out, reporter)
    cfg = cfg.model_copy(update={
        "sim": cfg.sim.model_copy(update={"devices": devices, "model": model}),
        "privacy": cfg.privacy.model_copy(update={"delta": cfg.privacy.delta or 1e-5})})
    base = _run(cfg, out, reporter, "non-private")
    points = [_run(cfg, out, reporter, f"dp-z{z:g}", noise=z) for z in noises]
    points.append(_run(cfg, out, reporter, "dp-z1-adaptive", noise=1.0, adaptive=True))
    secagg = _run(cfg, out, reporter, "secagg", secagg=True)
    dp_secagg = _run(cfg, out, reporter, "dp-z1-secagg", noise=1.0, secagg=True)
    dp_plain = next((p for p in points if p["noise"] == 1.0 and not p["adaptive"]), None)
    head = get_task(cfg.task.name).headline.key
    for p in [*points, secagg, dp_secagg]:
        p["hr_ratio"] = p[head] / base[head]
    overhead = {"secagg_vs_plain_round_time": secagg["round_wall_s"] / base["round_wall_s"],
                "dp_secagg_vs_dp_round_time": (dp_secagg["round_wall_s"] / dp_plain["round_wall_s"]
                                               if dp_plain else None),
                "secagg_bytes_per_update": secagg["bytes_up_per_update"],
                "plain_bytes_per_update": base["bytes_up_per_update"]}
    report = {"devices": devices, "rounds": cfg.sim.rounds, "cohort": cfg.sim.cohort, "delta": cfg.privacy.delta,
              "clip": cfg.privacy.clip, "non_private": base, "points": [*points, dp_secagg], "secagg": secagg,
              "secagg_overhead": overhead, "targets": TARGETS, "task": cfg.task.name}
    get_task(cfg.task.name).write_description(out)
    write_json(out / REPORT, report)
    print_bench_privacy(report)
    return report


def print_bench_privacy(report: dict) -> None:
    console = Console(width=120)
    base = report["non_private"]
    task = get_task(report["task"])
    second = task.metrics[1] if len(task.metrics) > 1 else task.headline
    h, h_label, m2, m2_label = task.headline.key, task.headline.label, second.key, second.label
    table = Table(title=f"bench privacy: {report['devices']:,} devices, {report['rounds']} rounds, cohort "
                        f"{report['cohort']}, delta {report['delta']:g}, clip {report['clip']:g} (2 cores)")
    for col in ("run", "noise", "epsilon", h_label, m2_label, f"{h_label} / non-private", "participation",
                "s / round", "bytes / update"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for p in [base, *report["points"], report["secagg"]]:
        eps = "-" if p["epsilon"] is None else f"{p['epsilon']:.2f}"
        table.add_row(p["label"], "-" if p["noise"] is None else f"{p['noise']:g}", eps, f"{p[h]:.4f}",
                      f"{p[m2]:.4f}", f"{p.get('hr_ratio', 1.0):.3f}", f"{p['participation_rate']:.3f}",
                      f"{p['round_wall_s']:.2f}", f"{p['bytes_up_per_update']:,.0f}")
    console.print(table)
    ok = [p for p in report["points"] if p["epsilon"] is not None and p["epsilon"] <= TARGETS["epsilon"]]
    best = max(ok, key=lambda p: p["hr_ratio"], default=None)
    o = report["secagg_overhead"]
    console.print(f"{h_label} start (deployed model) {base[f'{h}_start']:.4f}; non-private after the rounds "
                  f"{base[h]:.4f}")
    if best is not None:
        met = "met" if best["hr_ratio"] >= TARGETS["hr_ratio"] else "NOT met"
        console.print(f"best run at epsilon <= 8: {best['label']} (epsilon {best['epsilon']:.2f}), {h_label} "
                      f"{best['hr_ratio']:.3f} of non-private (>= 0.9: {met})")
    dp_ratio = o["dp_secagg_vs_dp_round_time"]
    console.print(f"SecAgg+ wall time per round vs plain: {o['secagg_vs_plain_round_time']:.2f}x without DP, "
                  + (f"{dp_ratio:.2f}x with DP" if dp_ratio else "") +
                  f"; bytes per update {o['secagg_bytes_per_update']:,.0f} vs {o['plain_bytes_per_update']:,.0f}")
