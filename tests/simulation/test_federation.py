"""The yardstick's arithmetic: share of the oracle's gain and rounds to 90% of a run's final gain."""

import pytest

from edgefleet.config import load_config
from edgefleet.errors import ConfigError
from simulation.federation import RUNS, rounds_to, run_bench_federation, share_of_gain


def test_share_of_the_oracles_gain():
    assert share_of_gain(0.45, 0.40, 0.50) == pytest.approx(0.5)
    assert share_of_gain(0.50, 0.40, 0.50) == pytest.approx(1.0)
    assert share_of_gain(0.38, 0.40, 0.50) == pytest.approx(-0.2)  # a run below the start loses ground
    assert share_of_gain(0.45, 0.40, 0.40) is None  # an oracle that gains nothing measures nothing


def test_rounds_to_90_percent_of_the_final_gain():
    assert rounds_to([0.41, 0.45, 0.49, 0.50], 0.40) == 3  # 0.09 of the final 0.10 first at round 3
    assert rounds_to([0.50, 0.50], 0.40) == 1
    assert rounds_to([0.41, 0.39], 0.40) is None  # no final gain


def test_unknown_runs_are_one_line_before_anything_is_written(tmp_path):
    cfg = load_config(None, "tiny", ['federation.runs=["fedavg", "fedsgd"]'])
    with pytest.raises(ConfigError, match="unknown federation run"):
        run_bench_federation(cfg, tmp_path / "b", None)
    assert not (tmp_path / "b").exists()


def test_the_configured_runs_exist():
    assert set(load_config(None, "default").federation.runs) <= set(RUNS)
    assert set(load_config(None, "tiny").federation.runs) <= set(RUNS)
