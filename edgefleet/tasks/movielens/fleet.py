"""The fleet's data as the server and the devices read it from a run directory.

`fleet/data.npz` holds, for every emulated device, the MovieLens user it belongs to and the items it holds
(chronological); for every device-owned user, the held-out validation and test items and the 99 fixed evaluation
negatives of the task's protocol. `fleet/items.json` is the public catalogue text. `fleet/population.parquet` holds
the device profiles (simulation/population/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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

    @property
    def n_devices(self) -> int:
        return len(self.device_user)

    def device_items(self, device: int) -> np.ndarray:
        return self.items[self.offsets[device]:self.offsets[device + 1]]

    def user_row(self, user: int) -> int:
        return int(np.searchsorted(self.users, user))

    def save(self, path: Path) -> None:
        save_npz(path, {k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: Path) -> "FleetData":
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})


def load_item_texts(fleet_dir: Path) -> list[str]:
    return json.loads((fleet_dir / ITEMS).read_text())
