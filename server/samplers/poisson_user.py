"""Poisson sampling of users, for a user-level guarantee when one user owns several devices (`privacy.unit="user"`).

Every user is in a round's sample independently with probability p; a sampled user takes part through one of its
devices available that round, drawn uniformly, and not at all when none is. A user thus sends at most one update a
round, which the mechanism clips like any other: the accountant's neighbouring relation adds or removes one user,
with the users as the population. p = cohort / sum over users of their chance to have a device available, so that
the expected number of participants is the cohort; a user's chance to take part is at most p * max of that chance,
the rate the accountant is given. Users own many devices in a large fleet, so this rate is many times the device
sampler's for the same cohort: that is what covering a whole user costs.
"""

from __future__ import annotations

import numpy as np

from edgefleet.errors import ConfigError
from server.samplers.base import Sampler
from server.samplers.poisson import PoissonSampler


class UserPoissonSampler(PoissonSampler):
    """Each user is sampled with probability p independently; a sampled user's available devices offer one. (A
    PoissonSampler for its slots: the same cohort and room for its spread.)"""

    def __init__(self, availability: np.ndarray, cohort: int, seed: int, owners: np.ndarray | None = None):
        if owners is None or len(owners) != len(availability):
            raise ConfigError("privacy.unit \"user\" needs a fleet that says which user owns each device "
                              "(the movielens task's does)")
        Sampler.__init__(self, availability, cohort, seed)  # PoissonSampler's own p is the devices'
        self.users, self.owner = np.unique(owners, return_inverse=True)
        # A user's chance that at least one of its devices is available in a round.
        unavailable = np.ones(len(self.users))
        np.multiply.at(unavailable, self.owner, 1.0 - availability)
        reach = 1.0 - unavailable
        self.p = min(1.0, cohort / float(reach.sum()))
        self.rate = self.p * float(reach.max())
        self.population = len(self.users)

    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, server_round, 0x05E5])
        sampled_users = rng.random(len(self.users)) < self.p
        available = rng.random(len(self.availability)) < self.availability
        # One available device of each sampled user: the device with the smallest random key among its user's.
        candidates = np.flatnonzero(available & sampled_users[self.owner])
        keys = rng.random(len(candidates))
        order = np.lexsort((keys, self.owner[candidates]))
        ranked = candidates[order]
        first = np.ones(len(ranked), dtype=bool)
        first[1:] = self.owner[ranked[1:]] != self.owner[ranked[:-1]]
        return rng.permutation(ranked[first]), int(available.sum())
