"""summary.json says how a DP run was protected and which guarantee it gives: the mechanism's own sampling and
accountant, and whether one user holds several devices (then the guarantee is per device, a user a group)."""

import pandas as pd

from edgefleet.config import load_config
from simulation.run import privacy_summary

ROUNDS = pd.DataFrame({"epsilon": [1.0, 2.0], "delta": [1e-5] * 2, "sampling_rate": [0.01] * 2,
                       "clip_norm": [0.1] * 2, "noise_std": [0.001] * 2})


def test_dp_fedavg_names_poisson_sampling_and_a_group_guarantee():
    out = privacy_summary(load_config(None, "tiny", ["privacy.noise=1.0"]), ROUNDS, devices_per_user=12)
    p = out["privacy"]
    assert out["epsilon"] == 2.0 and p["mechanism"] == "dp-fedavg" and p["sampling"] == "poisson"
    assert p["unit"] == "device" and p["max_devices_per_user"] == 12 and "group of that many" in p["guarantee"]
    assert "Poisson" in p["accountant"]


def test_a_user_level_run_names_user_sampling_and_a_user_guarantee():
    cfg = load_config(None, "tiny", ["privacy.noise=1.0", 'privacy.unit="user"'])
    p = privacy_summary(cfg, ROUNDS, devices_per_user=12)["privacy"]
    assert p["unit"] == "user" and p["sampling"] == "poisson-user" and p["guarantee"].startswith("user-level")


def test_dp_ftrl_names_its_own_sampling_and_accountant():
    cfg = load_config(None, "tiny", ["privacy.noise=1.0", 'privacy.mechanism="dp-ftrl"'])
    p = privacy_summary(cfg, ROUNDS, devices_per_user=1)["privacy"]
    assert p["mechanism"] == "dp-ftrl" and p["sampling"] == "capped" and "tree" in p["accountant"]
    assert "also user-level" in p["guarantee"]


def test_no_privacy_no_block():
    assert privacy_summary(load_config(None, "tiny"), ROUNDS) == {"epsilon": None}
