"""`edgefleet bench scale`'s arithmetic and its population costs (the two-node check itself runs Ray: see
tests/simulation/test_ray_cluster.py for the cluster)."""

import pytest

from edgefleet.config import load_config
from edgefleet.progress import Reporter
from simulation.bench_scale import population_costs, predict


def test_the_serial_part_stays_and_the_device_work_is_shared_by_every_worker():
    rows = predict({"worker_s": 0.064, "serial_s": 0.01}, cohort=10_000, nodes=(1, 10), workers=16)
    assert rows[0]["device_work_s"] == pytest.approx(40.0) and rows[1]["device_work_s"] == pytest.approx(4.0)
    assert rows[0]["serial_s"] == rows[1]["serial_s"] == pytest.approx(100.0)
    assert rows[1]["round_s"] == pytest.approx(104.0) and rows[1]["workers"] == 160


def test_population_costs_are_measured_on_the_real_fleet():
    cfg = load_config(None, "tiny")
    costs = population_costs(cfg, devices=3_000, cohort=100, reporter=Reporter(enabled=False))
    assert costs["devices"] == 3_000 and costs["disk_bytes"] > 3_000 * 8  # profiles and items on disk
    assert costs["disk_bytes_per_device"] == pytest.approx(costs["disk_bytes"] / 3_000)
    assert costs["profiles_s"] > 0 and costs["fleet_files_s"] > 0 and costs["cohort_draw_s"] > 0
