"""DP-FTRL's sampler (server/privacy/dp_ftrl.py): a uniform cohort among the available devices that have taken part
fewer than `max_participations` times.

DP-FTRL's accountant assumes no sampling, only a bound on how many rounds one device's data enters; this sampler is
what enforces that bound. Being asked counts as taking part (whether or not the device then answers), so the bound
holds whatever the devices do. Once too few devices are left, cohorts shrink: `cohort x rounds` should stay within
`devices x max_participations`.
"""

from __future__ import annotations

import numpy as np

from server.samplers.base import Sampler


class CappedSampler(Sampler):
    """Uniform among the available devices with participations left; the counts are rebuilt from round 1, so a
    round's cohort depends only on (seed, round) and a resumed run asks the same devices."""

    def __init__(self, availability: np.ndarray, cohort: int, seed: int, max_participations: int = 1):
        super().__init__(availability, cohort, seed)
        self.max_participations = max_participations
        self._counts = np.zeros(len(availability), np.int64)  # rounds each device was asked in, up to _round
        self._round = 0
        self._drawn: dict[int, tuple[np.ndarray, int]] = {}

    def _draw(self, server_round: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, server_round, 0xCA99])
        online = rng.random(len(self.availability)) < self.availability
        eligible = np.flatnonzero(online & (self._counts < self.max_participations))
        chosen = np.sort(rng.choice(eligible, size=min(self.cohort, len(eligible)), replace=False))
        return chosen, int(online.sum())

    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        if server_round < 1:
            raise ValueError(f"rounds are numbered from 1, got {server_round}")
        while self._round < server_round:
            self._round += 1
            self._drawn[self._round] = self._draw(self._round)
            self._counts[self._drawn[self._round][0]] += 1
        return self._drawn[server_round]

    def participations(self) -> np.ndarray:
        """Rounds each device has been asked in, up to the last round sampled."""
        return self._counts.copy()
