"""What a population source gives: one device profile per row, the columns every job reads, checked once."""

from __future__ import annotations

import abc

import numpy as np
import pandas as pd

from edgefleet.errors import DataError

COLUMNS = {"tier": str, "budget_bytes": np.int64, "cpu_factor": np.float64, "down_bps": np.float64,
           "up_bps": np.float64, "availability": np.float64, "dropout": np.float64}


class PopulationSource(abc.ABC):
    """Device profiles for a fleet of `sim.devices` (a row per device id 0..n-1, the columns of COLUMNS)."""

    @abc.abstractmethod
    def profiles(self, sim) -> pd.DataFrame:
        """The fleet's profiles; `sim` is the config's sim section."""


def checked(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The frame's COLUMNS in their types, every value in range; otherwise one DataError line naming `where`."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{where} lacks column(s): {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"{where} has no devices")
    try:
        frame = frame[list(COLUMNS)].astype(COLUMNS)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: {exc}") from None
    checks = {"budget_bytes": frame["budget_bytes"] > 0, "cpu_factor": frame["cpu_factor"] > 0,
              "down_bps": frame["down_bps"] > 0, "up_bps": frame["up_bps"] > 0,
              "availability": frame["availability"].between(0, 1), "dropout": frame["dropout"].between(0, 1)}
    for column, ok in checks.items():
        if not ok.all():
            row = int(np.flatnonzero(~ok.to_numpy())[0])
            raise DataError(f"{where}: {column} out of range in row {row + 1}")
    return frame.reset_index(drop=True)
