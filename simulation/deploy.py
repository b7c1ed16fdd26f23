"""`edgefleet deploy --local N [--superlink ADDR]`: the simulation's run on Flower's Deployment Engine.

A SuperLink (no `--simulation`) and N `flower-supernode` processes on loopback, insecure, each naming its partition
in its `--node-config`; with `--superlink ADDR`, a running SuperLink instead, which the SuperNodes started here (if
any) and those started elsewhere join. The ServerApp and ClientApp are the simulation's, unchanged: each round the
ServerApp samples the cohort and tells each SuperNode which device of the fleet it emulates (server/strategy.py), so
a SuperNode is an execution slot, as a Ray worker is in simulation, and the cohort must fit on the SuperNodes (the
server waits until enough have joined). The ServerApp (on the SuperLink's host) and the ClientApp read the config,
model and fleet from the run directory, so every host must see it at the same path. The results and `summary.json`
are `simulate`'s, with `engine`, `supernodes` and `superlink` added. Every process started here is stopped by pid,
however the run ends (simulation/launch.py). `--resume DIR` goes on after the last committed round, as `simulate
--resume` does, on the SuperNodes given then; a launcher that was killed left its pids, and their leftovers are
stopped first.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgefleet.config import Config
from edgefleet.errors import ConfigError, RunDirError
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import DEVICES_DIR, FLEET_DIR, SHARD, SIM_CONFIG, SUMMARY, prepare, removed_on_failure, write_json
from edgefleet.tasks import federated_task, get_task
from server.privacy import slots_for
from simulation.launch import FlowerSim, ended_early, follow_rounds, write_app
from simulation.prepare import prepare_fleet
from simulation.run import CLIENTAPP, SECURE_APPS, SERVERAPP, load_resumable, summarize


def check_deploy(cfg: Config, supernodes: int, superlink: str | None) -> None:
    if supernodes < 0 or (supernodes == 0 and superlink is None):
        raise ConfigError(f"deploy --local {supernodes}: start at least one SuperNode, or join a SuperLink whose "
                          "SuperNodes run elsewhere with --superlink HOST:PORT")
    if cfg.sim.ray_address is not None:
        raise ConfigError("deploy runs on Flower's Deployment Engine; sim.ray_address is for simulate")
    if superlink is not None and (":" not in superlink or "://" in superlink):
        raise ConfigError(f"--superlink {superlink}: give the SuperLink's HOST:PORT")
    if cfg.sim.tls and superlink is not None and cfg.sim.root_certificates is None:
        raise ConfigError("--tls --superlink: give the joined SuperLink's CA certificate with --root-certificates")
    if cfg.sim.root_certificates is not None and not Path(cfg.sim.root_certificates).is_file():
        raise ConfigError(f"--root-certificates {cfg.sim.root_certificates}: no such file")
    if cfg.sim.device_data == "own":
        if supernodes > cfg.sim.devices or (superlink is None and supernodes != cfg.sim.devices):
            raise ConfigError(f"deploy --local {supernodes} --own-data: one SuperNode per device, and the fleet has "
                              f"{cfg.sim.devices:,}" + ("" if superlink else "; give --devices or --local to match"))
        return
    slots = slots_for(cfg)
    if superlink is None and slots > supernodes:
        raise ConfigError(f"deploy --local {supernodes}: a round sends work to {slots} devices at once and each "
                          f"SuperNode runs one; give --cohort {supernodes} or --local {slots}")


def device_dir(run_dir: Path, device: int) -> Path:
    return run_dir / DEVICES_DIR / str(device)


def write_device_dirs(cfg: Config, run_dir: Path) -> None:
    """Each device's own storage (sim.device_data "own"): its shard of the fleet, as the task cuts it, and which
    device it is. Nothing else of the run directory: the model and config come in the server's first message."""
    task = federated_task(cfg.task.name)
    for d in range(cfg.sim.devices):
        shard = device_dir(run_dir, d) / FLEET_DIR
        shard.mkdir(parents=True)
        task.write_shard(run_dir / FLEET_DIR, d, shard)
        write_json(shard / SHARD, {"device": d})


def run_deploy(cfg: Config | None, out: Path, reporter: Reporter, supernodes: int,
               superlink: str | None = None) -> dict:
    """A new run into `out` with `cfg`; `cfg` None: resume the interrupted run in `out` (its own config) after its
    last committed round, on the SuperNodes given now. With `sim.device_data` "own" and neither SuperNodes nor
    a SuperLink given, one SuperNode per device."""
    started = time.perf_counter()
    resumed = cfg is None
    cfg = load_resumable(out) if resumed else cfg
    if cfg.sim.device_data == "own" and supernodes == 0 and superlink is None:
        supernodes = cfg.sim.devices
    check_deploy(cfg, supernodes, superlink)
    if resumed:
        reporter.log(f"resuming {out} after round {Results(out).completed_rounds()} of {cfg.sim.rounds}")
    else:
        existed = Path(out).exists() and any(Path(out).iterdir())
        out = prepare(out, SUMMARY)
        if (out / SIM_CONFIG).exists():
            raise RunDirError(f"{out} holds an unfinished run; continue it with edgefleet deploy --resume {out}")
        with removed_on_failure(out, existed):
            prepare_fleet(cfg, out, reporter)
            if cfg.sim.device_data == "own":
                with reporter.stage(f"every device's own storage under {out / DEVICES_DIR}"):
                    write_device_dirs(cfg, out)
    results = Results(out)
    headline = get_task(cfg.task.name).headline
    app_dir = write_app(out / "app", "edgefleet", *(SECURE_APPS if cfg.privacy.secagg else (SERVERAPP, CLIENTAPP)))
    slots = slots_for(cfg)
    where = f"{supernodes} local SuperNode(s)" + (f" and those of {superlink}" if superlink else "")
    own = cfg.sim.device_data == "own"
    device_dirs = [device_dir(out, d).resolve() for d in range(supernodes)] if own else None
    run_config = {"run-dir": str(out.resolve()), **({"expect-devices": 0 if superlink else supernodes} if own else {})}
    with FlowerSim(out, cfg.sim.workers, supernodes=supernodes, superlink=superlink, device_dirs=device_dirs,
                   tls=cfg.sim.tls, supernode_auth=cfg.sim.supernode_auth,
                   root_certificates=cfg.sim.root_certificates) as deployment:
        run_started = time.perf_counter()
        deployment.submit(app_dir, slots, run_config)
        if superlink:
            reporter.log(f"run {deployment.run_id} on the SuperLink at {superlink}; round 1 starts when {slots} "
                         "SuperNodes have joined")
        status = follow_rounds(deployment, results, reporter, f"federated rounds on {where} "
                               f"({cfg.sim.devices:,} devices, cohort {cfg.sim.cohort})", cfg.sim.rounds, headline)
        run_wall = time.perf_counter() - run_started
        log = deployment.save_log()
        if results.finished() is None:
            resume = f"edgefleet deploy --resume {out} --local {supernodes}" + (
                f" --superlink {superlink}" if superlink else "")
            raise ended_early(status, results.completed_rounds(), log, resume)
        peak_rss = deployment.peak_rss
    summary = {**summarize(cfg, results, run_wall, time.perf_counter() - started, peak_rss),
               "engine": "deployment", "supernodes": supernodes, "superlink": superlink,
               "device_data": cfg.sim.device_data, "tls": cfg.sim.tls, "supernode_auth": cfg.sim.supernode_auth}
    write_json(out / SUMMARY, summary)
    return summary
