"""The yardstick of a federated classifier (`bench federation --data F`): its centralized oracle and classical
baselines, trained on every row the fleet's devices hold.

The oracle trains exactly what devices train (the linear head over the frozen INT8 encoder, with the devices' loss,
device.py `loss_and_grads`) on all their rows in one place, with Adam over shuffled mini-batches, and keeps the
check that scores best on the validation rows, never on a test row. The baselines read the raw text: the majority
class, and multinomial naive Bayes over word counts (with add-one smoothing), the classical text classifier; written
here in numpy for the same reason as the device's head: a dozen lines, and no new dependency for the testbed.
"""

from __future__ import annotations

import re
import time
from typing import Callable

import numpy as np

from edgefleet.tasks.base import CentralSettings, Params
from edgefleet.tasks.optim import Adam
from edgefleet.tasks.textclf.device import HEAD_KEYS, loss_and_grads
from edgefleet.tasks.textclf.evaluate import macro_f1


def train_head(shared: Params, x: np.ndarray, y: np.ndarray, validate: Callable[[Params], float],
               s: CentralSettings, log: Callable[[str], None] = lambda _: None) -> tuple[Params, list[dict]]:
    """The head after central training on the frozen encoder's vectors `x` of every held row, and one row per
    check (epoch, loss, validation score, seconds). Check 0 is the deployed head: an oracle that cannot beat it on
    validation is the deployed head itself."""
    rng = np.random.default_rng([s.seed, 0x0AC1E])
    p = {k: shared[k].astype(np.float32).copy() for k in HEAD_KEYS}
    opt = Adam(p, s.lr)
    best, best_score = {k: v.copy() for k, v in p.items()}, validate(p)
    rows = [{"epoch": 0, "valid": best_score, "loss": None, "seconds": 0.0}]
    for epoch in range(1, s.epochs + 1):
        order = rng.permutation(len(y))
        batches = [order[i:i + s.batch_size] for i in range(0, len(order), s.batch_size)]
        for check in range(1, s.checks + 1):
            start, losses = time.perf_counter(), []
            for batch in batches[(check - 1) * len(batches) // s.checks: check * len(batches) // s.checks]:
                loss, grads, _ = loss_and_grads(p, x[batch], y[batch])
                opt.step(p, grads)
                losses.append(loss)
            score = validate(p)
            at = epoch - 1 + check / s.checks
            rows.append({"epoch": at, "valid": score, "loss": float(np.mean(losses)) if losses else None,
                         "seconds": time.perf_counter() - start})
            log(f"oracle epoch {at:.2f}/{s.epochs}: validation {score:.4f}")
            if score > best_score:
                best, best_score = {k: v.copy() for k, v in p.items()}, score
    return best, rows


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _scores(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    return {"accuracy": float(np.mean(pred == y)), "macro_f1": macro_f1(y, pred, n_classes)}


def majority(train_y: np.ndarray, test_y: np.ndarray, n_classes: int) -> dict[str, float]:
    """Every test row gets the class most frequent in training."""
    top = int(np.bincount(train_y, minlength=n_classes).argmax())
    return _scores(test_y, np.full(len(test_y), top), n_classes)


def naive_bayes(train_texts: list[str], train_y: np.ndarray, test_texts: list[str], test_y: np.ndarray,
                n_classes: int) -> dict[str, float]:
    """Multinomial naive Bayes over the training texts' word counts, add-one smoothed; words unseen in training
    are ignored."""
    vocab: dict[str, int] = {}
    for text in train_texts:
        for w in _words(text):
            vocab.setdefault(w, len(vocab))
    counts = np.ones((n_classes, len(vocab)))  # add-one
    for text, c in zip(train_texts, train_y):
        for w in _words(text):
            counts[c, vocab[w]] += 1
    log_word = np.log(counts / counts.sum(axis=1, keepdims=True))
    log_prior = np.log(np.maximum(np.bincount(train_y, minlength=n_classes), 1) / len(train_y))
    pred = []
    for text in test_texts:
        ids = [vocab[w] for w in _words(text) if w in vocab]
        pred.append(int(np.argmax(log_prior + log_word[:, ids].sum(axis=1))))
    return _scores(test_y, np.asarray(pred), n_classes)
