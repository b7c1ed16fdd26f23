"""Where a fleet's device profiles come from, by name (`sim.population_source`).

`tiers` draws them from the built-in phone tiers (simulation/population/tiers.py); `file` reads your own CSV or
Parquet (`sim.population`). A new source, e.g. a device trace, is one file with a `PopulationSource` subclass
(simulation/population/base.py) plus one line in SOURCES.
"""

from __future__ import annotations

import importlib

import pandas as pd

from edgefleet.errors import ConfigError

SOURCES = {
    "tiers": "simulation.population.tiers:TierSource",
    "file": "simulation.population.file:FileSource",
}


def source_name(sim) -> str:
    """The configured source; unset, a profile file given in `sim.population` is read, otherwise tiers are drawn."""
    return sim.population_source or ("file" if sim.population is not None else "tiers")


def population_for(sim) -> pd.DataFrame:
    name = source_name(sim)
    if name not in SOURCES:
        raise ConfigError(f"unknown sim.population_source {name!r} (choose from {', '.join(SOURCES)})")
    module, cls = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), cls)().profiles(sim)
