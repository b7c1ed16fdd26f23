"""The task as every job uses it: catalogue, split, server-side validation set and device-side test set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefleet.config import TaskConfig
from edgefleet.tasks.movielens.data import Catalogue, load_movielens
from edgefleet.tasks.movielens.protocol import EvalSet
from edgefleet.tasks.movielens.split import Split, make_split


@dataclass(frozen=True)
class TaskBundle:
    catalogue: Catalogue
    split: Split
    valid: EvalSet  # server-owned users, second-last items (model selection)
    test: EvalSet  # device-owned users, last items (every headline figure)


def eval_users(device_users: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """All device-owned users, or a seeded subset of `cap` of them (tiny preset)."""
    if cap is None or cap >= len(device_users):
        return device_users
    rng = np.random.default_rng([seed, 0xE7A1])
    return np.sort(rng.choice(device_users, size=cap, replace=False))


def load_task(task: TaskConfig) -> TaskBundle:
    catalogue = load_movielens()
    split = make_split(catalogue, task.server_fraction, task.seed, task.min_train_items)
    valid = EvalSet.build(split, split.server_users, "valid", task.num_negatives, task.seed, task.k)
    users = eval_users(split.device_users, task.max_eval_users, task.seed)
    test = EvalSet.build(split, users, "test", task.num_negatives, task.seed, task.k)
    return TaskBundle(catalogue, split, valid, test)


def every_user_valid(data: TaskBundle) -> EvalSet:
    """Every user's validation item, the server-owned users' and the device-owned users' (held out of the devices'
    training as of the server's): what picks the checkpoints of federation's oracles. The server-owned users alone
    (about a tenth) move HR@10 by about 0.01 a user, too coarse to choose among checkpoints a few users apart."""
    split, v = data.split, data.valid
    return EvalSet.build(split, np.concatenate([split.server_users, split.device_users]), "valid",
                         v.negatives.shape[1], v.seed, v.k)
