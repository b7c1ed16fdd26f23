"""One emulated phone's round, whatever the task: dropout, the memory cap, the fallback ladder or the adaptive
variants, the device's clock, its personal state and the update it sends.

The deployed artifact's encoder is frozen INT8 on the device (client/worker.py loads it once per worker process
and encodes each text once); the task's device side (edgefleet/tasks/base.py `DeviceSide`) does the rest of the
work on the encoded texts: inference, and training of the shared weights plus a personal part that stays in the
device's own storage (client/storage.py), across rounds and restarts.

Everything a device does runs under its memory budget (client/memcap.py, in a forked child); once a device of this
worker has completed work of the same shapes, its measured peak stands for later ones (`sim.reuse_peaks`). If it does
not fit,
the fallback policy walks down a ladder (smaller batch, shorter texts, inference only) before the device gives up
with `oom`. Compute time is the CPU time of the work (immune to the other workers on the host) times the device's
CPU factor.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from client.storage import PersonalState
from client.worker import Deployment, Worker
from compression.runtime.memory_model import predict, work_bytes
from compression.runtime.update_codec import encode_update
from edgefleet.rundir import STATE_DIR
from edgefleet.tasks.base import Params
from edgefleet.tasks.optim import state_copies


@dataclass(frozen=True)
class DeviceJob:
    """What the server asks of one device in one round (sent in the message's config record): the device's profile
    and round, then the local work of `sim` (server/app.py `device_job`). No field has a default: they all live in
    the config schema."""

    device: int
    server_round: int
    seed: int
    budget_bytes: int
    cpu_factor: float
    down_bps: float
    up_bps: float
    dropout: float
    epochs: int
    batch_size: int
    negatives: int
    optimizer: str
    lr: float
    personal_lr: float
    fallback: str
    update_bits: int
    encoder_cache: int
    reuse_peaks: int
    item_residual: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DeviceJob":
        kinds = {f.name: f.type for f in fields(cls)}
        cast = {"int": int, "float": float, "str": str}
        return cls(**{k.replace("-", "_"): cast[kinds[k.replace("-", "_")]](v) for k, v in config.items()
                      if k.replace("-", "_") in kinds})


@dataclass(frozen=True)
class Plan:
    """One rung of the fallback ladder."""

    name: str
    train: bool
    batch_div: int
    max_tokens: int | None


LADDER = (Plan("full", True, 1, None), Plan("small-batch", True, 4, None), Plan("short-text", True, 4, 12),
          Plan("inference-only", False, 1, 12))
# Where a device's host wall time goes (DeviceReport.wall): encoding its texts, its work traced for memory, the
# untraced rerun that times it, and forking and answering around them.
WALL_PARTS = ("encode", "traced", "rerun", "fork")
# Inference at the model's own text length: what the adaptive policy runs when no variant can train in the budget.
INFERENCE = Plan("inference", False, 1, None)


def training_plan(job: DeviceJob, micro_batch: int | None) -> Plan:
    """Training as a deployment asks: its micro-batch is gradient accumulation over the job's batch (the same
    update as one batch, fewer activations alive), like the ladder's small-batch rung."""
    div = max(1, job.batch_size // micro_batch) if micro_batch else 1
    return LADDER[0] if div == 1 else Plan("micro-batch", True, div, None)


@functools.lru_cache(maxsize=1)
def this_node() -> str:
    """The machine that emulates devices in this process: the host's name, and on Ray the start of the Ray node's
    id (two nodes of one cluster may share a host). Ray is not imported here: it is loaded already in a Ray worker,
    and absent on Flower's Deployment Engine."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
    return socket.gethostname()


@dataclass
class DeviceReport:
    outcome: str
    plan: str = ""
    peak_bytes: int = 0
    allowance_bytes: int = 0
    host_infer_ms: float = 0.0
    host_train_ms: float = 0.0
    infer_ms: float = 0.0
    train_ms: float = 0.0
    comm_ms: float = 0.0
    virtual_ms: float = 0.0
    bytes_down: int = 0
    bytes_up: int = 0
    examples: int = 0
    loss: float = float("nan")
    measured: dict[str, float] = field(default_factory=dict)  # the task's device metrics (Task.device_metrics)
    attempts: int = 0
    variant: int = 0  # which deployment ran (client/worker.py Worker.deployments; 0 is the deployed model)
    predicted_bytes: int = 0  # the memory model's bytes (model + work) for the last rung tried
    peak_reused: bool = False  # peak_bytes is the worker's known peak for work of these shapes (client/memcap.py)
    workload: str = ""  # "training" or "inference": what the last rung tried asked of the device
    error: str = ""
    node: str = field(default_factory=this_node)  # where it ran (a Ray node), a fact of the testbed, not the device
    update: dict[str, np.ndarray] | None = field(default=None, repr=False)
    # Host wall seconds of the round's parts, for the testbed's own breakdown (`edgefleet bench sim`); not reported.
    wall: dict[str, float] = field(default_factory=dict, repr=False)

    def clock(self, job: DeviceJob) -> None:
        """The virtual clock: compute on the device's CPU, then the bytes over its links."""
        self.comm_ms = 1e3 * (8 * self.bytes_down / job.down_bps + 8 * self.bytes_up / job.up_bps)
        self.virtual_ms = self.infer_ms + self.train_ms + self.comm_ms

    def metrics(self) -> dict[str, Any]:
        """Flat scalars for the reply: the report's fields, the task's device metrics as columns of their own."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("update", "measured", "wall")}
        return {**flat, **self.measured}


def _warm_blas() -> None:
    """OpenBLAS maps its per-thread work buffer on first use and aborts the process if that fails: map it here,
    outside any cap, once in each thread that will do the work (the buffer stays mapped)."""
    if getattr(_blas_warm, "done", False):
        return
    _blas_warm.done = True
    for dtype in (np.float32, np.float64):
        a = np.ones((384, 384), dtype=dtype)  # large enough to skip the small-matrix kernels
        (a @ a) @ a[0]


_blas_warm = threading.local()


def shapes_of(w: Worker, job: DeviceJob, dep: Deployment, plan: Plan, local: Any):
    """The device's dimensions for the memory model; texts are taken at the longest length the plan allows."""
    tokens = min(dep.dims.max_len, plan.max_tokens or dep.dims.max_len)
    return w.task.device.shapes(local, tokens, job.batch_size, plan.batch_div, job.personal_lr > 0,
                                residual=dep.dims.dim if job.item_residual else 0, state=state_copies(job.optimizer))


def choose(w: Worker, job: DeviceJob, local: Any) -> list[tuple[int, Plan]]:
    """Adaptive fit: the attempts, as (deployment, plan), of a device that picks by the memory model.

    It starts training on the richest deployment whose prediction, plus the deployment's margin, fits the budget;
    if the real cap says otherwise it steps down the leaner ones, then infers on the richest whose inference fits.
    A device where nothing is predicted to fit only tries inference on the leanest: the real cap decides.
    """
    n = len(w.deployments)

    def fits(i: int, plan: Plan) -> bool:
        dep = w.deployments[i]
        need = predict(dep.dims, shapes_of(w, job, dep, plan, local), plan.train)
        return need * (1 + w.fit_margin) <= job.budget_bytes

    trains = [training_plan(job, dep.batch_size) for dep in w.deployments]
    train = next((i for i in range(n) if fits(i, trains[i])), None)
    infer = next((i for i in range(n) if fits(i, INFERENCE)), n - 1)
    attempts = [] if train is None else [(i, trains[i]) for i in range(train, n)]
    return attempts + [(i, INFERENCE) for i in range(infer, n)]


def run_device(w: Worker, job: DeviceJob, shared: Params, plans: tuple[Plan, ...] | None = None,
               timed: bool = True, timeout_s: float = 20.0) -> DeviceReport:
    """The device's whole round; every way it can end is an outcome, never an exception. `plans` replaces the
    fallback ladder, and `timed=False` skips the untraced rerun that times the work (the stress sweep, which
    measures memory only, one workload at a time, every one under the cap)."""
    rng = np.random.default_rng([job.seed, job.server_round, job.device, 0xDE71CE])
    report = DeviceReport("ok", bytes_down=sum(v.nbytes for v in shared.values()))
    if rng.random() < job.dropout:
        report.outcome = "dropout"
        return report
    device = w.task.device
    local = device.local_data(w.fleet, w.row(job.device), len(w.texts), job.negatives, rng)
    state = PersonalState(w.run_dir / STATE_DIR / f"{job.device}.npz", device.personal_size(shared))
    personal = state.load(job.server_round)
    if plans is None and len(w.deployments) > 1:
        attempts = choose(w, job, local)
    else:
        plans = plans or (LADDER if job.fallback == "ladder" else LADDER[:1])
        attempts = [(0, plan) for plan in plans]
    _warm_blas()
    wall = report.wall = dict.fromkeys(WALL_PARTS, 0.0)
    result = None
    for n, (i, plan) in enumerate(attempts):
        dep = w.deployments[i]
        report.attempts += 1
        report.variant, report.workload = i, "training" if plan.train else "inference"
        report.allowance_bytes = job.budget_bytes - dep.model_bytes
        shapes = shapes_of(w, job, dep, plan, local)
        report.predicted_bytes = predict(dep.dims, shapes, plan.train)
        if report.allowance_bytes <= 0:  # the model itself does not fit
            if all(k == i for k, _ in attempts[n:]):
                break
            continue
        started = time.perf_counter()
        encoded, encode_s, transient = dep.encodings.table(local.texts, plan.max_tokens,
                                                           reuse=bool(job.encoder_cache))
        wall["encode"] += time.perf_counter() - started
        seed = [job.seed, job.server_round, job.device, 0x7EA1]
        # What decides the work's allocations: the deployment, the plan, the task's shapes, the epochs, and the
        # inputs' shapes and dtypes (weights in float64 double the work's memory).
        key = (i, plan, shapes, job.epochs,
               *((a.shape, a.dtype.str) for a in (encoded, personal, *shared.values())),
               tuple(shared)) if job.reuse_peaks and timed else None
        result, cap = w.peaks.run(key, lambda: device.work(shared, personal, encoded, local, plan.train, job,
                                                           plan.batch_div, dep.model.config,
                                                           np.random.default_rng(seed)),
                                  report.allowance_bytes, timed_rerun=timed, timeout_s=timeout_s,
                                  expected_bytes=work_bytes(dep.dims, shapes, plan.train))
        report.peak_reused = cap.reused
        for part, seconds in (("traced", cap.traced_s), ("rerun", cap.rerun_s), ("fork", cap.overhead_s)):
            wall[part] += seconds
        # Encoding one text happens while the table fills: at most the whole table plus one encode's transient.
        report.peak_bytes = max(cap.peak_bytes, encoded.nbytes + transient)
        if cap.error and not cap.oom:
            report.outcome, report.error = "error", cap.error[:500]
            return report
        if result is not None and report.peak_bytes <= report.allowance_bytes:
            report.plan = plan.name
            break
        result = None
    if result is None:
        report.outcome = "oom"
        if report.allowance_bytes <= 0:
            report.error = "the model alone exceeds the budget"
        else:
            report.error = cap.error or f"peak {report.peak_bytes:,} B (with one encode) over the allowance " \
                                        f"{report.allowance_bytes:,} B"
        return report
    out, new, personal = result
    report.host_infer_ms, report.host_train_ms = (encode_s + out["infer_s"]) * 1e3, out["train_s"] * 1e3
    report.infer_ms = report.host_infer_ms * job.cpu_factor
    report.train_ms = report.host_train_ms * job.cpu_factor
    report.loss, report.examples = out["loss"], out["examples"]
    report.measured = {m.key: float(out[m.key]) for m in w.task.device_metrics}
    if new is not None and not all(np.isfinite(v).all() for v in new.values()):
        report.outcome, report.error = "error", "local training diverged (non-finite weights)"
        return report
    if new is not None:
        new = device.reply(shared, new, out)
        report.update = encode_update(new, shared, job.update_bits)
        report.bytes_up = sum(v.nbytes for v in report.update.values())
        state.save(personal, job.server_round)
    report.clock(job)
    return report
