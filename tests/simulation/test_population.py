"""Device profiles: drawn reproducibly from the tier table, or read from a file with one-line errors."""

import numpy as np
import pandas as pd
import pytest

from edgefleet.errors import DataError
from simulation.population.base import COLUMNS
from simulation.population.file import load_population
from simulation.population.tiers import TIERS, draw_population


def test_draw_is_reproducible_and_follows_the_shares():
    a, b = draw_population(20_000, seed=3), draw_population(20_000, seed=3)
    assert a.equals(b)
    assert not a.equals(draw_population(20_000, seed=4))
    assert list(a.columns) == list(COLUMNS)
    shares = a["tier"].value_counts(normalize=True)
    for tier, share in zip(TIERS["tier"], TIERS["share"] / TIERS["share"].sum()):
        assert abs(shares[tier] - share) < 0.015, tier
    for tier, low, high in zip(TIERS["tier"], TIERS["budget_mb_low"], TIERS["budget_mb_high"]):
        budget = a.loc[a["tier"] == tier, "budget_bytes"] / 2**20
        assert budget.min() >= low - 1e-6 and budget.max() <= high + 1e-6
    slow, fast = (a.loc[a["tier"] == t, "cpu_factor"].median() for t in ("ram-2gb", "ram-12gb+"))
    assert slow > 3 * fast


def test_population_file_round_trips(tmp_path):
    frame = draw_population(50, seed=0)
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        loaded = load_population(tmp_path / name)
        np.testing.assert_allclose(loaded["cpu_factor"], frame["cpu_factor"])
        assert (loaded["tier"] == frame["tier"]).all()


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns=["cpu_factor"]), "lacks column(s): cpu_factor"),
    (lambda f: f.assign(budget_bytes=0), "budget_bytes out of range in row 1"),
    (lambda f: f.assign(dropout=1.5), "dropout out of range"),
    (lambda f: f.iloc[:0], "has no devices"),
    (lambda f: f.assign(cpu_factor="fast"), "could not convert"),
])
def test_bad_population_files_are_one_line_errors(tmp_path, edit, message):
    path = tmp_path / "p.csv"
    edit(draw_population(5, seed=0)).to_csv(path, index=False)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_population(path)
    assert "\n" not in str(err.value)


def test_missing_population_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_population(tmp_path / "none.csv")


def test_sources_are_chosen_by_name(tmp_path):
    from edgefleet.config import load_config
    from edgefleet.errors import ConfigError
    from simulation.population import population_for, source_name

    drawn = load_config(preset="tiny").sim
    assert source_name(drawn) == "tiers" and population_for(drawn).equals(draw_population(200, seed=0))
    draw_population(300, seed=7).to_parquet(tmp_path / "p.parquet")
    given = load_config(preset="tiny", overrides=[f'sim.population="{tmp_path / "p.parquet"}"'])
    assert source_name(given.sim) == "file"
    pd.testing.assert_frame_equal(population_for(given.sim), draw_population(300, seed=7).iloc[:200])
    with pytest.raises(ConfigError, match="unknown sim.population_source 'trace'.*tiers, file"):
        population_for(load_config(preset="tiny", overrides=['sim.population_source="trace"']).sim)
    with pytest.raises(ConfigError, match="needs sim.population"):
        population_for(load_config(preset="tiny", overrides=['sim.population_source="file"']).sim)
