"""The ServerApp: FedAvg of the deployed model's shared head over the emulated fleet, recorded round by round
(with `privacy.noise`, DP-FedAvg: server/privacy/; with `privacy.secagg`, server/secure.py runs instead).

Everything it needs is in the run directory that `edgefleet simulate` prepared (`run-dir` in the run config):
the config, the artifact, the fleet. The fleet's data is read here only by the testbed's yardstick (the global
evaluation of each round's released model, and the users behind devices for user-level sampling); with
`sim.device_data` "own" no device reads the run directory. A run directory that already holds committed rounds is
resumed after its last one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from compression.runtime import load_model
from compression.runtime.artifact import read_artifact
from edgefleet.config import Config
from edgefleet.results import Results
from edgefleet.rundir import FLEET_DIR, MODEL, POPULATION, SIM_CONFIG
from edgefleet.tasks import federated_task, get_task
from edgefleet.tasks.base import FederatedTask
from edgefleet.tasks.optim import optimizer_name, task_lr
from server.optimizers import restore, settings
from server.placement import OwnDevices, Placement, Slots, deployment_bundle
from server.privacy import mechanism_from_config
from server.privacy.base import PrivacyMechanism
from server.recorder import Released, RoundRecorder
from server.strategy import fleet_strategy

app = ServerApp()


def device_job(cfg: Config) -> dict:
    """The local-work settings every device receives (client/device.py DeviceJob); the optimizer and learning rates
    left unset are the task's own."""
    s, task = cfg.sim, get_task(cfg.task.name)
    own, optimizer = task.local_training, optimizer_name(s.local_optimizer, task)
    return {"seed": s.seed, "epochs": s.local_epochs, "batch-size": s.batch_size, "negatives": s.negatives,
            "optimizer": optimizer, "lr": task_lr(own, optimizer) if s.lr is None else s.lr,
            "personal-lr": own["personal_lr"] if s.personal_lr is None else s.personal_lr,
            "fallback": s.fallback, "update-bits": s.update_bits, "encoder-cache": int(s.encoder_cache),
            "reuse-peaks": int(s.reuse_peaks), "item-residual": int(s.item_residual)}


@dataclass
class Session:
    """What either ServerApp (plain here, SecAgg+ in server/secure.py) needs to run the remaining rounds."""

    cfg: Config
    results: Results
    done: int
    weights: dict
    population: pd.DataFrame
    recorder: RoundRecorder
    mechanism: PrivacyMechanism  # with the sampler it needs
    task: FederatedTask

    @property
    def remaining(self) -> int:
        return self.cfg.sim.rounds - self.done


def open_session(context: Context) -> Session | None:
    """Load the run directory; None when every round is already committed (the run is then marked finished)."""
    run_dir = Path(str(context.run_config["run-dir"]))
    cfg = Config.model_validate(json.loads((run_dir / SIM_CONFIG).read_text()))
    results = Results(run_dir)
    results.ensure()
    done = results.completed_rounds()
    results.discard_after(done)
    if cfg.sim.rounds - done <= 0:
        results.finish({"rounds": done})
        return None
    artifact = read_artifact(run_dir / MODEL)
    task = federated_task(cfg.task.name)
    population = pd.read_parquet(run_dir / FLEET_DIR / POPULATION)
    fleet, texts = task.load_fleet(run_dir / FLEET_DIR)
    weights = results.checkpoint(done) if done else task.trained_params(artifact.tensors, cfg.sim, fleet)
    evaluator = task.evaluator(load_model(artifact), texts, task.load(cfg.task))
    released = Released(cfg.sim.server_ema, results.optimizer_state(done) if done else None)
    recorder = RoundRecorder(results, population, evaluator, cfg.sim.deadline_s, done, task.device_metrics,
                             released)
    mechanism = mechanism_from_config(cfg, population["availability"].to_numpy(), getattr(fleet, "device_user", None))
    if done:  # the privacy spent so far, and the adaptive clipping norm the last committed round left
        mechanism.resume(done, results.rounds())
    return Session(cfg, results, done, weights, population, recorder, mechanism, task)


def placement(cfg: Config, context: Context, slots: int) -> Placement:
    """With `sim.device_data` "own", each SuperNode is one device, met by a first message that carries the model and
    the config (server/placement.py); otherwise the nodes are slots. The first round waits for `expect-devices`
    devices (the launcher's SuperNodes; 0: as many as a round sends work to)."""
    if cfg.sim.device_data != "own":
        return Slots(slots, cfg.sim.node_wait_s)
    run_dir = Path(str(context.run_config["run-dir"]))
    expected = int(context.run_config.get("expect-devices", 0)) or min(slots, cfg.sim.devices)
    return OwnDevices(deployment_bundle((run_dir / MODEL).read_bytes(), (run_dir / SIM_CONFIG).read_text()),
                      expected)


@app.main()
def main(grid: Grid, context: Context) -> None:
    session = open_session(context)
    if session is None:
        return
    cfg, results, done = session.cfg, session.results, session.done
    strategy = fleet_strategy(cfg.sim.server_optimizer, session.population, session.mechanism, device_job(cfg),
                              cfg.sim.deadline_s * 1e3, session.recorder.on_devices, done,
                              placement(cfg, context, session.mechanism.slots), **settings(cfg.sim))
    session.recorder.strategy = strategy
    strategy.stop_on_lost_node = bool(int(context.run_config.get("stop-on-lost-node", 0)))
    if done:
        restore(strategy, results.optimizer_state(done), by_name=True)
    strategy.start(grid=grid, initial_arrays=ArrayRecord({k: Array(v) for k, v in session.weights.items()}),
                   num_rounds=session.remaining, train_config=ConfigRecord(), evaluate_fn=session.recorder.evaluate,
                   timeout=cfg.sim.round_timeout_s)
    results.finish({"rounds": results.completed_rounds()})
