"""Chronological leave-last-out split, server/device ownership of users, and sampled negatives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgefleet.errors import DataError
from edgefleet.tasks.movielens.data import Catalogue

Stage = Literal["valid", "test"]


@dataclass(frozen=True)
class Split:
    """Per user (dense index): chronological train items, then one validation and one test item.

    Ownership: the server holds the catalogue and every interaction of `server_users` (an opt-in fraction);
    the histories of `device_users` exist only on their devices, and all headline metrics are theirs.
    """

    n_items: int
    train: tuple[np.ndarray, ...]
    valid: np.ndarray
    test: np.ndarray
    server_users: np.ndarray
    device_users: np.ndarray
    seed: int

    @property
    def n_users(self) -> int:
        return len(self.train)

    def history(self, user: int, stage: Stage) -> np.ndarray:
        """Everything before the held-out item: train for validation, train + validation for test."""
        if stage == "valid":
            return self.train[user]
        return np.append(self.train[user], self.valid[user])

    def target(self, user: int, stage: Stage) -> int:
        return int(self.valid[user] if stage == "valid" else self.test[user])

    def seen(self, user: int) -> np.ndarray:
        """All items the user ever interacted with (never sampled as negatives)."""
        return np.concatenate([self.train[user], [self.valid[user], self.test[user]]])


def make_split(catalogue: Catalogue, server_fraction: float, seed: int, min_train_items: int = 1) -> Split:
    """Sort each user's interactions by (timestamp, item), hold out the last two, and assign ownership by seed."""
    frame = catalogue.interactions.sort_values(["user", "timestamp", "item"], kind="stable")
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    bounds = np.flatnonzero(np.diff(users)) + 1
    per_user = np.split(items, bounds)
    if len(per_user) != catalogue.n_users:
        raise DataError("every user must have at least one interaction")
    short = [u for u, seq in enumerate(per_user) if len(seq) < min_train_items + 2]
    if short:
        raise DataError(f"{len(short)} user(s) have fewer than {min_train_items + 2} interactions")
    rng = np.random.default_rng([seed, 0x5E17])
    order = rng.permutation(catalogue.n_users)
    n_server = max(1, int(round(server_fraction * catalogue.n_users)))
    return Split(
        n_items=catalogue.n_items,
        train=tuple(seq[:-2].astype(np.int64) for seq in per_user),
        valid=np.array([seq[-2] for seq in per_user], dtype=np.int64),
        test=np.array([seq[-1] for seq in per_user], dtype=np.int64),
        server_users=np.sort(order[:n_server]),
        device_users=np.sort(order[n_server:]),
        seed=seed,
    )


def sample_negatives(split: Split, users: np.ndarray, stage: Stage, n: int, seed: int) -> np.ndarray:
    """(len(users), n) items each user never interacted with, uniform without replacement.

    Each user's draw depends only on (seed, stage, user), so any subset of users sees the same negatives.
    """
    stage_code = 1 if stage == "valid" else 2
    out = np.empty((len(users), n), dtype=np.int64)
    for row, user in enumerate(users):
        pool = np.setdiff1d(np.arange(split.n_items), split.seen(int(user)), assume_unique=False)
        if len(pool) < n:
            raise DataError(f"user {user} has only {len(pool)} unseen items; cannot sample {n} negatives")
        rng = np.random.default_rng([seed, stage_code, int(user)])
        out[row] = rng.choice(pool, size=n, replace=False)
    return out
