"""The ServerApp: FedAvg of the deployed model's shared head over the emulated fleet, recorded round by round.

Everything it needs is in the run directory that `edgefleet simulate` prepared (`run-dir` in the run config):
the config, the artifact, the fleet. A run directory that already holds committed rounds is resumed after its
last one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from compression.artifact import read_artifact
from compression.heads import shared_params
from compression.runtime import DeviceModel
from edgefleet.config import Config
from edgefleet.fleet import FLEET_DIR, POPULATION, load_item_texts
from edgefleet.results import SIM_CONFIG, Results
from edgefleet.task.bundle import load_task
from server.evaluate import GlobalEvaluator
from server.recorder import RoundRecorder
from server.strategy import DeviceSampler, FleetFedAvg

MODEL = "model.eflt"
app = ServerApp()


def device_job(cfg: Config) -> dict:
    """The local-work settings every device receives (client/device.py DeviceJob)."""
    s = cfg.sim
    return {"seed": s.seed, "epochs": s.local_epochs, "batch-size": s.batch_size, "negatives": s.negatives,
            "lr": s.lr, "personal-lr": s.personal_lr, "fallback": s.fallback, "update-bits": s.update_bits,
            "encoder-cache": int(s.encoder_cache)}


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_dir = Path(str(context.run_config["run-dir"]))
    cfg = Config.model_validate(json.loads((run_dir / SIM_CONFIG).read_text()))
    results = Results(run_dir)
    results.ensure()
    done = results.completed_rounds()
    results.discard_after(done)
    remaining = cfg.sim.rounds - done
    if remaining <= 0:
        results.finish({"rounds": done})
        return
    artifact = read_artifact(run_dir / MODEL)
    weights = results.checkpoint(done) if done else shared_params(artifact.tensors)
    population = pd.read_parquet(run_dir / FLEET_DIR / POPULATION)
    task = load_task(cfg.task)
    evaluator = GlobalEvaluator(DeviceModel(artifact), load_item_texts(run_dir / FLEET_DIR), task.test)
    recorder = RoundRecorder(results, population, evaluator, cfg.sim.deadline_s, done)
    sampler = DeviceSampler(population["availability"].to_numpy(), cfg.sim.cohort, cfg.sim.seed)
    strategy = FleetFedAvg(population, sampler, device_job(cfg), cfg.sim.deadline_s * 1e3, recorder.on_devices,
                           round_offset=done, server_lr=cfg.sim.server_lr, server_momentum=cfg.sim.server_momentum)
    recorder.strategy = strategy
    if done:
        strategy.momentum_vector = results.momentum(done)
    strategy.start(grid=grid, initial_arrays=ArrayRecord({k: Array(v) for k, v in weights.items()}),
                   num_rounds=remaining, train_config=ConfigRecord(), evaluate_fn=recorder.evaluate)
    results.finish({"rounds": results.completed_rounds()})
