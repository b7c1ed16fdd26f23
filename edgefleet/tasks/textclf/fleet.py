"""Which rows of a text-classification training set each emulated device holds, and the fleet file workers read.

Devices hold non-IID shards, as phones do:
- `user`: the rows of one user (the data's `user` or `device` column) per device; with more devices than users a
  user's rows are split over several devices, with fewer a seeded sample of users is deployed.
- `dirichlet`: each device's class mix is drawn from Dirichlet(alpha p), p the classes' shares (Hsu et al., 2019;
  small alpha: each device sees few classes; alpha -> inf: IID), and it draws its equal share of rows by that mix.
- `shard`: rows sorted by label, cut into 2 shards per device, shards dealt at random (McMahan et al., 2017).
- `iid`: a seeded shuffle cut into equal parts.
Every device holds at least `min_rows` rows. The server's test rows are never on a device.

Why not Flower Datasets' partitioners (flwr-datasets 0.6.1, measured here): its DirichletPartitioner deals each
class over the devices and retries until every device has `min_partition_size` rows; at alpha 0.1 it gave up after
its 10 tries for 10,000 rows over 1,000 devices and for 2,000 rows over 100 (min 2 rows, self-balancing on or off),
where the bench runs alpha 0.1 at 1,000 devices. Its ShardPartitioner cuts equal shards and leaves the remainder
out (48 of 1,000 rows at 40 devices, even with `keep_incomplete_shard`). Its IidPartitioner selects each partition
from an HF dataset: 24 s for 10,000 devices, against microseconds for the split below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefleet.errors import ConfigError
from edgefleet.rundir import save_npz


@dataclass(frozen=True)
class TextFleet:
    offsets: np.ndarray  # (devices + 1,) into `rows`
    rows: np.ndarray  # concatenated training-row indices held by each device
    train_y: np.ndarray  # (n_train,) class of every training row
    test_rows: np.ndarray  # indices of the test texts in the fleet's text list (after the training texts)
    test_y: np.ndarray
    n_classes: int

    @property
    def n_devices(self) -> int:
        return len(self.offsets) - 1

    def device_rows(self, device: int) -> np.ndarray:
        return self.rows[self.offsets[device]:self.offsets[device + 1]]

    def save(self, path: Path) -> None:
        save_npz(path, {k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__})

    def of_device(self, device: int, texts: list[str]) -> tuple["TextFleet", list[str]]:
        """The fleet of this one device and its texts: its own training rows, renumbered from 0; no test row."""
        rows = self.device_rows(device)
        return (TextFleet(offsets=np.array([0, len(rows)], dtype=np.int64), rows=np.arange(len(rows), dtype=np.int64),
                          train_y=self.train_y[rows], test_rows=np.zeros(0, dtype=np.int64),
                          test_y=np.zeros(0, dtype=self.test_y.dtype), n_classes=self.n_classes),
                [texts[int(r)] for r in rows])

    @classmethod
    def load(cls, path: Path) -> "TextFleet":
        with np.load(path) as z:
            return cls(**{k: (int(z[k]) if k == "n_classes" else z[k]) for k in cls.__dataclass_fields__})


def partition(y: np.ndarray, users: np.ndarray | None, devices: int, how: str, alpha: float, seed: int,
              min_rows: int = 2) -> list[np.ndarray]:
    """Row indices of each of `devices` devices."""
    rng = np.random.default_rng([seed, 0x7E47])
    n = len(y)
    if devices * min_rows > n:
        raise ConfigError(f"{devices} devices of at least {min_rows} rows need {devices * min_rows} training rows; "
                          f"the data has {n}: use fewer sim.devices")
    if how == "user":
        if users is None:
            raise ConfigError("sim.partitioner \"user\" needs a user (or device) column in the training data")
        return _by_user(users, devices, rng)
    if how == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), devices)]
    if how == "shard":
        order = np.argsort(y, kind="stable")
        shards = np.array_split(order, 2 * devices)
        dealt = rng.permutation(2 * devices)
        return [np.sort(np.concatenate([shards[dealt[2 * d]], shards[dealt[2 * d + 1]]])) for d in range(devices)]
    if how == "dirichlet":
        return _dirichlet(y, devices, alpha, rng)
    raise ConfigError(f"unknown sim.partitioner {how!r} (choose from user, dirichlet, shard, iid)")


def _dirichlet(y: np.ndarray, devices: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Hsu et al. (2019): device d's class mix q_d ~ Dir(alpha p), p the classes' shares in the data; each device
    draws its equal share of rows from the class pools by q_d, renormalised over the classes still left."""
    classes, counts = np.unique(y, return_counts=True)
    pools = [list(rng.permutation(np.flatnonzero(y == c))) for c in classes]
    left = counts.astype(np.float64)
    sizes = np.full(devices, len(y) // devices)
    sizes[: len(y) % devices] += 1
    parts = []
    for d in range(devices):
        q = rng.dirichlet(alpha * counts / counts.sum())
        take = []
        for _ in range(sizes[d]):
            w = q * (left > 0)
            w = w / w.sum() if w.sum() > 0 else (left > 0) / (left > 0).sum()
            c = rng.choice(len(classes), p=w)
            take.append(pools[c].pop())
            left[c] -= 1
        parts.append(np.sort(np.array(take, dtype=np.int64)))
    return parts


def _by_user(users: np.ndarray, devices: int, rng: np.random.Generator) -> list[np.ndarray]:
    names, owner = np.unique(users, return_inverse=True)
    rows_of = [np.flatnonzero(owner == u) for u in range(len(names))]
    if devices <= len(names):
        chosen = np.sort(rng.choice(len(names), size=devices, replace=False))
        return [rows_of[u] for u in chosen]
    # More devices than users: each user's rows over devices in proportion to how many rows the user has.
    sizes = np.array([len(r) for r in rows_of], dtype=np.float64)
    counts = np.ones(len(names), dtype=np.int64)
    quota = (devices - len(names)) * sizes / sizes.sum()
    counts += np.floor(quota).astype(np.int64)
    counts[np.argsort(-(quota - np.floor(quota)), kind="stable")[:devices - counts.sum()]] += 1
    counts = np.minimum(counts, sizes.astype(np.int64))
    parts = [chunk for rows, m in zip(rows_of, counts) for chunk in np.array_split(rows, m)]
    if len(parts) < devices:
        raise ConfigError(f"the data's users hold {len(parts)} rows' worth of devices; sim.devices is {devices}")
    return [parts[i] for i in rng.permutation(len(parts))]
