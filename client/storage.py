"""A device's own storage: what stays on the phone between rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefleet.rundir import MODEL, SIM_CONFIG, atomic_write, save_npz


def store_deployment(device_dir: Path, model: bytes, sim_config: str) -> bool:
    """Keep what the server's first message brought (sim.device_data "own"): the model and the run's config, each
    written whole, and only when it differs from what the device holds. True when something changed."""
    changed = False
    for name, data in ((MODEL, model), (SIM_CONFIG, sim_config.encode())):
        path = device_dir / name
        if not path.exists() or path.read_bytes() != data:
            atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
            changed = True
    return changed


class PersonalState:
    """The device's personal vector in its own storage. The previous value is kept so that a round that is redone
    after an interruption starts from what the device had before it."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, dim
        self._held: dict | None = None  # the file as `load` read it: `save` writes after it without reading again

    def _stored(self) -> dict | None:
        if self._held is None and self.path.exists():
            with np.load(self.path) as z:
                self._held = {k: z[k].copy() for k in ("state", "round", "prev_state", "prev_round")}
        return self._held

    def load(self, server_round: int) -> np.ndarray:
        z = self._stored()
        if z is None:
            return np.zeros(self.dim, dtype=np.float32)
        if int(z["round"]) < server_round:
            return z["state"].copy()
        return z["prev_state"].copy() if int(z["prev_round"]) < server_round else np.zeros(self.dim, np.float32)

    def save(self, state: np.ndarray, server_round: int) -> None:
        prev, prev_round = np.zeros(self.dim, np.float32), -1
        z = self._stored()
        if z is not None:
            if int(z["round"]) < server_round:
                prev, prev_round = z["state"].copy(), int(z["round"])
            else:
                prev, prev_round = z["prev_state"].copy(), int(z["prev_round"])
        self._held = {"state": state.astype(np.float32), "round": server_round, "prev_state": prev,
                      "prev_round": prev_round}
        save_npz(self.path, self._held)
