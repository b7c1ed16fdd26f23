"""The centralized oracle of federation: the deployed model's shared heads trained on one machine over every
device-owned user's training data, with the devices' own losses (device_head.py, genre_head.py).

Federation can at best reach what these heads reach when nothing constrains them: all the data in one place, large
batches, as many steps as they need. `edgefleet bench federation` measures every federated run against this
(share of the oracle's gain). The oracle trains exactly what devices train (the encoder stays frozen INT8, as on the
phone) on exactly the data devices hold (each device-owned user's train items; their validation and test items stay
held out), and picks its epoch on the server-owned users' validation items, never on the device users' test items.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from edgefleet.tasks.base import CentralSettings, Params
from edgefleet.tasks.movielens import genre_head
from edgefleet.tasks.movielens.device_head import (
    ITEM_RESIDUAL,
    SHARED_KEYS,
    Examples,
    loss_and_grads,
    right_aligned,
)
from edgefleet.tasks.movielens.genre_head import GENRE_KEYS
from edgefleet.tasks.movielens.split import Split
from edgefleet.tasks.optim import Adam


def next_item_examples(split: Split, users: np.ndarray, history_len: int) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray]:
    """(context, mask, positive) of every next-item example in `users`' train items: what their devices train on,
    pooled (each device trains on the examples of the window it holds)."""
    histories, positives = [], []
    for u in users:
        seq = split.train[int(u)]
        for t in range(1, len(seq)):
            histories.append(seq[max(0, t - history_len):t])
            positives.append(seq[t])
    ctx, mask = right_aligned(histories, history_len)
    return ctx, mask, np.asarray(positives, dtype=np.int64)


def train_central(shared: Params, items: np.ndarray, titles: np.ndarray, split: Split, genres: np.ndarray,
                  genre_held_out: np.ndarray, history_len: int, validate: Callable[[Params], float],
                  s: CentralSettings, log: Callable[[str], None] = lambda _: None) -> tuple[Params, list[dict]]:
    """The shared weights after central training, and one row per epoch (loss, validation score, seconds).

    `items`/`titles`: the frozen encoder's pooled vectors of every item text and title; `validate`: the score that
    picks the epoch (the server-owned users' validation HR@k). Epoch 0 is the deployed model: an oracle that
    cannot beat it on validation is the deployed model itself.
    """
    rng = np.random.default_rng([s.seed, 0x0AC1E])
    ctx, mask, pos = next_item_examples(split, split.device_users, history_len)
    # Genre tagging: the titles of every item a device-owned user trained on, bar the server's evaluation items.
    seen = np.unique(np.concatenate([split.train[int(u)] for u in split.device_users]))
    tagged = np.setdiff1d(seen, genre_held_out)
    p = {k: v.copy() for k, v in shared.items()}
    # The recommendation head's weights, and the item residual when `shared` holds one (device_head.py).
    rec_keys = [k for k in p if k in SHARED_KEYS or k == ITEM_RESIDUAL]
    opt, genre_opt = Adam({k: p[k] for k in rec_keys}, s.lr), Adam({k: p[k] for k in GENRE_KEYS}, s.lr)
    best, best_score = {k: v.copy() for k, v in p.items()}, validate(p)
    log_rows = [{"epoch": 0, "valid": best_score, "loss": None, "seconds": 0.0}]
    n_items = len(items)
    for epoch in range(1, s.epochs + 1):
        order = rng.permutation(len(pos))
        rec_batches = [order[i:i + s.batch_size] for i in range(0, len(order), s.batch_size)]
        tag_order = rng.permutation(tagged)
        tag_batches = [tag_order[i:i + s.batch_size] for i in range(0, len(tag_order), s.batch_size)]
        for check in range(1, s.checks + 1):
            # This part of the epoch: its share of the recommendation batches, then of the genre batches.
            start, losses = time.perf_counter(), []
            for rows in _part(rec_batches, check, s.checks):
                neg = rng.choice(n_items, size=min(s.negatives, n_items), replace=False)
                cand = np.concatenate([pos[rows][:, None], np.broadcast_to(neg, (len(rows), len(neg)))], axis=1)
                valid = np.ones(cand.shape, dtype=bool)
                valid[:, 1:] = cand[:, 1:] != cand[:, :1]  # a sampled negative that is the positive does not count
                loss, grads, _ = loss_and_grads(p, items, Examples(ctx[rows], mask[rows], cand, valid))
                opt.step(p, grads)
                losses.append(loss)
            for part in _part(tag_batches, check, s.checks):
                _, grads = genre_head.loss_and_grads(p, titles[part], genres[part])
                genre_opt.step(p, grads)
            at = epoch - 1 + check / s.checks
            score = validate(p)
            log_rows.append({"epoch": round(at, 4), "valid": score, "loss": float(np.mean(losses)),
                             "seconds": time.perf_counter() - start})
            log(f"oracle epoch {at:.2f}/{s.epochs}: loss {np.mean(losses):.4f}, validation {score:.4f}")
            if score > best_score:
                best, best_score = {k: v.copy() for k, v in p.items()}, score
    return best, log_rows


def _part(batches: list, check: int, checks: int) -> list:
    """The `check`-th of `checks` even parts of an epoch's batches."""
    n = len(batches)
    return batches[(check - 1) * n // checks: check * n // checks]
