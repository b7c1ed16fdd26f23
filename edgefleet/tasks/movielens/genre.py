"""The second NLU head: genre tagging from the title alone (19 genres, multi-label, micro-F1).

The server owns the catalogue, so genre labels are server data; items are split by seed into the ones the heads
train on and the ones they are scored on (genre_head.py `held_out_items`, on which the federated genre head is scored
too). The teacher's head is a linear probe on its pooled title states; the student's head trains on the same encoder
as its recommendation head (multi-task), from the labels and from the teacher's probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefleet.tasks.movielens.data import Catalogue
from edgefleet.tasks.movielens.genre_head import HELD_OUT_FRACTION, held_out_items


@dataclass(frozen=True)
class GenreTask:
    titles: list[str]
    labels: torch.Tensor  # (n_items, 19) float 0/1
    train_items: torch.Tensor
    test_items: torch.Tensor

    @classmethod
    def build(cls, catalogue: Catalogue, seed: int, test_fraction: float = HELD_OUT_FRACTION) -> "GenreTask":
        test = held_out_items(catalogue.n_items, seed, test_fraction)
        train = np.setdiff1d(np.arange(catalogue.n_items), test)
        return cls(list(catalogue.titles), torch.from_numpy(catalogue.genres.astype(np.float32)),
                   torch.from_numpy(train), torch.from_numpy(test))


def micro_f1(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    pred = probs >= threshold
    gold = labels > 0.5
    tp = (pred & gold).sum().item()
    fp = (pred & ~gold).sum().item()
    fn = (~pred & gold).sum().item()
    return 2 * tp / max(2 * tp + fp + fn, 1)


def best_threshold(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """One global decision threshold, chosen on the training items (rare genres make 0.5 too strict)."""
    grid = torch.linspace(0.05, 0.95, 19)
    return float(max(grid, key=lambda t: micro_f1(probs, labels, float(t))))


def train_probe(pooled: torch.Tensor, task: GenreTask, seed: int, steps: int = 300) -> tuple[nn.Linear, dict]:
    """Teacher genre head: a linear probe on frozen pooled title states, full-batch Adam."""
    torch.manual_seed(seed)
    probe = nn.Linear(pooled.shape[1], task.labels.shape[1])
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    x, y = pooled[task.train_items], task.labels[task.train_items]
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(probe(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe, evaluate_genres(torch.sigmoid(probe(pooled)).detach(), task)


def evaluate_genres(probs: torch.Tensor, task: GenreTask) -> dict:
    """Micro-F1 on the held-out items at the threshold chosen on the training items."""
    threshold = best_threshold(probs[task.train_items], task.labels[task.train_items])
    return {"micro_f1": micro_f1(probs[task.test_items], task.labels[task.test_items], threshold),
            "threshold": threshold, "test_items": int(len(task.test_items)), "genres": int(task.labels.shape[1])}
