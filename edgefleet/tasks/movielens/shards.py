"""Which data each emulated device holds.

A device belongs to one device-owned MovieLens user and holds a chronological part of that user's train items
(the validation and test items stay held out for evaluation).

- Fewer devices than users: a seeded sample of users, one device each, holding the user's whole train history.
- More devices than users: every user gets at least one device, and the rest are dealt in proportion to history
  length (largest remainders), so each device holds about the same amount of data. Device j of a user with m
  devices holds an evenly placed window of length max(min_items, ceil(n / m)) of the n train items. When a history
  is too short to fill its devices, the windows overlap: the same interaction is on several of that user's devices
  (a phone and a tablet both saw it). Global metrics are per user, each counted once, on the user's whole history;
  a device's own evaluation uses only what that device holds.
"""

from __future__ import annotations

import math

import numpy as np

from edgefleet.tasks.movielens.fleet import FleetData
from edgefleet.tasks.movielens.split import Split, sample_negatives


def devices_per_user(lengths: np.ndarray, n_devices: int) -> np.ndarray:
    """At least one device per user, the rest in proportion to history length (largest remainder)."""
    counts = np.ones(len(lengths), dtype=np.int64)
    extra = n_devices - len(lengths)
    if extra > 0:
        quota = extra * lengths / lengths.sum()
        counts += np.floor(quota).astype(np.int64)
        left = n_devices - counts.sum()
        order = np.argsort(-(quota - np.floor(quota)), kind="stable")
        counts[order[:left]] += 1
    return counts


def windows(n: int, m: int, min_items: int) -> list[tuple[int, int]]:
    """m evenly placed chronological windows over n items."""
    width = min(n, max(min_items, math.ceil(n / m)))
    starts = np.round(np.linspace(0, n - width, m)).astype(int) if m > 1 else [0]
    return [(int(s), int(s) + width) for s in starts]


def assign_devices(split: Split, n_devices: int, seed: int, num_negatives: int, min_items: int = 4) -> FleetData:
    rng = np.random.default_rng([seed, 0xDA7A])
    users = split.device_users
    if n_devices <= len(users):
        owners = np.sort(rng.choice(users, size=n_devices, replace=False))
        parts = [split.train[int(u)] for u in owners]
    else:
        counts = devices_per_user(np.array([len(split.train[int(u)]) for u in users], dtype=np.float64), n_devices)
        owners_list, parts = [], []
        for u, m in zip(users, counts):
            seq = split.train[int(u)]
            for a, b in windows(len(seq), int(m), min_items):
                owners_list.append(int(u))
                parts.append(seq[a:b])
        # Device ids are shuffled so that id order carries no information about the user.
        perm = rng.permutation(n_devices)
        owners = np.array(owners_list, dtype=np.int64)[perm]
        parts = [parts[i] for i in perm]
    offsets = np.zeros(n_devices + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    return FleetData(
        device_user=np.asarray(owners, dtype=np.int64),
        offsets=offsets,
        items=np.concatenate(parts).astype(np.int32),
        users=users,
        valid=split.valid[users],
        test=split.test[users],
        negatives=sample_negatives(split, users, "test", num_negatives, split.seed).astype(np.int32),
    )
