"""The genre-tagging head in numpy with its gradient: what a device tags its items' titles with, and trains.

The head is linear on the frozen encoder's pooled title vector: logits = pooled W^T + b, one per genre, and a genre
is tagged when sigmoid(logit) reaches the threshold. It is trained as compression trains it (multi-label, mean
binary cross-entropy over items and genres) and scored as compression scores it: micro-F1 on the held-out items at
the threshold chosen on the others (edgefleet/tasks/movielens/genre.py holds the torch side). The backward pass is
written out by hand because the device runtime is numpy only; tests/tasks/movielens/test_genre_head.py checks it
against torch autograd.

Genre labels are public catalogue metadata, so a fixed, seeded fifth of the catalogue is held out of every genre
head's training: the same items compression holds out (genre.py `GenreTask`), on which the server scores the
federated head each round. Devices skip those items when they train.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

GENRE_KEYS = ("genre.weight", "genre.bias")
HELD_OUT_FRACTION = 0.2
THRESHOLDS = np.linspace(0.05, 0.95, 19, dtype=np.float32)  # the grid compression picks from (genre.py)

Params = dict[str, np.ndarray]


def held_out_items(n_items: int, seed: int, fraction: float = HELD_OUT_FRACTION) -> np.ndarray:
    """The sorted items no genre head trains on (the genre evaluation set), a seeded `fraction` of the catalogue."""
    order = np.random.default_rng([seed, 0x6E4E]).permutation(n_items)
    return np.sort(order[:int(round(fraction * n_items))])


def genre_params(tensors: Mapping[str, Any]) -> Params:
    """The head's float32 weights as deployed (the artifact's tensors, anything with `dequantize()`)."""
    return {k: np.ascontiguousarray(tensors[k].dequantize(), dtype=np.float32) for k in GENRE_KEYS}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow for very negative logits, unlike 1 / (1 + exp(-x))


def genre_logits(p: Params, pooled: np.ndarray) -> np.ndarray:
    """(N, genres) logits for pooled title vectors (N, hidden)."""
    return pooled @ p["genre.weight"].T + p["genre.bias"]


def probabilities(p: Params, pooled: np.ndarray) -> np.ndarray:
    """(N, genres) probability of each genre for each title."""
    return _sigmoid(genre_logits(p, pooled))


def micro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """Micro-F1 over every (title, genre) pair; 0 when nothing is predicted and nothing is gold."""
    tp = int(np.count_nonzero(pred & gold))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gold)) - tp
    return 2 * tp / max(2 * tp + fp + fn, 1)


def best_threshold(probs: np.ndarray, gold: np.ndarray) -> float:
    """The grid's threshold with the best micro-F1 (the lowest of equals), as compression chooses it."""
    return float(THRESHOLDS[int(np.argmax([micro_f1(probs >= t, gold) for t in THRESHOLDS]))])


def break_even_f1(logits: np.ndarray, gold: np.ndarray) -> float:
    """Micro-F1 at the precision-recall break-even point: tag the k highest-scoring (title, genre) pairs, k the
    number of true pairs, so that precision = recall = F1. It needs no threshold, which a device is not given
    (device.py); NaN when no pair is true."""
    k = int(np.count_nonzero(gold))
    if k == 0:
        return float("nan")
    top = np.argpartition(-logits.ravel(), k - 1)[:k]
    return float(np.count_nonzero(gold.ravel()[top])) / k


def loss_and_grads(p: Params, pooled: np.ndarray, labels: np.ndarray) -> tuple[float, Params]:
    """Mean binary cross-entropy with logits over titles and genres, and its gradient for the head's weights."""
    z = genre_logits(p, pooled)
    y = labels.astype(np.float32)
    # max(z, 0) - z y + log(1 + exp(-|z|)): torch's binary_cross_entropy_with_logits, stable for any z.
    loss = float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
    dz = (_sigmoid(z) - y) / z.size
    return loss, {"genre.weight": dz.T @ pooled, "genre.bias": dz.sum(0)}
