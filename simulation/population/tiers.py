"""The built-in population source (`tiers`): phone tiers with published market shares, per-device profiles drawn
from them.

RAM tier shares are AnTuTu's global Android statistics for Q4 2019 (6 GB 36.51%, 4 GB 31.70%, 3 GB 13.58%,
8 GB 7.47%, 2 GB 7.33%; the remaining 3.41% is put in the >= 12 GB tier). AnTuTu users lean to newer phones, so
the low tiers are, if anything, under-represented. The other columns are this testbed's assumptions, one row per
tier, and any of them can be replaced by giving a profile file:

- `budget_mb`: the memory an app may spend on the model and its working set, drawn log-uniformly in the range. The
  low end starts below EI-BERT's strict 4 MB on-device limit.
- `cpu_factor`: on-device compute time / time on this host, single thread (a Cortex-A53 phone is about 5x slower
  than a desktop core); drawn log-normally around the tier's median.
- `down_mbps`, `up_mbps`: median link speeds, drawn log-normally (sigma 0.5).
- `availability`: probability that the device is idle, charging and on an unmetered network in a given round.
- `dropout`: probability that a device that was sampled leaves before it replies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulation.population.base import PopulationSource

TIERS = pd.DataFrame(
    [
        # tier, share, budget_mb (low, high), cpu_factor, down_mbps, up_mbps, availability, dropout
        ("ram-2gb", 0.0733, 2.0, 4.0, 5.0, 4.0, 1.0, 0.15, 0.15),
        ("ram-3gb", 0.1358, 3.0, 6.0, 3.5, 8.0, 2.0, 0.20, 0.10),
        ("ram-4gb", 0.3170, 4.0, 8.0, 2.5, 15.0, 4.0, 0.25, 0.07),
        ("ram-6gb", 0.3651, 6.0, 12.0, 1.8, 25.0, 8.0, 0.30, 0.05),
        ("ram-8gb", 0.0747, 8.0, 16.0, 1.3, 40.0, 12.0, 0.35, 0.03),
        ("ram-12gb+", 0.0341, 12.0, 32.0, 1.0, 60.0, 20.0, 0.40, 0.02),
    ],
    columns=["tier", "share", "budget_mb_low", "budget_mb_high", "cpu_factor", "down_mbps", "up_mbps",
             "availability", "dropout"],
)

def draw_population(n: int, seed: int, tiers: pd.DataFrame = TIERS) -> pd.DataFrame:
    """`n` device profiles (one row per device id 0..n-1), reproducible from `seed`."""
    rng = np.random.default_rng([seed, 0xF1EE7])
    share = tiers["share"].to_numpy()
    tier = rng.choice(len(tiers), size=n, p=share / share.sum())
    t = tiers.iloc[tier].reset_index(drop=True)
    low, high = np.log(t["budget_mb_low"].to_numpy()), np.log(t["budget_mb_high"].to_numpy())
    budget_mb = np.exp(rng.uniform(low, high))

    def spread(median: pd.Series, sigma: float) -> np.ndarray:
        return median.to_numpy() * np.exp(rng.normal(0.0, sigma, size=n))

    return pd.DataFrame({
        "tier": t["tier"].to_numpy(),
        "budget_bytes": (budget_mb * 2**20).astype(np.int64),
        "cpu_factor": spread(t["cpu_factor"], 0.15),
        "down_bps": spread(t["down_mbps"], 0.5) * 1e6,
        "up_bps": spread(t["up_mbps"], 0.5) * 1e6,
        "availability": t["availability"].to_numpy(),
        "dropout": t["dropout"].to_numpy(),
    })


class TierSource(PopulationSource):
    """`sim.devices` profiles drawn from the phone tiers with `sim.seed`."""

    def profiles(self, sim) -> pd.DataFrame:
        return draw_population(sim.devices, sim.seed)
