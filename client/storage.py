"""A device's own storage: what stays on the phone between rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefleet.rundir import save_npz


class PersonalState:
    """The device's personal vector in its own storage. The previous value is kept so that a round that is redone
    after an interruption starts from what the device had before it."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, dim

    def load(self, server_round: int) -> np.ndarray:
        if not self.path.exists():
            return np.zeros(self.dim, dtype=np.float32)
        with np.load(self.path) as z:
            if int(z["round"]) < server_round:
                return z["state"].copy()
            return z["prev_state"].copy() if int(z["prev_round"]) < server_round else np.zeros(self.dim, np.float32)

    def save(self, state: np.ndarray, server_round: int) -> None:
        prev, prev_round = np.zeros(self.dim, np.float32), -1
        if self.path.exists():
            with np.load(self.path) as z:
                if int(z["round"]) < server_round:
                    prev, prev_round = z["state"].copy(), int(z["round"])
                else:
                    prev, prev_round = z["prev_state"].copy(), int(z["prev_round"])
        save_npz(self.path, {"state": state.astype(np.float32), "round": server_round, "prev_state": prev,
                             "prev_round": prev_round})
