"""The ClientApp: one phone's round of on-device recommendation work (client/device.py) behind Flower's Message API.

The ServerApp tells each node which emulated device it is this round and sends that device's profile (the config
record). The same code runs on the simulation engine and on Flower's Deployment Engine, where a SuperNode either
reads the run directory as a worker does or holds one device's own data (`sim.device_data` "own": the `hello`
query brings it the model); either gives the checkpoints of the simulation bit for bit. A device that runs out of
memory or drops out still replies, with its outcome and no arrays.
"""

from __future__ import annotations

import functools
import json
import os
import time
import traceback
from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from threadpoolctl import ThreadpoolController

from client.audit import audit_mod
from client.device import DeviceJob, DeviceReport, run_device
from client.storage import store_deployment
from client.worker import worker
from edgefleet.protocol import BUNDLE_ARTIFACT, BUNDLE_CONFIG, BUNDLE_DEPLOYMENT, BUNDLE_MODEL, DEVICE
from edgefleet.rundir import FLEET_DIR, SHARD

app = ClientApp()


@functools.lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    """The process's BLAS and OpenMP pools, found once: looking them up costs milliseconds per call."""
    return ThreadpoolController()


def _run_dir(context: Context) -> str:
    """Where the worker reads the model and fleet and keeps the devices' storage: the device's own directory when
    its SuperNode holds one device's data (`device-dir` in its node config), `data-dir` on a cluster with a shared
    directory (simulation/cluster.py), else the run directory."""
    if "device-dir" in context.node_config:
        return str(context.node_config["device-dir"])
    return str(context.run_config.get("data-dir") or context.run_config["run-dir"])


@app.query()
def hello(msg: Message, context: Context) -> Message:
    """The server's first message to a device that holds its own data (server/placement.py `OwnDevices`): store the
    model and config it carries, and say which device this is."""
    device_dir = Path(str(context.node_config["device-dir"]))
    artifact = msg.content[BUNDLE_MODEL][BUNDLE_ARTIFACT].numpy()
    if store_deployment(device_dir, artifact.tobytes(), str(msg.content[BUNDLE_DEPLOYMENT][BUNDLE_CONFIG])):
        worker.cache_clear()  # a worker loaded before holds the model this replaced
    shard = json.loads((device_dir / FLEET_DIR / SHARD).read_text())
    return Message(RecordDict({DEVICE: ConfigRecord({DEVICE: int(shard["device"])})}), reply_to=msg)


def reply_content(report: DeviceReport) -> RecordDict:
    metrics = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in report.metrics().items()
               if isinstance(v, (int, float))}
    metrics["num-examples"] = report.examples if report.update is not None else 0
    content = RecordDict({"metrics": MetricRecord(metrics),
                          "outcome": ConfigRecord({"outcome": report.outcome, "plan": report.plan,
                                                   "workload": report.workload, "error": report.error,
                                                   "node": report.node})})
    if report.update is not None:
        content["arrays"] = ArrayRecord({k: Array(v) for k, v in report.update.items()})
    return content


@app.train(mods=[audit_mod])
def train(msg: Message, context: Context) -> Message:
    started = time.perf_counter()
    job = DeviceJob.from_config(dict(msg.content["config"]))
    shared = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    try:
        with _threadpools().limit(limits=1):
            report = run_device(worker(_run_dir(context)), job, shared)
    except Exception as exc:  # a device that raises is an outcome of the round, not a failure of the run
        report = DeviceReport("error", error=f"{type(exc).__name__}: {exc}"[:500])
        traceback.print_exc()
    if "supernode" in context.node_config:  # on the Deployment Engine (simulation/launch.py): which SuperNode ran it
        report.node = f"{report.node}/supernode-{context.node_config['supernode']}"
    content = reply_content(report)
    # The testbed's own host timings, apart from the device's report: where the call's wall time went.
    content["wall"] = ConfigRecord({**report.wall, "worker": os.getpid(), "call": time.perf_counter() - started})
    return Message(content=content, reply_to=msg)
