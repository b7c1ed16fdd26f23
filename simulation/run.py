"""`edgefleet simulate`: prepare the run directory, run the Flower app on the simulation engine, follow it, summarise.

A run that is interrupted (Ctrl-C, a killed process) keeps every committed round; `--resume DIR` starts Flower
again on the same directory and the ServerApp carries on after the last committed round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from edgefleet.config import Config
from edgefleet.errors import ConfigError, RunDirError
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import SIM_CONFIG, SUMMARY, prepare, removed_on_failure, write_json
from edgefleet.tasks import get_task
from server.privacy import slots_for
from server.strategy import RAY_GONE
from simulation.cluster import ClusterError, check_cluster, data_dir, ship, wait_for_fewer_nodes
from simulation.launch import FlowerSim, ended_early, follow_rounds, write_app
from simulation.prepare import prepare_fleet

SERVERAPP = "server.app:app"
CLIENTAPP = "simulation.engine:clientapp"
# SecAgg+ runs on Flower's legacy strategy stack only (docs/privacy.md, SecAgg+): its own pair of apps.
SECURE_APPS = ("server.secure:app", "simulation.engine:secure_clientapp")
# A run restarts its Flower run at most this often after losing devices with a Ray worker (a node, or an actor
# process killed).
MAX_RESTARTS = 3


def load_resumable(run_dir: Path) -> Config:
    if not (run_dir / SIM_CONFIG).exists():
        raise RunDirError(f"--resume {run_dir}: no {SIM_CONFIG} there; it is not a simulation run directory")
    if (run_dir / SUMMARY).exists():
        raise RunDirError(f"--resume {run_dir}: the run is finished ({SUMMARY} exists)")
    return Config.model_validate(json.loads((run_dir / SIM_CONFIG).read_text()))


def run_simulate(cfg: Config | None, out: Path, reporter: Reporter, resume: bool = False) -> dict:
    started = time.perf_counter()
    if resume:
        cfg = load_resumable(out)
    if cfg.sim.device_data == "own":
        raise ConfigError("sim.device_data \"own\": each device is a SuperNode of Flower's Deployment Engine; run it "
                          "with edgefleet deploy --own-data")
    if cfg.sim.tls:
        raise ConfigError("sim.tls secures the Deployment Engine's connections: use edgefleet deploy --tls")
    if resume:
        reporter.log(f"resuming {out} after round {Results(out).completed_rounds()} of {cfg.sim.rounds}")
        data, cluster_nodes = join_cluster(cfg, out, reporter)
    else:
        existed = Path(out).exists() and any(Path(out).iterdir())
        out = prepare(out, SUMMARY)
        if (out / SIM_CONFIG).exists():
            raise RunDirError(f"{out} holds an unfinished simulation; continue it with --resume {out}")
        with removed_on_failure(out, existed):  # a failed preparation leaves no half-made run directory
            data, cluster_nodes = join_cluster(cfg, out, reporter)
            prepare_fleet(cfg, out, reporter)
    if data is not None:
        ship(out, data)
    results = Results(out)
    headline = get_task(cfg.task.name).headline
    app_dir = write_app(out / "app", "edgefleet", *(SECURE_APPS if cfg.privacy.secagg else (SERVERAPP, CLIENTAPP)))
    run_config = {"run-dir": str(out.resolve()), **({"data-dir": str(data)} if data is not None else {})}
    run_wall, peak_rss, restarts = 0.0, 0, 0
    while True:
        with FlowerSim(out, cfg.sim.workers, ray_address=cfg.sim.ray_address) as sim:
            run_started = time.perf_counter()
            sim.submit(app_dir, slots_for(cfg), {**run_config, "stop-on-lost-node": int(restarts < MAX_RESTARTS)})
            lost: list[int] = []  # committed rounds in which devices were lost with a Ray worker

            def check(r: int) -> None:
                if lost_with_a_node(results.round_devices(r)):
                    lost.append(r)

            restart = lambda: bool(lost) and restarts < MAX_RESTARTS  # noqa: E731
            status = follow_rounds(sim, results, reporter, f"federated rounds ({cfg.sim.devices:,} devices, cohort "
                                   f"{cfg.sim.cohort})", cfg.sim.rounds, headline, check, restart)
            run_wall += time.perf_counter() - run_started
            log = sim.save_log()
            peak_rss = max(peak_rss, sim.peak_rss)
        if results.finished() is not None:
            break
        if not restart():
            raise ended_early(status, results.completed_rounds(), log, f"edgefleet simulate --resume {out}")
        # Flower's Ray backend keeps a dead actor in its pool (docs/simulation.md, On a Ray cluster): a new Flower
        # run builds its pool afresh, on a cluster once Ray has declared the node dead, on one host with a new Ray.
        # The round in flight is discarded and redone from the last checkpoint, as on --resume.
        restarts += 1
        reporter.log(f"devices were lost with a Ray worker in round {lost[0]}: going on after round "
                     f"{results.completed_rounds()} with a new worker pool (restart {restarts} of {MAX_RESTARTS})")
        if cluster_nodes:
            wait_for_fewer_nodes(cfg.sim.ray_address, cluster_nodes, out)
    summary = {**summarize(cfg, results, run_wall, time.perf_counter() - started, peak_rss), "restarts": restarts}
    write_json(out / SUMMARY, summary)
    return summary


def lost_with_a_node(devices: pd.DataFrame) -> bool:
    """Whether a round's device rows hold a device lost with its Ray worker (server/strategy.py `gone`)."""
    if "error" not in devices:
        return False
    errors = devices.loc[devices["outcome"] == "dropout", "error"].fillna("")
    return bool(errors.str.contains("|".join(RAY_GONE), regex=True).any())


def join_cluster(cfg: Config, out: Path, reporter: Reporter) -> tuple[Path | None, int]:
    """With `sim.ray_address`: check, before any work, that every node of the cluster sees the directory workers will
    read; returns that directory when it is `sim.shared_dir`'s (None: the run directory), and the cluster's alive
    nodes (0 without a cluster)."""
    if cfg.sim.ray_address is None:
        return None, 0
    data = data_dir(cfg, out)
    try:
        nodes = check_cluster(cfg.sim.ray_address, data or out, out)
    except ClusterError:
        if data is not None and not any(data.iterdir()):  # made just now, for this run
            data.rmdir()
        raise
    reporter.log(f"Ray cluster at {cfg.sim.ray_address}: {len(nodes)} node(s), "
                 f"{sum(n['cpus'] for n in nodes):g} CPU(s); workers read {data or out}")
    return data, len(nodes)


def _rate(devices: pd.DataFrame, outcome: str) -> float:
    return float((devices["outcome"] == outcome).mean()) if len(devices) else 0.0


def outcomes_by_tier(devices: pd.DataFrame) -> dict:
    table = pd.crosstab(devices["tier"], devices["outcome"])
    return {tier: {k: int(v) for k, v in row.items()} for tier, row in table.iterrows()}


def summarize(cfg: Config, results: Results, run_wall: float, wall: float, peak_rss: int) -> dict:
    rounds, devices, start = results.rounds(), results.devices(), results.start() or {}
    last = rounds.iloc[-1]
    ok = devices[devices["outcome"] == "ok"]
    task = get_task(cfg.task.name)
    figures = {}
    for m in task.metrics:  # each of the task's metrics after the last round, before the first, and the change
        figures.update({m.key: float(last[m.key]), f"{m.key}_start": float(start.get(m.key, np.nan)),
                        f"{m.key}_delta": float(last[m.key] - start.get(m.key, np.nan))})
    return {
        "task": task.name, "devices": cfg.sim.devices, "rounds": int(len(rounds)), "cohort": cfg.sim.cohort,
        **figures,
        "participation_rate": _rate(devices, "ok"), "oom_rate": _rate(devices, "oom"),
        "dropout_rate": _rate(devices, "dropout"), "straggler_rate": _rate(devices, "straggler"),
        "error_rate": _rate(devices, "error"),
        # On-device inference (encode the candidates, rank, top-10) on the device's own clock.
        "latency_ms_p50": float(ok["infer_ms"].median()) if len(ok) else None,
        "latency_ms_p95": float(ok["infer_ms"].quantile(0.95)) if len(ok) else None,
        "train_ms_p50": float(ok["train_ms"].median()) if len(ok) else None,
        "train_ms_p95": float(ok["train_ms"].quantile(0.95)) if len(ok) else None,
        "peak_mem_bytes_p95": float(ok["peak_bytes"].quantile(0.95)) if len(ok) else None,
        "round_virtual_s_mean": float(rounds["round_virtual_s"].mean()),
        "device_rounds": int(len(devices)),
        "wall_s": round(wall, 2), "rounds_wall_s": round(run_wall, 2),
        "round_wall_s_mean": float(rounds["wall_s"].mean()),
        "device_rounds_per_s": float(len(devices) / max(rounds["wall_s"].sum(), 1e-9)),
        "peak_rss_bytes": int(peak_rss),
        "bytes_up": int(rounds["bytes_up"].sum()), "bytes_down": int(rounds["bytes_down"].sum()),
        **privacy_summary(cfg, rounds, most_devices_of_one_user(cfg, results)),
        "outcomes_by_tier": outcomes_by_tier(devices),
        "update_bits": cfg.sim.update_bits, "fallback": cfg.sim.fallback,
        # What every round's figures are of (server/recorder.py Released).
        "released": (f"EMA {cfg.sim.server_ema:g} of the server's models" if cfg.sim.server_ema
                     else "the server's model"),
    }


def most_devices_of_one_user(cfg: Config, results: Results) -> int | None:
    """How many devices the user with the most devices holds, for a task whose fleet says which user owns each
    device (None otherwise)."""
    from edgefleet.rundir import FLEET_DIR
    from edgefleet.tasks import federated_task

    try:
        fleet, _ = federated_task(cfg.task.name).load_fleet(results.run_dir / FLEET_DIR)
    except FileNotFoundError:  # a run directory whose fleet data was removed says nothing of its owners
        return None
    owners = getattr(fleet, "device_user", None)
    return None if owners is None or len(owners) == 0 else int(np.unique(owners, return_counts=True)[1].max())


def privacy_summary(cfg: Config, rounds: pd.DataFrame, devices_per_user: int | None = None) -> dict:
    """`epsilon` (null without DP) at `delta` after the last round, and how the updates were protected.

    With `privacy.unit="device"` the guarantee is device-level: epsilon covers everything one device contributes.
    When one user owns several devices, the summary says so: that user is covered as a group of devices, whose
    epsilon grows with the group. With "user" the rounds sampled users (server/samplers/poisson_user.py) and epsilon
    covers everything one user contributes."""
    p = cfg.privacy
    if p.noise is None and not p.secagg:
        return {"epsilon": None}
    out = {"epsilon": None, "privacy": {"secagg": p.secagg}}
    if p.noise is not None:
        eps = float(rounds["epsilon"].iloc[-1])
        out["epsilon"] = eps if np.isfinite(eps) else None  # JSON has no infinity: noise 0 gives no guarantee
        out["delta"] = float(rounds["delta"].iloc[-1])
        from server.privacy import mechanism_class, mechanism_name, sampling_name

        name = mechanism_name(cfg)
        mechanism = mechanism_class(name)
        if p.unit == "user":
            guarantee = ("user-level: each round samples users, and a sampled user sends one update through one of "
                         f"its devices (up to {devices_per_user} a user)")
        elif devices_per_user and devices_per_user > 1:
            guarantee = (f"device-level; one user holds up to {devices_per_user} devices, covered as a group of "
                         "that many")
        else:
            guarantee = "device-level; every user holds one device, so also user-level"
        out["privacy"].update(mechanism=name, noise_multiplier=p.noise, clip=p.clip, adaptive=p.adaptive,
                              unit=p.unit, sampling=sampling_name(cfg), max_devices_per_user=devices_per_user,
                              guarantee=guarantee,
                              sampling_rate=float(rounds["sampling_rate"].iloc[-1]),
                              accountant=mechanism.accountant,
                              clip_norm_last=float(rounds["clip_norm"].iloc[-1]),
                              noise_std_last=float(rounds["noise_std"].iloc[-1]))
    if p.secagg:
        out["privacy"].update(secagg_shares=p.secagg_shares, secagg_threshold=p.secagg_threshold,
                              secagg_bits=p.secagg_bits)
    return out
