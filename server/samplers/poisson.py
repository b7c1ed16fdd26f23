"""Poisson sampling, the sampling DP-FedAvg's accountant assumes (server/privacy/dp_fedavg.py).

Every device is in a round's sample independently with probability p, and takes part if it is also available that
round (its profile's probability a). p = cohort / sum(a), so that the expected number of participants is the
cohort; a device's chance to take part is p * a <= p * max(a), the rate the accountant is given.
"""

from __future__ import annotations

import math

import numpy as np

from server.samplers.base import Sampler


class PoissonSampler(Sampler):
    """Each device is sampled with probability p independently; sampled and available devices are contacted.

    More participants than Flower nodes (beyond 5 standard deviations: about one round in three million) leaves the
    extra devices out of the round, like a dropout.
    """

    def __init__(self, availability: np.ndarray, cohort: int, seed: int):
        super().__init__(availability, cohort, seed)
        self.p = min(1.0, cohort / float(availability.sum()))
        self.rate = self.p * float(availability.max())  # the largest chance any device has to take part

    @classmethod
    def slots_for(cls, cohort: int) -> int:
        """The cohort and room for its spread (+5 sd)."""
        return cohort + math.ceil(5 * math.sqrt(cohort))

    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, server_round, 0x9015])
        sampled = rng.random(len(self.availability)) < self.p
        available = rng.random(len(self.availability)) < self.availability
        return rng.permutation(np.flatnonzero(sampled & available)), int(available.sum())
