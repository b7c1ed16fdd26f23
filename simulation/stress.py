"""`edgefleet stress`: where devices fall over, per model variant and workload, and what an adaptive fit buys.

1. **Sweep.** Every variant (compression/runtime/variants.py, derived from the deployed artifact; batch size is
   a setting of the device's training) runs one device's real round (client/device.py `run_device`, inference or
   training) under the real cap (client/memcap.py) at each budget of `stress.budgets_mb`, then a bisection between
   the largest budget that failed and the smallest that fitted narrows the minimum budget down to
   `stress.resolution_kb`. The device is the fleet's device at the `history_quantile` of history length. Every
   point carries the analytic prediction (compression/runtime/memory_model.py) beside the measured peak (the
   model's resident bytes plus the work's peak, as the device accounts them).
2. **Policies.** The same fleet, sampled identically (same devices, rounds and dropouts), in real Flower
   simulations (simulation/run.py): the fixed policy (sim.model on every device, no fallback), the fixed policy
   with the reactive fallback ladder (the simulator's default), and the adaptive one (each device starts on the
   richest of sim.variants that its budget fits by the prediction plus sim.fit_margin, and steps down the leaner
   variants if the real cap disagrees).
3. **Load.** A larger fleet whose budgets are scaled down by `load_budget_scale` and large cohorts: the run must
   survive, and every OOM is listed with device, tier and workload.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from client.device import INFERENCE, LADDER, DeviceJob, Plan, run_device, shapes_of, training_plan
from client.worker import Worker
from compression.runtime.artifact import read_artifact
from compression.runtime.memory_model import predict
from compression.runtime.variants import write_variant
from edgefleet.config import Config
from edgefleet.errors import ConfigError
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import FLEET_DIR, MODEL, SUMMARY, prepare, write_json
from edgefleet.rundir import STRESS_REPORT as REPORT
from edgefleet.tasks import federated_task, get_task
from edgefleet.tasks.base import FederatedTask
from server.app import device_job
from simulation.population.tiers import draw_population
from simulation.prepare import prepare_fleet
from simulation.variants import artifact_changes

TRAINING_PLANS = {p.name for p in LADDER if p.train} | {"micro-batch"}
MB = 2**20


@dataclass
class Probe:
    """One variant's worker and the device it measures on."""

    name: str
    worker: Worker
    job: DeviceJob
    shared: dict
    timeout_s: float
    micro_batch: int | None = None

    def plan(self, workload: str) -> Plan:
        return training_plan(self.job, self.micro_batch) if workload == "training" else INFERENCE

    def predicted(self, workload: str) -> int:
        """The memory model's bytes for this device and workload (what `run_device` reports beside a point)."""
        w, dep = self.worker, self.worker.deployments[0]
        local = w.task.device.local_data(w.fleet, self.job.device, len(w.texts), self.job.negatives,
                                         np.random.default_rng(0))  # its sizes do not depend on the draw
        return predict(dep.dims, shapes_of(w, self.job, dep, self.plan(workload), local), workload == "training")

    def run(self, workload: str, budget: int, search: str) -> dict:
        report = run_device(self.worker, replace(self.job, budget_bytes=int(budget)), self.shared,
                            plans=(self.plan(workload),), timed=False, timeout_s=self.timeout_s)
        if report.outcome == "error":
            raise RuntimeError(f"stress point {self.name}/{workload} at {budget:,} B failed: {report.error}")
        dep = self.worker.deployments[0]
        return {"variant": self.name, "workload": workload, "budget_bytes": int(budget),
                "measured_peak_bytes": int(dep.model_bytes + report.peak_bytes),
                "predicted_bytes": int(report.predicted_bytes), "fits": report.outcome == "ok",
                "oom": report.outcome == "oom", "model_bytes": int(dep.model_bytes),
                "work_peak_bytes": int(report.peak_bytes), "search": search, "error": report.error}


def min_budget(probe: Probe, workload: str, budgets: list[int], resolution: int) -> tuple[list[dict], dict]:
    """The smallest budget at which the workload fits: (every point measured, the result).

    The grid budgets are measured upwards until one fits (a larger budget never takes memory away). The bracket
    between the last failure and that fit is then narrowed by bisection to `resolution`; its first two probes sit
    2% either side of the prediction, which only decides where to measure: each side is kept or dropped by what the
    real cap did.
    """
    points = []
    for b in budgets:
        points.append(probe.run(workload, b, "grid"))
        if points[-1]["fits"]:
            break
    if not points[-1]["fits"]:
        return points, {"min_budget_bytes": None, "fails_at_bytes": budgets[-1]}
    hi = points[-1]["budget_bytes"]
    lo = points[-2]["budget_bytes"] if len(points) > 1 else 0
    guess = probe.predicted(workload)
    seeds = [int(guess * 1.02), int(guess * 0.98)]
    while hi - lo > resolution:
        mid = seeds.pop(0) if seeds else (lo + hi) // 2
        if not lo < mid < hi:
            continue
        point = probe.run(workload, mid, "bisect")
        points.append(point)
        hi, lo = (mid, lo) if point["fits"] else (hi, mid)
    return points, {"min_budget_bytes": hi, "fails_at_bytes": lo}


def reference_device(w: Worker, quantile: float) -> int:
    sizes = np.diff(w.fleet.offsets)
    order = np.argsort(sizes, kind="stable")
    return int(order[min(int(round(quantile * (len(order) - 1))), len(order) - 1)])


def probe_job(cfg: Config, device: int) -> DeviceJob:
    """One device measured on its own: the sim's local work without the fallback ladder (the caller sets the
    budget), on a fast link, never dropping out."""
    return DeviceJob.from_config({**device_job(cfg), "device": device, "server-round": 1, "budget-bytes": 0,
                                  "cpu-factor": 1.0, "down-bps": 1e9, "up-bps": 1e9, "dropout": 0.0,
                                  "fallback": "none"})


def sweep(cfg: Config, model: Path, fleet_dir: Path, out: Path, reporter: Reporter) -> dict:
    s = cfg.stress
    budgets = [int(round(b * MB)) for b in s.budgets_mb]
    task = federated_task(cfg.task.name)
    # What a device trains under these settings (with sim.item_residual, the item vectors too).
    shared = task.trained_params(read_artifact(model).tensors, cfg.sim, task.load_fleet(fleet_dir / FLEET_DIR)[0])
    variants, points, mins, errors = [], [], {}, {}
    with reporter.stage(f"sweep {len(s.sweep)} variants x 2 workloads under the real cap",
                        total=2 * len(s.sweep)) as advance:
        for v in s.sweep:
            path = out / "variants" / f"{v.name}.eflt"
            path.parent.mkdir(exist_ok=True)
            artifact_bytes = write_variant(model, path, v.name, **artifact_changes(v))
            w = Worker(fleet_dir, model=path)
            device = reference_device(w, s.history_quantile)
            probe = Probe(v.name, w, probe_job(cfg, device), shared, s.timeout_s, v.batch_size)
            dep = w.deployments[0]
            variants.append({"name": v.name, **{k: x for k, x in v.model_dump().items() if k != "name"},
                             "artifact_bytes": artifact_bytes,
                             "model_bytes": int(dep.model_bytes), "device": device,
                             "device_items": int(len(w.fleet.device_items(device)))})
            mins[v.name], errors[v.name] = {}, {}
            for workload in ("inference", "training"):
                found, result = min_budget(probe, workload, budgets, s.resolution_kb * 1024)
                points += found
                fitted = [p for p in found if p["fits"]]
                measured = max(p["measured_peak_bytes"] for p in fitted) if fitted else None
                predicted = probe.predicted(workload)
                mins[v.name][workload] = {**result, "predicted_bytes": predicted, "measured_peak_bytes": measured}
                errors[v.name][workload] = None if measured is None else (predicted - measured) / measured
                advance(1, variant=v.name, workload=workload)
    return {"variants": variants, "points": points, "min_budget_bytes": mins, "prediction_error": errors}


def _fleet_cfg(cfg: Config, **sim) -> Config:
    return cfg.model_copy(update={"sim": cfg.sim.model_copy(update=sim)})


def fits_smallest(run_dir: Path, devices: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Per device row: does the leanest deployed variant's inference fit the device's budget, by the memory model?"""
    w = Worker(run_dir)
    dep = w.deployments[-1]
    job = probe_job(cfg, 0)
    negatives = job.negatives
    rng = np.random.default_rng(0)  # the sizes of a device's data do not depend on the draw

    def need(d: int) -> int:
        local = w.task.device.local_data(w.fleet, int(d), len(w.texts), negatives, rng)
        return predict(dep.dims, shapes_of(w, job, dep, INFERENCE, local), False)

    return np.array([need(d) <= budget for d, budget in zip(devices["device"], devices["budget_bytes"])])


def policy_figures(devices: pd.DataFrame, summary: dict, can_fit: np.ndarray, task: FederatedTask) -> dict:
    """Participation among the sampled devices whose budget fits the smallest variant (dropouts aside: they
    leave for reasons memory does not change), OOM rate, the task's headline after the last round, p95 latency."""
    head, on_device = task.headline.key, task.device_metrics[0]
    fit = devices[can_fit & (devices["outcome"] != "dropout").to_numpy()]
    ok = devices[devices["outcome"] == "ok"]
    trained = ok[ok["plan"].isin(TRAINING_PLANS)]
    return {"device_rounds": int(len(devices)), "participation_rate": summary["participation_rate"],
            "oom_rate": summary["oom_rate"], head: summary[head], f"{head}_start": summary[f"{head}_start"],
            "latency_ms_p95": summary["latency_ms_p95"], "train_ms_p95": summary.get("train_ms_p95"),
            "fit_devices": int(len(fit)), "fit_participation": float((fit["outcome"] == "ok").mean()) if len(fit)
            else None, "trained_rate": float(len(trained) / max(len(devices), 1)),
            on_device.round_key: float(ok[on_device.key].mean()) if len(ok) else None,
            "straggler_rate": summary["straggler_rate"],
            "attempts_mean": float(devices.loc[devices["outcome"] != "dropout", "attempts"].mean())}


def policies(cfg: Config, model: Path, out: Path, reporter: Reporter) -> dict:
    """Fixed (no fallback), fixed with the rung ladder, adaptive: the same fleet, the same samples."""
    from simulation.run import run_simulate

    s = cfg.stress
    base = dict(model=model.resolve(), devices=s.devices, rounds=s.rounds, cohort=s.cohort)
    runs = {"fixed": _fleet_cfg(cfg, **base, policy="fixed", fallback="none"),
            "fixed+ladder": _fleet_cfg(cfg, **base, policy="fixed", fallback="ladder"),
            "adaptive": _fleet_cfg(cfg, **base, policy="adaptive", fallback="none")}
    summaries, tables = {}, {}
    for name, run_cfg in runs.items():
        reporter.log(f"policy {name}: {s.devices} devices, {s.rounds} rounds, cohort {s.cohort}")
        summaries[name] = run_simulate(run_cfg, out / "fleet" / name, reporter)
        tables[name] = Results(out / "fleet" / name).devices()
    task = federated_task(cfg.task.name)
    figures = {name: policy_figures(t, summaries[name], fits_smallest(out / "fleet" / "adaptive", t, cfg), task)
               for name, t in tables.items()}
    # The headline on the devices that took part under the fixed policy: the same (round, device) pairs in each run.
    key, on_device = ["round", "device"], task.device_metrics[0]
    fixed_ok = tables["fixed"].loc[tables["fixed"]["outcome"] == "ok", key]
    for name, table in tables.items():
        same = table.merge(fixed_ok, on=key)
        figures[name][f"{task.headline.key}_on_fixed_participants"] = \
            float(same[on_device.key].mean()) if len(same) else None
        figures[name]["on_fixed_participants_ok"] = int((same["outcome"] == "ok").sum())
    adaptive = tables["adaptive"]
    ladder = [v.name for v in cfg.sim.ladder]
    chosen = adaptive[adaptive["outcome"] != "dropout"].assign(
        variant=lambda f: [ladder[int(i)] for i in f["variant"]])
    figures["adaptive"]["variants_chosen"] = chosen["variant"].value_counts().to_dict()
    ok = pd.concat([t[t["outcome"] == "ok"] for t in tables.values()])
    measured = ok["peak_bytes"] + ok["budget_bytes"] - ok["allowance_bytes"]  # model + work, as the device counts
    rel = (ok["predicted_bytes"] - measured) / measured
    return {"runs": figures, "variants": ladder,
            "prediction_error_fleet": {"device_rounds": int(len(ok)), "mean": float(rel.mean()),
                                       "max_abs": float(rel.abs().max()) if len(ok) else None}}


def load_run(cfg: Config, model: Path, out: Path, reporter: Reporter) -> dict:
    """Many devices with budgets scaled down, a large cohort on every worker: the run survives, OOMs are listed."""
    from simulation.run import run_simulate

    s = cfg.stress
    population = draw_population(s.load_devices, cfg.sim.seed)
    population["budget_bytes"] = (population["budget_bytes"] * s.load_budget_scale).astype(np.int64)
    (out / "load").mkdir(parents=True, exist_ok=True)
    path = out / "load-population.parquet"
    population.to_parquet(path, index=False)
    run_cfg = _fleet_cfg(cfg, model=model.resolve(), devices=s.load_devices, rounds=s.load_rounds,
                         cohort=s.load_cohort, population=path.resolve(), fallback="ladder")
    reporter.log(f"load: {s.load_devices} devices at {s.load_budget_scale:g}x their budgets, cohort {s.load_cohort}")
    started = time.perf_counter()
    summary = run_simulate(run_cfg, out / "load", reporter)
    devices = Results(out / "load").devices()
    oom = devices[devices["outcome"] == "oom"]
    return {"devices": s.load_devices, "cohort": s.load_cohort, "rounds": summary["rounds"],
            "budget_scale": s.load_budget_scale, "survived": (out / "load" / SUMMARY).exists(),
            "wall_s": round(time.perf_counter() - started, 1), "device_rounds": int(len(devices)),
            "outcomes": devices["outcome"].value_counts().to_dict(), "oom_rate": summary["oom_rate"],
            "error_rate": summary["error_rate"],
            "ooms": [{"round": int(r["round"]), "device": int(r["device"]), "tier": r["tier"],
                      "budget_bytes": int(r["budget_bytes"]), "workload": r["workload"], "error": r["error"]}
                     for _, r in oom.iterrows()]}


def run_stress(cfg: Config, out: Path, reporter: Reporter) -> dict:
    started = time.perf_counter()
    out = prepare(out, REPORT)
    if (out / "sweep").exists():
        raise ConfigError(f"{out} holds an unfinished stress run; choose a new --out directory")
    fleet_dir = out / "sweep"
    fleet_dir.mkdir()
    sweep_cfg = _fleet_cfg(cfg, devices=cfg.stress.devices, cohort=min(cfg.sim.cohort, cfg.stress.devices))
    prepare_fleet(sweep_cfg, fleet_dir, reporter)  # the model (sim.model, or compressed now) and the fleet's data
    model = fleet_dir / MODEL
    get_task(cfg.task.name).write_description(out)
    report = {"task": cfg.task.name, "config": cfg.stress.model_dump(mode="json"), "model": str(cfg.sim.model or model)}
    report.update(sweep(cfg, model, fleet_dir, out, reporter))
    if cfg.stress.fleet:
        report["policies"] = policies(cfg, model, out, reporter)
        report["load"] = load_run(cfg, model, out, reporter)
    else:
        report["policies"] = {}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    write_json(out / REPORT, report)
    return report


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x / MB:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def print_stress_report(report: dict, out: Path) -> None:
    """Minimum budgets per variant and workload with predicted vs measured, then fixed vs adaptive, then load."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 130)
    mins = Table(title="Smallest budget that fits (MB) and the memory model's error (predicted vs measured peak)")
    for col in ("variant", "model MB", "infer min", "infer pred", "infer err", "train min", "train pred",
                "train err"):
        mins.add_column(col, justify="left" if col == "variant" else "right")
    for v in report["variants"]:
        m, e = report["min_budget_bytes"][v["name"]], report["prediction_error"][v["name"]]
        mins.add_row(v["name"], _mb(v["model_bytes"]),
                     *(x for w in ("inference", "training")
                       for x in (_mb(m[w]["min_budget_bytes"]), _mb(m[w]["predicted_bytes"]), _pct(e[w]))))
    console.print(mins)
    pol = report.get("policies") or {}
    if pol:
        t = Table(title=f"Policies: fixed vs adaptive (adaptive picks from {', '.join(pol['variants'])})")
        head = get_task(report["task"]).headline
        cols = {"participation_rate": "participation", "fit_participation": "particip. (fit)",
                "trained_rate": "trained", "oom_rate": "OOM", head.key: f"{head.label} global",
                f"{head.key}_on_fixed_participants": f"{head.label} on fixed's", "latency_ms_p95": "p95 infer ms"}
        t.add_column("policy")
        for c in cols.values():
            t.add_column(c, justify="right")
        for name, f in pol["runs"].items():
            t.add_row(name, *("-" if f.get(k) is None else (f"{f[k]:.1f}" if k == "latency_ms_p95" else f"{f[k]:.3f}")
                              for k in cols))
        console.print(t)
        err = pol["prediction_error_fleet"]
        console.print(f"memory model on every device that fitted in these runs: mean error {_pct(err['mean'])}, "
                      f"worst {100 * (err['max_abs'] or 0):.1f}% over {err['device_rounds']} device-rounds")
    load = report.get("load")
    if load:
        by = pd.Series([o["workload"] for o in load["ooms"]], dtype=str).value_counts().to_dict()
        console.print(f"load: {load['devices']:,} devices at {load['budget_scale']:g}x budget, cohort "
                      f"{load['cohort']}, {load['rounds']} round(s): survived={load['survived']}, outcomes "
                      f"{load['outcomes']}, OOMs by workload {by} (each listed with device and tier in the report)")
    console.print(f"report: {out / REPORT}  (wall {report['wall_s']:.1f} s)")
