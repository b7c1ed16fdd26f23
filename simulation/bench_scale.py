"""`edgefleet bench scale`: what one device costs, what that predicts past one host, and a check of the prediction's
shape on one against two local Ray nodes.

1. **Population** (no Flower): the profiles, the fleet files and a draw of a cohort of `COHORT` for `DEVICES`
   devices, timed in this process; the files' bytes on disk.
2. **One and two nodes**: a Ray cluster on this host (simulation/cluster.py `LocalRayCluster`, one CPU a node) runs
   the configured simulation (`sim.devices`, `sim.cohort`, `sim.rounds`, the model) with one node, then the same
   run, same seed, with a second node. From the one-node run's rounds after the first (Ray's workers start in
   round 1): the device work is the worker's summed ClientApp calls (edgefleet/results.py WALL_PARTS: encode, traced,
   rerun, fork, client), which the nodes share; the rest of the round (messaging, the server's steps) is serial.
   The prediction for two nodes is serial + device work / 2; the bench prints it beside the measured round.
3. **Prediction** for `DEVICES` devices and a cohort of `COHORT` on K nodes of `WORKERS` workers each, from the
   per-device costs of step 2 and the population costs of step 1: round time ~ serial per device x cohort + device
   work per device x cohort / (K x workers). That the serial part grows linearly with the cohort is an assumption
   this host cannot check beyond the configured cohort; the bench says so.

On a 2-core host the two nodes take both cores and the launcher, the SuperLink and the ServerApp share them, so the
measured two-node round is an upper bound of what a second machine would give.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefleet.config import Config
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import BENCH_SCALE, POPULATION, prepare, write_json
from edgefleet.tasks import federated_task
from simulation.bench import round_breakdown
from simulation.cluster import LocalRayCluster
from simulation.population import population_for
from simulation.run import run_simulate

DEVICES, COHORT, WORKERS = 1_000_000, 10_000, 16
NODES = (1, 10, 100)
DEVICE_PARTS = ("encode", "traced", "rerun", "fork", "client")  # a worker's calls: what more nodes share


def population_costs(cfg: Config, devices: int, cohort: int, reporter: Reporter) -> dict:
    """Preparing `devices` devices' profiles and fleet files, and one round's cohort draw, timed here."""
    from server.samplers import sampler_for

    sim = cfg.sim.model_copy(update={"devices": devices, "cohort": cohort})
    task = federated_task(cfg.task.name)
    data = task.load(cfg.task)
    with reporter.stage(f"population: {devices:,} devices' profiles and fleet files"), \
            tempfile.TemporaryDirectory(prefix="edgefleet-scale-") as tmp:
        started = time.perf_counter()
        profiles = population_for(sim)
        profiles_s = time.perf_counter() - started
        started = time.perf_counter()
        task.prepare_fleet(data, sim, Path(tmp))
        profiles.to_parquet(Path(tmp) / POPULATION, index=False)
        fleet_s = time.perf_counter() - started
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    sampler = sampler_for("uniform", profiles["availability"].to_numpy(), cohort, cfg.sim.seed)
    started = time.perf_counter()
    for r in range(1, 6):
        sampler.sample(r)
    draw_s = (time.perf_counter() - started) / 5
    return {"devices": devices, "cohort": cohort, "profiles_s": profiles_s, "fleet_files_s": fleet_s,
            "disk_bytes": disk, "disk_bytes_per_device": disk / devices, "cohort_draw_s": draw_s}


def predict(per_device: dict, cohort: int, nodes: tuple[int, ...], workers: int) -> list[dict]:
    """A round of `cohort` devices on each number of `nodes` of `workers` workers: the serial part per device times
    the cohort, plus the worker time per device times the cohort shared by every worker."""
    rows = []
    for k in nodes:
        device, serial = cohort * per_device["worker_s"] / (k * workers), cohort * per_device["serial_s"]
        rows.append({"nodes": k, "workers": k * workers, "device_work_s": device, "serial_s": serial,
                     "round_s": device + serial})
    return rows


def _on_cluster(cfg: Config, cluster: LocalRayCluster, out: Path, reporter: Reporter) -> dict:
    shared = out.parent / f"{out.name}-shared"
    shared.mkdir()
    sim = cfg.sim.model_copy(update={"ray_address": cluster.address, "shared_dir": shared})
    summary = run_simulate(cfg.model_copy(update={"sim": sim}), out, reporter)
    rounds = Results(out).rounds()
    parts = round_breakdown(rounds)
    later = rounds.iloc[1:] if len(rounds) > 1 else rounds
    device = sum(parts[p] for p in DEVICE_PARTS)
    devices = Results(out).devices()
    return {"summary": summary, "round_s": float(later["wall_s"].mean()), "device_s": device,
            "serial_s": float(later["wall_s"].mean()) - device, "parts_s": parts,
            "sampled": float(later["sampled"].mean()), "nodes_used": int(devices["node"].nunique()),
            "devices_per_node": {str(k): int(v) for k, v in devices["node"].value_counts().items()}}


def run_bench_scale(cfg: Config, out: Path, reporter: Reporter) -> dict:
    out = prepare(out, BENCH_SCALE)
    model = cfg.sim.model
    if model is None:
        from simulation.prepare import build_model

        model = build_model(cfg, federated_task(cfg.task.name), out, reporter)
    run_cfg = cfg.model_copy(update={"sim": cfg.sim.model_copy(update={"model": Path(model).resolve()})})
    population = population_costs(cfg, DEVICES, COHORT, reporter)
    root = Path(tempfile.mkdtemp(prefix="efscale-", dir="/tmp"))  # short: Ray's socket paths must stay under 108
    try:
        with LocalRayCluster(root) as cluster:
            with reporter.stage("a local Ray cluster of one node (one CPU)"):
                cluster.start_node("head", head=True)
            one = _on_cluster(run_cfg, cluster, out / "one-node", reporter)
            with reporter.stage("a second node (one CPU)"):
                cluster.start_node("worker", head=False)
            two = _on_cluster(run_cfg, cluster, out / "two-nodes", reporter)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    predicted_two = one["serial_s"] + one["device_s"] / 2
    per_device = {"worker_s": one["device_s"] / one["sampled"], "serial_s": one["serial_s"] / one["sampled"],
                  "bytes_down": one["summary"]["bytes_down"] / one["summary"]["device_rounds"],
                  "bytes_up": one["summary"]["bytes_up"] / one["summary"]["device_rounds"]}
    prediction = predict(per_device, COHORT, NODES, WORKERS)
    report = {"population": population, "one_node": one, "two_nodes": two,
              "shape": {"measured_ratio": two["round_s"] / one["round_s"],
                        "predicted_ratio": predicted_two / one["round_s"], "predicted_two_node_round_s": predicted_two},
              "per_device": per_device, "prediction": prediction,
              "target": {"devices": DEVICES, "cohort": COHORT, "workers_per_node": WORKERS,
                         "traffic_per_round_bytes": COHORT * (per_device["bytes_down"] + per_device["bytes_up"])},
              "settings": {"devices": cfg.sim.devices, "cohort": cfg.sim.cohort, "rounds": cfg.sim.rounds,
                           "model": str(model)}}
    write_json(out / BENCH_SCALE, report)
    print_bench_scale(report, out)
    return report


def print_bench_scale(report: dict, out: Path) -> None:
    console = Console(width=None if sys.stdout.isatty() else 120)
    s, pop, per = report["settings"], report["population"], report["per_device"]
    t = Table(title=f"bench scale: {s['devices']:,} devices, cohort {s['cohort']}, {s['rounds']} rounds, on local "
                    "Ray nodes of one CPU (rounds after the first)")
    for col in ("nodes", "nodes that ran devices", "round (s)", "device work (s)", "serial (s)", "predicted round (s)"):
        t.add_column(col, justify="left" if col == "nodes" else "right")
    one, two, shape = report["one_node"], report["two_nodes"], report["shape"]
    t.add_row("1", str(one["nodes_used"]), f"{one['round_s']:.2f}", f"{one['device_s']:.2f}",
              f"{one['serial_s']:.2f}", "")
    t.add_row("2", str(two["nodes_used"]), f"{two['round_s']:.2f}", f"{two['device_s']:.2f}",
              f"{two['serial_s']:.2f}", f"{shape['predicted_two_node_round_s']:.2f}")
    console.print(t)
    console.print(f"two nodes / one node: measured {shape['measured_ratio']:.2f}, predicted "
                  f"{shape['predicted_ratio']:.2f} (two nodes of one CPU on this host share its cores with the server)")
    console.print(f"per device-round: {per['worker_s'] * 1e3:.0f} ms of worker time, {per['serial_s'] * 1e3:.1f} ms of "
                  f"serial time, {per['bytes_down'] / 1e3:,.0f} KB down, {per['bytes_up'] / 1e3:,.0f} KB up")
    console.print(f"population of {pop['devices']:,}: profiles {pop['profiles_s']:.2f} s, fleet files "
                  f"{pop['fleet_files_s']:.2f} s, {pop['disk_bytes'] / 1e6:,.1f} MB on disk "
                  f"({pop['disk_bytes_per_device']:.0f} B a device), a cohort of {pop['cohort']:,} drawn in "
                  f"{pop['cohort_draw_s'] * 1e3:.1f} ms")
    target = report["target"]
    p = Table(title=f"predicted round at {target['devices']:,} devices, cohort {target['cohort']:,}, "
                    f"{target['workers_per_node']} workers a node (serial part assumed linear in the cohort)")
    for col in ("nodes", "workers", "device work (s)", "serial (s)", "round (s)", "300 rounds (h)"):
        p.add_column(col, justify="right")
    for row in report["prediction"]:
        p.add_row(f"{row['nodes']:,}", f"{row['workers']:,}", f"{row['device_work_s']:.1f}", f"{row['serial_s']:.1f}",
                  f"{row['round_s']:.1f}", f"{300 * row['round_s'] / 3600:.1f}")
    console.print(p)
    console.print(f"traffic through the SuperLink per round: {target['traffic_per_round_bytes'] / 1e9:,.1f} GB; "
                  f"report {out / BENCH_SCALE}")
