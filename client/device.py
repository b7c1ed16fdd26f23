"""One emulated phone's round: rank candidates for its user, fine-tune the shared head, keep a personal vector.

The deployed artifact's encoder is frozen INT8 on the device (client/worker.py loads it once per worker process);
only the recommendation head (edgefleet/tasks/movielens/device_head.py) is trained and shared. The personal vector,
added to the user
representation, is trained on top of it and stays in the device's own storage (client/storage.py), across rounds
and restarts.

Everything a device does runs under its memory budget (client/memcap.py, in a forked child). If it does not fit,
the fallback policy walks down a ladder (smaller batch, shorter texts, inference only) before the device gives up
with `oom`. Compute time is the CPU time of the work (immune to the other workers on the host) times the device's
CPU factor.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from client.memcap import run_capped
from client.optim import Adam
from client.storage import PersonalState
from client.worker import Deployment, Worker
from compression.runtime.memory_model import DeviceShapes, predict
from compression.runtime.update_codec import encode_update
from edgefleet.rundir import STATE_DIR
from edgefleet.tasks.movielens.device_head import (
    Examples,
    Params,
    item_table,
    loss_and_grads,
    right_aligned,
    scores,
    user_vectors,
)
from edgefleet.tasks.movielens.metrics import expected_metrics, rank_counts


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
    lr: float
    personal_lr: float
    fallback: str
    update_bits: int
    encoder_cache: int

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
# Inference at the model's own text length: what the adaptive policy runs when no variant can train in the budget.
INFERENCE = Plan("inference", False, 1, None)


def training_plan(job: DeviceJob, micro_batch: int | None) -> Plan:
    """Training as a deployment asks: its micro-batch is gradient accumulation over the job's batch (the same
    update as one batch, fewer activations alive), like the ladder's small-batch rung."""
    div = max(1, job.batch_size // micro_batch) if micro_batch else 1
    return LADDER[0] if div == 1 else Plan("micro-batch", True, div, None)


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
    hit: float = float("nan")
    ndcg: float = float("nan")
    attempts: int = 0
    variant: int = 0  # which deployment ran (client/worker.py Worker.deployments; 0 is the deployed model)
    predicted_bytes: int = 0  # the memory model's bytes (model + work) for the last rung tried
    workload: str = ""  # "training" or "inference": what the last rung tried asked of the device
    error: str = ""
    update: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def clock(self, job: DeviceJob) -> None:
        """The virtual clock: compute on the device's CPU, then the bytes over its links."""
        self.comm_ms = 1e3 * (8 * self.bytes_down / job.down_bps + 8 * self.bytes_up / job.up_bps)
        self.virtual_ms = self.infer_ms + self.train_ms + self.comm_ms

    def metrics(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "update"}


def _work(w: Worker, job: DeviceJob, shared: Params, personal: np.ndarray, plan: Plan, encoded: np.ndarray,
          n_eval: int, n_hist: int, rng: np.random.Generator) -> tuple[dict, Params | None, np.ndarray]:
    """The capped part. `encoded` is the local item table: `n_eval` evaluation candidates (the held-out test item
    first), then the history (oldest first, ending with the held-out validation item), then negatives."""
    t0 = time.thread_time()
    pooled = encoded.copy()  # the device's own table, allocated under its cap
    items, prior = item_table(shared, pooled)
    ctx, mask = right_aligned([np.arange(n_eval, n_eval + n_hist)], w.history_len)
    user = user_vectors(shared, items, ctx, mask, personal)[0]
    s = scores(shared, user, items[:n_eval], prior[:n_eval])
    top = np.argsort(-s, kind="stable")[:10]  # the user's top-10, what the app would show
    ranked = expected_metrics(*rank_counts(s[:1], s[None, 1:]), k=10)  # the protocol's tie-aware metrics
    hit, ndcg = float(ranked["hr@10"][0]), float(ranked["ndcg@10"][0])
    out = {"infer_s": time.thread_time() - t0, "hit": hit, "ndcg": ndcg, "top": top, "loss": float("nan"),
           "examples": 0, "train_s": 0.0}
    if not plan.train:
        return out, None, personal
    t1 = time.thread_time()
    del items, prior
    pooled = pooled[n_eval:]  # training sees the device's own items and the negatives only
    seq = np.arange(n_hist - 1)  # its train items, without the held-out validation item
    neg = np.arange(n_hist, len(pooled))
    positions = np.arange(1, len(seq))
    if len(positions) == 0:
        return out, None, personal
    ctx, mask = right_aligned([seq[:t] for t in positions], w.history_len)
    cand = np.concatenate([seq[positions][:, None], np.broadcast_to(neg, (len(positions), len(neg)))], axis=1)
    ex = Examples(ctx, mask, cand, np.ones(cand.shape, dtype=bool))
    new = {k: v.copy() for k, v in shared.items()}
    personal = personal.copy()
    # A smaller batch is gradient accumulation: micro-batches of batch / batch_div, one step per batch, so a device
    # short of memory sends the same update as one with room (fewer activations alive at once, same optimization).
    micro = max(1, job.batch_size // plan.batch_div)
    opt = Adam(new, job.lr)
    losses = []
    for _ in range(job.epochs):
        order = rng.permutation(len(positions))
        for start in range(0, len(order), job.batch_size):
            rows = order[start:start + job.batch_size]
            total, d_personal = None, np.zeros_like(personal)
            for m in range(0, len(rows), micro):
                part = ex.take(rows[m:m + micro])
                # The shared head learns what serves a user without a personal vector (how the global model is
                # used); the personal vector fits what is left, on top of it. Trained jointly, the shared head
                # leans on personal vectors that other users do not have, and the global model gets worse.
                loss, grads, _ = loss_and_grads(new, pooled, part)
                w_part = len(part.cand) / len(rows)
                total = {k: g * w_part for k, g in grads.items()} if total is None else \
                    {k: total[k] + g * w_part for k, g in grads.items()}
                if job.personal_lr > 0:
                    d_personal += loss_and_grads(new, pooled, part, personal)[2] * w_part
                losses.append(loss)
            opt.step(new, total)
            personal -= job.personal_lr * d_personal
    out.update(loss=float(np.mean(losses[-max(1, len(losses) // job.epochs):])), examples=int(len(positions)),
               train_s=time.thread_time() - t1)
    return out, new, personal


def _warm_blas() -> None:
    """OpenBLAS maps its per-thread work buffer on first use and aborts the process if that fails: map it here,
    outside any cap, in the thread that will do the work."""
    for dtype in (np.float32, np.float64):
        a = np.ones((384, 384), dtype=dtype)  # large enough to skip the small-matrix kernels
        (a @ a) @ a[0]


def shapes_of(job: DeviceJob, dep: Deployment, plan: Plan, n_eval: int, n_hist: int, n_neg: int) -> DeviceShapes:
    """The device's dimensions for the memory model; texts are taken at the longest length the plan allows."""
    tokens = min(dep.dims.max_len, plan.max_tokens or dep.dims.max_len)
    return DeviceShapes(n_eval, n_hist, n_neg, tokens, batch=job.batch_size, batch_div=plan.batch_div,
                        personal=job.personal_lr > 0)


def choose(w: Worker, job: DeviceJob, n_eval: int, n_hist: int, n_neg: int) -> list[tuple[int, Plan]]:
    """Adaptive fit: the attempts, as (deployment, plan), of a device that picks by the memory model.

    It starts training on the richest deployment whose prediction, plus the deployment's margin, fits the budget;
    if the real cap says otherwise it steps down the leaner ones, then infers on the richest whose inference fits.
    A device where nothing is predicted to fit only tries inference on the leanest: the real cap decides.
    """
    n = len(w.deployments)

    def fits(i: int, plan: Plan) -> bool:
        dep = w.deployments[i]
        need = predict(dep.dims, shapes_of(job, dep, plan, n_eval, n_hist, n_neg), plan.train)
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
    measures memory only, one workload at a time)."""
    rng = np.random.default_rng([job.seed, job.server_round, job.device, 0xDE71CE])
    report = DeviceReport("ok", bytes_down=sum(v.nbytes for v in shared.values()))
    if rng.random() < job.dropout:
        report.outcome = "dropout"
        return report
    f = w.fleet
    user_row = f.user_row(int(f.device_user[job.device]))
    own = f.device_items(job.device).astype(np.int64)
    hist = np.append(own, f.valid[user_row])
    eval_cand = np.concatenate([[f.test[user_row]], f.negatives[user_row]]).astype(np.int64)
    # Training negatives: items the device has not seen, and not the evaluation candidates, so that the local
    # table is [evaluation candidates | history and negatives] and training touches only its second part.
    pool = np.setdiff1d(np.arange(len(w.texts)), np.concatenate([own, [f.valid[user_row]], eval_cand]))
    neg = rng.choice(pool, size=min(job.negatives, len(pool)), replace=False)
    local = np.concatenate([eval_cand, hist, neg])
    state = PersonalState(w.run_dir / STATE_DIR / f"{job.device}.npz", len(shared["head.user_head.bias"]))
    personal = state.load(job.server_round)
    if plans is None and len(w.deployments) > 1:
        attempts = choose(w, job, len(eval_cand), len(hist), len(neg))
    else:
        plans = plans or (LADDER if job.fallback == "ladder" else LADDER[:1])
        attempts = [(0, plan) for plan in plans]
    _warm_blas()
    result = None
    for n, (i, plan) in enumerate(attempts):
        dep = w.deployments[i]
        report.attempts += 1
        report.variant, report.workload = i, "training" if plan.train else "inference"
        report.allowance_bytes = job.budget_bytes - dep.model_bytes
        report.predicted_bytes = predict(dep.dims, shapes_of(job, dep, plan, len(eval_cand), len(hist), len(neg)),
                                         plan.train)
        if report.allowance_bytes <= 0:  # the model itself does not fit
            if all(k == i for k, _ in attempts[n:]):
                break
            continue
        encoded, encode_s, transient = dep.encodings.table(local, plan.max_tokens, reuse=bool(job.encoder_cache))
        seed = [job.seed, job.server_round, job.device, 0x7EA1]
        result, cap = run_capped(lambda: _work(w, job, shared, personal, plan, encoded, len(eval_cand), len(hist),
                                               np.random.default_rng(seed)),
                                 report.allowance_bytes, timed_rerun=timed, timeout_s=timeout_s)
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
    report.hit, report.ndcg, report.loss, report.examples = out["hit"], out["ndcg"], out["loss"], out["examples"]
    if new is not None and not all(np.isfinite(v).all() for v in new.values()):
        report.outcome, report.error = "error", "local training diverged (non-finite weights)"
        return report
    if new is not None:
        report.update = encode_update(new, shared, job.update_bits)
        report.bytes_up = sum(v.nbytes for v in report.update.values())
        state.save(personal, job.server_round)
    report.clock(job)
    return report
