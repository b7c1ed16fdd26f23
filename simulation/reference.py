"""The plain Flower reference for `edgefleet bench sim`: the same device work, written as Flower's examples do.

One SuperNode per device (its `partition-id` is the device id), FedAvg sampling `cohort` of them per round, and a
ClientApp that loads what it needs on every call (the artifact, the fleet data, its profile), as the quickstart
apps load their partition. Only the device work itself (client/device.py run_device) is shared with EdgeFleet,
so the benchmark compares the ways of running it, not two different workloads.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from threadpoolctl import threadpool_limits

from client.app import reply_content
from client.device import DeviceJob, run_device
from client.worker import Worker
from compression.runtime.artifact import read_artifact
from compression.runtime.update_codec import decode_update
from edgefleet.config import Config
from edgefleet.rundir import FLEET_DIR, MODEL, POPULATION, SIM_CONFIG
from edgefleet.tasks import federated_task
from server.app import device_job

TIMES = "reference_rounds.jsonl"
REPLIES = "reference_replies.jsonl"
clientapp = ClientApp()
serverapp = ServerApp()


@clientapp.train()
def train(msg: Message, context: Context) -> Message:
    run_dir = Path(str(context.run_config["run-dir"]))
    device = int(context.node_config["partition-id"])
    profile = pd.read_parquet(run_dir / FLEET_DIR / POPULATION).iloc[device]
    config = {**dict(msg.content["config"]), "device": device,
              **{k.replace("_", "-"): profile[k].item() for k in ("budget_bytes", "cpu_factor", "down_bps",
                                                                   "up_bps", "dropout")}}
    shared = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    with threadpool_limits(limits=1):
        report = run_device(Worker(run_dir), DeviceJob.from_config(config), shared)
    content = reply_content(report)
    if report.update is None:  # FedAvg needs every reply to carry the same arrays
        content["arrays"] = ArrayRecord({k: Array(v) for k, v in shared.items()})
    else:
        content["arrays"] = ArrayRecord({k: Array(v) for k, v in decode_update(report.update, shared).items()})
    return Message(content=content, reply_to=msg)


@serverapp.main()
def main(grid: Grid, context: Context) -> None:
    run_dir = Path(str(context.run_config["run-dir"]))
    cfg = Config.model_validate(json.loads((run_dir / SIM_CONFIG).read_text()))
    times = run_dir / TIMES

    def stamp(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        with times.open("a") as f:
            f.write(json.dumps({"round": server_round, "t": time.time()}) + "\n")
        return MetricRecord({"round": server_round})

    def count_replies(replies: list[RecordDict], weighted_by_key: str) -> MetricRecord:
        outcomes = Counter(str(r["outcome"]["outcome"]) for r in replies)
        with (run_dir / REPLIES).open("a") as f:
            f.write(json.dumps({"replies": len(replies), "outcomes": outcomes}) + "\n")
        return aggregate_metricrecords(replies, weighted_by_key)

    s = cfg.sim
    strategy = FedAvg(fraction_train=s.cohort / s.devices, fraction_evaluate=0.0, min_train_nodes=s.cohort,
                      min_available_nodes=s.devices, train_metrics_aggr_fn=count_replies)
    task = federated_task(cfg.task.name)
    weights = task.trained_params(read_artifact(run_dir / MODEL).tensors, cfg.sim,
                                  task.load_fleet(run_dir / FLEET_DIR)[0])
    strategy.start(grid=grid, initial_arrays=ArrayRecord({k: Array(v) for k, v in weights.items()}),
                   num_rounds=s.rounds, train_config=ConfigRecord(device_job(cfg)), evaluate_fn=stamp)
