"""The text classifier's part of one device's round (numpy only, inside the device's memory cap).

The frozen encoder's pooled vectors (the worker encodes each text once) feed the shared linear head; a personal bias
over the classes, added to the logits, stays in the device's storage. The device keeps its last `holdout` rows out of
training and measures its own accuracy on them with its personal bias: what the user of that phone would see. The
shared head trains without the personal bias (how the global model is used), the bias on top of it, as the
recommender's personal vector does (edgefleet/tasks/movielens/device.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgefleet.tasks.base import DeviceSide, Params
from edgefleet.tasks.optim import local_optimizer
from edgefleet.tasks.textclf.fleet import TextFleet

HEAD_KEYS = ("classifier.weight", "classifier.bias")
F32, I64 = 4, 8


@dataclass(frozen=True)
class LocalRows:
    texts: np.ndarray  # indices of the device's texts (its training rows, then its held-out rows)
    y: np.ndarray  # their classes
    n_train: int


@dataclass(frozen=True)
class ClassifierShapes:
    """What the memory of a classifier device's work depends on: N texts, C classes, batches of b."""

    n_local: int
    tokens: int
    classes: int
    batch: int
    batch_div: int
    state: int = 2  # the optimizer's state in copies of the head (Adam's moments: 2; SGD: 0)

    def work_bytes(self, m: Any, train: bool) -> int:
        n, h, c = self.n_local, m.hidden, self.classes
        infer = F32 * (n * h + 2 * n * c)  # the table copy, logits and their softmax
        if not train:
            return infer
        p = c * h + c
        b = max(1, self.batch // self.batch_div)
        # the new head and the optimizer's state, the step's summed gradient and one micro-batch's, the micro-batch's
        # logits, probabilities and their gradient, and the shuffled order
        return F32 * (n * h + (3 + self.state) * p + 3 * b * c + 2 * b * h) + I64 * n


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loss_and_grads(p: Params, x: np.ndarray, y: np.ndarray,
                   personal: np.ndarray | None = None) -> tuple[float, Params, np.ndarray | None]:
    """Mean cross-entropy of softmax(x W^T + b (+ personal)), its gradient for W and b, and for the personal bias."""
    logits = x @ p["classifier.weight"].T + p["classifier.bias"]
    if personal is not None:
        logits = logits + personal
    prob = softmax(logits)
    rows = np.arange(len(y))
    loss = float(-np.mean(np.log(np.maximum(prob[rows, y], 1e-30))))
    g = prob
    g[rows, y] -= 1.0
    g /= len(y)
    grads = {"classifier.weight": (g.T @ x).astype(np.float32), "classifier.bias": g.sum(0).astype(np.float32)}
    return loss, grads, None if personal is None else g.sum(0).astype(np.float32)


class ClassifierDevice(DeviceSide):
    shared_keys = HEAD_KEYS
    holdout = 0.2  # of a device's rows, its most recent, kept out of training for its own accuracy

    def personal_size(self, shared: Params) -> int:
        return len(shared["classifier.bias"])

    def local_data(self, fleet: TextFleet, device: int, n_texts: int, negatives: int,
                   rng: np.random.Generator) -> LocalRows:
        rows = fleet.device_rows(device)
        held = max(1, math.ceil(self.holdout * len(rows))) if len(rows) > 1 else 0
        return LocalRows(rows.astype(np.int64), fleet.train_y[rows], len(rows) - held)

    def shapes(self, local: LocalRows, tokens: int, batch: int, batch_div: int, personal: bool,
               residual: int = 0, state: int = 2) -> ClassifierShapes:
        return ClassifierShapes(len(local.texts), tokens, int(local.y.max()) + 1, batch, batch_div, state)

    def work(self, shared: Params, personal: np.ndarray, encoded: np.ndarray, local: LocalRows, train: bool,
             job, batch_div: int, model: Any, rng: np.random.Generator) -> tuple[dict, Params | None,
                                                                             np.ndarray]:
        t0 = time.thread_time()
        x = encoded.copy()  # the device's own table, allocated under its cap
        held_x, held_y = x[local.n_train:], local.y[local.n_train:]
        logits = held_x @ shared["classifier.weight"].T + shared["classifier.bias"] + personal
        correct = float(np.mean(np.argmax(logits, axis=1) == held_y)) if len(held_y) else float("nan")
        out = {"infer_s": time.thread_time() - t0, "correct": correct, "loss": float("nan"), "examples": 0,
               "train_s": 0.0}
        if not train or local.n_train == 0:
            return out, None, personal
        t1 = time.thread_time()
        x, y = x[:local.n_train], local.y[:local.n_train]
        new = {k: v.copy() for k, v in shared.items()}
        personal = personal.copy()
        micro = max(1, job.batch_size // batch_div)  # gradient accumulation: the same update in less memory
        opt = local_optimizer(job.optimizer, new, job.lr)
        losses = []
        for _ in range(job.epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(order), job.batch_size):
                batch = order[start:start + job.batch_size]
                total, d_personal = None, np.zeros_like(personal)
                for m in range(0, len(batch), micro):
                    part = batch[m:m + micro]
                    w_part = len(part) / len(batch)
                    loss, grads, _ = loss_and_grads(new, x[part], y[part])
                    total = {k: g * w_part for k, g in grads.items()} if total is None else \
                        {k: total[k] + g * w_part for k, g in grads.items()}
                    if job.personal_lr > 0:
                        d_personal += loss_and_grads(new, x[part], y[part], personal)[2] * w_part
                    losses.append(loss)
                opt.step(new, total)
                personal -= job.personal_lr * d_personal
        out.update(loss=float(np.mean(losses[-max(1, len(losses) // job.epochs):])), examples=int(len(y)),
                   train_s=time.thread_time() - t1)
        return out, new, personal
