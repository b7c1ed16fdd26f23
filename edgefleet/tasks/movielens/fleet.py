"""The fleet's data as the server and the devices read it from a run directory.

`fleet/data.npz` holds, for every emulated device, the MovieLens user it belongs to and the items it holds
(chronological); for every device-owned user, the held-out validation and test items and the 99 fixed evaluation
negatives of the task's protocol; and the catalogue's genre labels with the items held out of genre training
(genre_head.py). `fleet/items.json` is the public catalogue text: each item's text (`title (year) genres`), what the
recommender reads, and each item's title alone, what the genre head reads. Devices encode texts by index into the
two lists joined, items first, so the title of item i is text `n_items + i`. `fleet/population.parquet` holds the
device profiles (simulation/population/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefleet.rundir import ITEMS, save_npz


@dataclass(frozen=True)
class FleetData:
    device_user: np.ndarray  # (devices,) user index of each device
    offsets: np.ndarray  # (devices + 1,) into `items`
    items: np.ndarray  # concatenated chronological item ids held by each device
    users: np.ndarray  # sorted device-owned users
    valid: np.ndarray  # (len(users),) validation item of each
    test: np.ndarray  # (len(users),) test item of each
    negatives: np.ndarray  # (len(users), 99) the protocol's fixed test negatives
    # Public catalogue metadata, set by the task's prepare_fleet (shards.py cuts only the devices' data).
    genres: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))  # (n_items, genres) labels
    genre_held_out: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # sorted item ids

    @property
    def n_devices(self) -> int:
        return len(self.device_user)

    @property
    def n_items(self) -> int:
        return len(self.genres)

    def device_items(self, device: int) -> np.ndarray:
        return self.items[self.offsets[device]:self.offsets[device + 1]]

    def user_row(self, user: int) -> int:
        return int(np.searchsorted(self.users, user))

    def save(self, path: Path) -> None:
        save_npz(path, {k: getattr(self, k) for k in self.__dataclass_fields__})

    def of_device(self, device: int) -> "FleetData":
        """The fleet of this one device: its items, its user's held-out items and negatives, the public catalogue."""
        row = self.user_row(int(self.device_user[device]))
        own = self.device_items(device)
        return FleetData(device_user=self.device_user[device:device + 1],
                         offsets=np.array([0, len(own)], dtype=self.offsets.dtype), items=own.copy(),
                         users=self.users[row:row + 1], valid=self.valid[row:row + 1], test=self.test[row:row + 1],
                         negatives=self.negatives[row:row + 1], genres=self.genres,
                         genre_held_out=self.genre_held_out)

    @classmethod
    def load(cls, path: Path) -> "FleetData":
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})


def save_texts(fleet_dir: Path, item_texts: list[str], titles: list[str]) -> None:
    (fleet_dir / ITEMS).write_text(json.dumps({"items": item_texts, "titles": titles}))


def load_texts(fleet_dir: Path) -> list[str]:
    """Every text a device may encode: the item texts, then the titles."""
    texts = json.loads((fleet_dir / ITEMS).read_text())
    return texts["items"] + texts["titles"]
