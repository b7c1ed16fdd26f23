"""The two-tower recommendation head every text encoder here shares, and the server-side task sampler.

Item vector = normalize(W_item . pooled text), plus a scalar prior read from the same vector. User vector =
normalize(W_user . recency-weighted mean of the user's history item vectors): a device builds its user from item
vectors alone, and the head's weights are what parameter integration carries from the teacher into a student.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefleet.tasks.movielens.split import Split


class RecHead(nn.Module):
    def __init__(self, in_dim: int, dim: int, history_len: int, temperature: float):
        super().__init__()
        self.history_len = history_len
        self.item_head = nn.Linear(in_dim, dim)
        self.prior = nn.Linear(dim, 1)
        self.recency = nn.Parameter(torch.zeros(history_len))
        self.user_head = nn.Linear(dim, dim)
        with torch.no_grad():
            self.user_head.weight.copy_(torch.eye(dim))
            self.user_head.bias.zero_()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def item_vectors(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.item_head(pooled)
        return F.normalize(emb, dim=-1), self.prior(emb).squeeze(-1)

    def user_vectors(self, hist: torch.Tensor, hist_mask: torch.Tensor) -> torch.Tensor:
        """hist: (B, H, dim) item vectors, right-aligned (most recent last); hist_mask: (B, H) bool."""
        h = hist.shape[1]
        logits = self.recency[-h:].expand(hist.shape[0], h).masked_fill(~hist_mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)
        pooled = torch.einsum("bh,bhd->bd", weights, hist)
        return F.normalize(self.user_head(pooled), dim=-1)

    def logits(self, users: torch.Tensor, items: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * users @ items.T + prior


def pad_histories(histories: Sequence[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned (B, length) item indices of each history's most recent items, and the validity mask."""
    ids = torch.zeros(len(histories), length, dtype=torch.long)
    mask = torch.zeros(len(histories), length, dtype=torch.bool)
    for r, h in enumerate(histories):
        recent = h[-length:]
        if len(recent):
            ids[r, length - len(recent):] = torch.from_numpy(np.asarray(recent, dtype=np.int64))
            mask[r, length - len(recent):] = True
    return ids, mask


class RecScorer:
    """Scores the whole catalogue for users from their histories, given every item's vector and prior."""

    def __init__(self, head: RecHead, items: torch.Tensor, prior: torch.Tensor):
        self.head, self.items, self.prior = head, items, prior

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        ids, mask = pad_histories(histories, self.head.history_len)
        users = self.head.user_vectors(self.items[ids], mask)
        return self.head.logits(users, self.items, self.prior).numpy()


@dataclass(frozen=True)
class Batch:
    """Predict `targets` from histories; candidates = targets + uniform negatives; `known` masks false negatives."""

    targets: torch.Tensor
    hist_ids: torch.Tensor
    hist_mask: torch.Tensor
    cand: torch.Tensor
    label: torch.Tensor
    known: torch.Tensor


class TaskSampler:
    """Server-owned training examples: every (user, position) of a server user's train sequence."""

    def __init__(self, split: Split, history_len: int, batch_size: int, negatives: int, seed: int):
        self.split, self.history_len, self.batch_size, self.negatives = split, history_len, batch_size, negatives
        self.rng = np.random.default_rng([seed, 0x7EAC])
        users, positions = [], []
        for u in split.server_users:
            n = len(split.train[int(u)])
            users.extend([int(u)] * (n - 1))
            positions.extend(range(1, n))
        self.users = np.array(users, dtype=np.int64)
        self.positions = np.array(positions, dtype=np.int64)
        self.seen = {int(u): torch.from_numpy(split.seen(int(u))) for u in split.server_users}

    def steps(self, cap: int | None = None) -> int:
        full = math.ceil(len(self.users) / self.batch_size)
        return min(full, cap) if cap else full

    def epoch(self, steps: int) -> Iterator[Batch]:
        order = self.rng.permutation(len(self.users))
        for step in range(steps):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield self._batch(self.users[idx], self.positions[idx])

    def _batch(self, users: np.ndarray, pos: np.ndarray) -> Batch:
        train = self.split.train
        targets = torch.tensor([train[u][p] for u, p in zip(users, pos)])
        hist_ids, hist_mask = pad_histories([train[u][:p] for u, p in zip(users, pos)], self.history_len)
        negs = torch.from_numpy(self.rng.integers(self.split.n_items, size=self.negatives))
        cand, inverse = torch.unique(torch.cat([targets, negs]), return_inverse=True)
        label = inverse[: len(targets)]
        known = torch.stack([torch.isin(cand, self.seen[int(u)]) for u in users])
        known[torch.arange(len(users)), label] = False
        return Batch(targets, hist_ids, hist_mask, cand, label, known)


def task_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Sampled softmax over the batch's candidates; items the user did interact with are not negatives."""
    return F.cross_entropy(logits.masked_fill(batch.known, float("-inf")), batch.label)
