"""The recommendation task's part of one device's round: rank candidates for the device's user, tag its items'
genres from their titles, fine-tune both shared heads, keep a personal vector.

The device's local table is [evaluation candidates | its history | training negatives | titles]: the held-out test
item and the protocol's negatives first, then its own items (oldest first, ending with the held-out validation
item), then negatives it samples among items it has not seen, all as item texts; then the titles alone of its own
items, except those held out of genre training for the server's genre evaluation (genre_head.py). Inference ranks
the candidates and tags the titles; training sees the history and negatives (recommendation) and the titles (genre
tagging). Everything here runs inside the device's memory cap (client/memcap.py), numpy only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from edgefleet.tasks.base import DeviceSide, Params
from edgefleet.tasks.movielens import genre_head
from edgefleet.tasks.movielens.device_head import (
    ITEM_RESIDUAL,
    SHARED_KEYS,
    Examples,
    item_table,
    loss_and_grads,
    personal_gradient,
    right_aligned,
    scores,
    user_vectors,
)
from edgefleet.tasks.movielens.fleet import FleetData
from edgefleet.tasks.movielens.genre_head import GENRE_KEYS
from edgefleet.tasks.movielens.memory import DeviceShapes
from edgefleet.tasks.movielens.metrics import expected_metrics, rank_counts
from edgefleet.tasks.optim import SGD, Adam, local_optimizer


@dataclass(frozen=True)
class LocalItems:
    texts: np.ndarray  # indices of the texts the device encodes, in table order (fleet.py: titles follow items)
    n_eval: int
    n_hist: int
    n_neg: int
    genres: np.ndarray  # (titles, genres) bool labels of the titles that end the table

    @property
    def n_items(self) -> int:
        """Rows of the table holding item texts (what the recommender reads); the titles follow them."""
        return self.n_eval + self.n_hist + self.n_neg


class RecommendationDevice(DeviceSide):
    shared_keys = SHARED_KEYS + GENRE_KEYS

    def personal_size(self, shared: Params) -> int:
        return len(shared["head.user_head.bias"])

    def local_data(self, fleet: FleetData, device: int, n_texts: int, negatives: int,
                   rng: np.random.Generator) -> LocalItems:
        user_row = fleet.user_row(int(fleet.device_user[device]))
        own = fleet.device_items(device).astype(np.int64)
        hist = np.append(own, fleet.valid[user_row])
        eval_cand = np.concatenate([[fleet.test[user_row]], fleet.negatives[user_row]]).astype(np.int64)
        # Training negatives: items the device has not seen, and not the evaluation candidates, so that training
        # touches only the second part of the table.
        pool = np.setdiff1d(np.arange(fleet.n_items), np.concatenate([own, [fleet.valid[user_row]], eval_cand]))
        neg = rng.choice(pool, size=min(negatives, len(pool)), replace=False)
        # Genre tagging reads its own items' titles, never those of the server's genre evaluation items.
        tagged = np.setdiff1d(hist, fleet.genre_held_out)
        return LocalItems(np.concatenate([eval_cand, hist, neg, fleet.n_items + tagged]), len(eval_cand), len(hist),
                          len(neg), fleet.genres[tagged])

    def shapes(self, local: LocalItems, tokens: int, batch: int, batch_div: int, personal: bool,
               residual: int = 0, state: int = 2) -> DeviceShapes:
        return DeviceShapes(local.n_eval, local.n_hist, local.n_neg, tokens, batch=batch, batch_div=batch_div,
                            personal=personal, n_titles=len(local.genres), genres=local.genres.shape[1],
                            residual=residual, state=state)

    def reply(self, shared: Params, new: Params, out: dict) -> Params:
        """With the item residual, the device trained the rows of its own items only: the server gets the whole
        table back, those rows new and the others as it sent them (an update of zero)."""
        if ITEM_RESIDUAL not in new:
            return new
        table = shared[ITEM_RESIDUAL].copy()
        table[out["residual_items"]] = new[ITEM_RESIDUAL]
        return {**new, ITEM_RESIDUAL: table}

    def work(self, shared: Params, personal: np.ndarray, encoded: np.ndarray, local: LocalItems, train: bool,
             job, batch_div: int, model: Mapping[str, Any], rng: np.random.Generator) -> tuple[dict, Params | None,
                                                                                      np.ndarray]:
        n_eval, n_hist, n_items = local.n_eval, local.n_hist, local.n_items
        history_len = int(model["history_len"])  # the recommendation head's recency window
        t0 = time.thread_time()
        pooled = encoded.copy()  # the device's own table, allocated under its cap
        items_of_table = local.texts[:n_items]  # the catalogue item of each item row (fleet.py: items come first)
        if ITEM_RESIDUAL in shared:  # sim.item_residual: the rows of this table's items, gathered under the cap
            shared = {**shared, ITEM_RESIDUAL: shared[ITEM_RESIDUAL][items_of_table]}
        # Genre tagging first: its few arrays are gone before the recommender's wider ones exist. The device is not
        # given the deployed model's `genre_threshold` (the server's evaluation uses it), so it measures its titles
        # at the break-even point, which needs none.
        tag_f1 = genre_head.break_even_f1(genre_head.genre_logits(shared, pooled[n_items:]), local.genres)
        items, prior = item_table(shared, pooled[:n_items])
        ctx, mask = right_aligned([np.arange(n_eval, n_eval + n_hist)], history_len)
        user = user_vectors(shared, items, ctx, mask, personal)[0]
        s = scores(shared, user, items[:n_eval], prior[:n_eval])
        top = np.argsort(-s, kind="stable")[:10]  # the user's top-10, what the app would show
        ranked = expected_metrics(*rank_counts(s[:1], s[None, 1:]), k=10)  # the protocol's tie-aware metrics
        out = {"infer_s": time.thread_time() - t0, "hit": float(ranked["hr@10"][0]),
               "ndcg": float(ranked["ndcg@10"][0]), "tag_f1": tag_f1, "top": top, "loss": float("nan"),
               "examples": 0, "train_s": 0.0}
        if not train:
            return out, None, personal
        t1 = time.thread_time()
        del items, prior
        titles = pooled[n_items:]
        pooled = pooled[n_eval:n_items]  # recommendation trains on the device's own items and the negatives only
        if ITEM_RESIDUAL in shared:  # so do the item vectors: the rows of those items
            shared = {**shared, ITEM_RESIDUAL: shared[ITEM_RESIDUAL][n_eval:n_items]}
            out["residual_items"] = items_of_table[n_eval:]
        seq = np.arange(n_hist - 1)  # its train items, without the held-out validation item
        neg = np.arange(n_hist, len(pooled))
        positions = np.arange(1, len(seq))
        if len(positions) == 0:
            return out, None, personal
        ctx, mask = right_aligned([seq[:t] for t in positions], history_len)
        cand = np.concatenate([seq[positions][:, None], np.broadcast_to(neg, (len(positions), len(neg)))], axis=1)
        ex = Examples(ctx, mask, cand, np.ones(cand.shape, dtype=bool))
        new, personal, losses = _train(shared, personal, pooled, ex, (titles, local.genres), job, batch_div, rng)
        out.update(loss=float(np.mean(losses[-max(1, len(losses) // job.epochs):])), examples=int(len(positions)),
                   train_s=time.thread_time() - t1)
        return out, new, personal


def _train(shared: Params, personal: np.ndarray, pooled: np.ndarray, ex: Examples,
           tagged: tuple[np.ndarray, np.ndarray], job, batch_div: int,
           rng: np.random.Generator) -> tuple[Params, np.ndarray, list[float]]:
    """`job.epochs`, each a pass of the job's optimizer on the recommendation head (SGD on the personal vector) over
    the next-item examples, then a pass on the genre head over the `tagged` (pooled titles, labels).

    A smaller batch is gradient accumulation: micro-batches of batch / batch_div, one step per batch, so a device
    short of memory sends the same update as one with room (fewer activations alive at once, same optimization).
    """
    new = {k: v.copy() for k, v in shared.items()}
    personal = personal.copy()
    micro = max(1, job.batch_size // batch_div)
    opt = local_optimizer(job.optimizer, {k: new[k] for k in new if k in SHARED_KEYS or k == ITEM_RESIDUAL}, job.lr)
    genre_opt = local_optimizer(job.optimizer, {k: new[k] for k in GENRE_KEYS}, job.lr)
    losses = []
    for _ in range(job.epochs):
        order = rng.permutation(len(ex.cand))
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
                del grads  # not held through the next call (memory.py counts what is)
                if job.personal_lr > 0:
                    d_personal += personal_gradient(new, pooled, part, personal) * w_part
                losses.append(loss)
            opt.step(new, total)
            personal -= job.personal_lr * d_personal
        _genre_epoch(new, genre_opt, *tagged, job.batch_size, micro, rng)
    return new, personal, losses


def _genre_epoch(new: Params, opt: Adam | SGD, titles: np.ndarray, labels: np.ndarray, batch: int, micro: int,
                 rng: np.random.Generator) -> None:
    """One pass of the job's optimizer on the genre head over the device's titles, in batches accumulated from
    micro-batches."""
    order = rng.permutation(len(labels))
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        total = {k: np.zeros_like(new[k]) for k in GENRE_KEYS}
        for m in range(0, len(rows), micro):
            part = rows[m:m + micro]
            _, grads = genre_head.loss_and_grads(new, titles[part], labels[part])
            for k, g in grads.items():
                total[k] += g * (len(part) / len(rows))
        opt.step(new, total)
