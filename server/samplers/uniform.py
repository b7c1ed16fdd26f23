"""The non-private runs' sampler: a uniform cohort among the devices available this round.

No accountant models it (a device's chance depends on how many others are available): DP runs use poisson.py.
"""

from __future__ import annotations

import numpy as np

from server.samplers.base import Sampler


class UniformSampler(Sampler):
    """Devices are available with their profile's probability; the cohort is drawn without replacement from them."""

    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, server_round, 0xA7A1])
        available = np.flatnonzero(rng.random(len(self.availability)) < self.availability)
        chosen = rng.choice(available, size=min(self.cohort, len(available)), replace=False)
        return np.sort(chosen), len(available)
