"""The `file` population source: your own device profiles (measured traces, another market's tiers) as a CSV or
Parquet file with the columns of simulation/population/base.py, through `sim.population`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from edgefleet.errors import ConfigError, DataError
from simulation.population.base import PopulationSource, checked


def load_population(path: Path) -> pd.DataFrame:
    """Device profiles from a CSV or Parquet file; one row per device."""
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"population file not found: {path}") from None
    except Exception as exc:  # pandas raises many parser types; each is one line for the user
        raise DataError(f"population file {path} cannot be read: {str(exc).splitlines()[0]}") from None
    return checked(frame, f"population file {path}")


class FileSource(PopulationSource):
    """The first `sim.devices` rows of `sim.population`."""

    def profiles(self, sim) -> pd.DataFrame:
        if sim.population is None:
            raise ConfigError("sim.population_source \"file\" needs sim.population (a CSV or Parquet file)")
        frame = load_population(sim.population)
        if len(frame) < sim.devices:
            raise ConfigError(f"population file {sim.population} has {len(frame)} devices; sim.devices is "
                              f"{sim.devices}")
        return frame.iloc[: sim.devices].reset_index(drop=True)
