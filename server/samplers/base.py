"""What a sampler is: who among the fleet a round asks, and how many Flower nodes that can take.

Flower's nodes are the simulation's execution slots; which device a slot emulates is chosen each round by the
server's sampler, so the population costs nothing per round however large it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Sampler(ABC):
    """A round's devices drawn from the fleet's availability; reproducible per (seed, round)."""

    def __init__(self, availability: np.ndarray, cohort: int, seed: int):
        self.availability, self.cohort, self.seed = availability, cohort, seed
        self.population = len(availability)  # what a guarantee's neighbouring relation counts: devices, or users

    @classmethod
    def slots_for(cls, cohort: int) -> int:
        """Flower nodes a round needs: one per device a sample of this `cohort` can hold."""
        return cohort

    @property
    def slots(self) -> int:
        return self.slots_for(self.cohort)

    @abstractmethod
    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        """(the devices asked this round, how many devices were available)."""
