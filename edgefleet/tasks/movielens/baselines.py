"""Classical baselines trained on server-owned interactions (what the server may use), scored for any user from
their history. `users` widens their training to other users' train items: `edgefleet bench federation` trains them
on every user's, the centralized reference that federation is measured beside."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from edgefleet.config import BaselineConfig
from edgefleet.tasks.movielens.split import Split


def interaction_matrix(split: Split, users: np.ndarray | None = None) -> np.ndarray:
    """(users, items) binary matrix of `users`' train items (default: the server-owned users)."""
    users = split.server_users if users is None else users
    x = np.zeros((len(users), split.n_items), dtype=np.float32)
    for row, user in enumerate(users):
        x[row, split.train[int(user)]] = 1.0
    return x


class Popularity:
    """Score = how many of the training users interacted with the item."""

    def __init__(self, split: Split, users: np.ndarray | None = None):
        self.counts = interaction_matrix(split, users).sum(axis=0)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), len(self.counts)))


class ItemKNN:
    """Item-based CF: cosine similarity of item columns with shrinkage, summed over the user's history."""

    def __init__(self, split: Split, shrink: float, users: np.ndarray | None = None):
        x = interaction_matrix(split, users)
        co = x.T @ x
        norms = np.sqrt(np.diag(co))
        self.sim = co / (np.outer(norms, norms) + shrink + 1e-12)
        np.fill_diagonal(self.sim, 0.0)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self.sim[h].sum(axis=0) for h in histories])


class BPRMF:
    """BPR matrix factorisation on the training users; any user is folded in from their history.

    Fold-in keeps item factors and biases fixed and fits only the new user's vector with the same BPR loss,
    which is how a device could personalise a shared item model without sending its history anywhere.
    """

    def __init__(self, split: Split, cfg: BaselineConfig, users: np.ndarray | None = None):
        self.cfg = cfg
        trained = split.server_users if users is None else users
        gen = torch.Generator().manual_seed(cfg.seed)
        n_users, n_items, d = len(trained), split.n_items, cfg.bpr_dim
        users = np.concatenate([np.full(len(split.train[int(u)]), r) for r, u in enumerate(trained)])
        items = np.concatenate([split.train[int(u)] for u in trained])
        u_t, i_t = torch.from_numpy(users).long(), torch.from_numpy(items).long()
        self.p = torch.nn.Parameter(0.1 * torch.randn(n_users, d, generator=gen))
        self.q = torch.nn.Parameter(0.1 * torch.randn(n_items, d, generator=gen))
        self.b = torch.nn.Parameter(torch.zeros(n_items))
        opt = torch.optim.Adam([self.p, self.q, self.b], lr=cfg.bpr_lr)
        for _ in range(cfg.bpr_epochs):
            order = torch.randperm(len(u_t), generator=gen)
            for start in range(0, len(order), 1024):
                idx = order[start:start + 1024]
                u, i = u_t[idx], i_t[idx]
                j = torch.randint(n_items, (len(idx),), generator=gen)
                loss = self._bpr(self.p[u], i, j)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.q.requires_grad_(False)
        self.b.requires_grad_(False)

    def _bpr(self, pu: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        x = (pu * (self.q[i] - self.q[j])).sum(-1) + self.b[i] - self.b[j]
        reg = pu.pow(2).sum(-1) + self.q[i].pow(2).sum(-1) + self.q[j].pow(2).sum(-1)
        return (-torch.nn.functional.logsigmoid(x) + self.cfg.bpr_reg * reg).mean()

    def fold_in(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.cfg.seed + 1)
        width = max(len(h) for h in histories)
        items = torch.zeros(len(histories), width, dtype=torch.long)
        mask = torch.zeros(len(histories), width)
        for r, h in enumerate(histories):
            items[r, :len(h)] = torch.from_numpy(h)
            mask[r, :len(h)] = 1.0
        p = torch.nn.Parameter(torch.zeros(len(histories), self.q.shape[1]))
        opt = torch.optim.Adam([p], lr=self.cfg.bpr_lr * 5)
        for _ in range(self.cfg.bpr_foldin_steps):
            neg = torch.randint(self.q.shape[0], items.shape, generator=gen)
            x = torch.einsum("ud,uhd->uh", p, self.q[items] - self.q[neg]) + self.b[items] - self.b[neg]
            loss = ((-torch.nn.functional.logsigmoid(x) * mask).sum() / mask.sum()
                    + self.cfg.bpr_reg * p.pow(2).sum(-1).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return p.detach()

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        p = self.fold_in(histories)
        return (p @ self.q.T + self.b).numpy()
