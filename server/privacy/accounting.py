"""What DP-FedAvg costs in epsilon: Flower's `RdpAccountant` (Google's dp-accounting underneath) composes one
Poisson-sampled Gaussian event per round and reports epsilon at the configured delta.

The rate is the largest chance any device has to take part in a round (server/samplers/poisson.py), and the
neighbouring relation adds or removes one device: the guarantee covers everything one device contributes.
"""

from __future__ import annotations

import math

from absl import logging as absl_logging
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from edgefleet.config import Config


class Ledger:
    """Epsilon spent so far: one Poisson-sampled Gaussian release per round at `rate`."""

    def __init__(self, noise: float, rate: float, devices: int, delta: float):
        self.noise, self.rate, self.devices, self.delta = noise, rate, devices, delta
        # Flower's event states the rate as a sample size over the population: round it up, never down.
        self.sample_size = min(devices, math.ceil(rate * devices - 1e-9))
        self.rounds = 0
        self._accountant = None
        # dp-accounting warns (through absl) for every RDP order it drops as non-convergent; the epsilon is taken over
        # the others, as documented, so these are not worth a line each.
        absl_logging.set_verbosity(absl_logging.ERROR)
        if noise > 0:
            self._accountant = RdpAccountant(PrivacyConfig(
                target_delta=delta, population_size=devices, neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.POISSON))

    @classmethod
    def from_config(cls, cfg: Config, rate: float) -> Ledger:
        """The fleet is the population; delta defaults to one over its size."""
        p = cfg.privacy
        return cls(p.noise, rate, cfg.sim.devices, p.delta or 1.0 / cfg.sim.devices)

    def spend(self, rounds: int = 1) -> None:
        self.rounds += rounds
        if self._accountant is not None and rounds:
            self._accountant.compose(GaussianPrivacyEvent(self.noise, self.sample_size, self.devices), rounds)

    @property
    def epsilon(self) -> float:
        if self.rounds == 0:
            return 0.0
        return math.inf if self._accountant is None else float(self._accountant.get_epsilon(self.delta))

    def row(self) -> dict:
        """What a round's result row says of the privacy spent so far."""
        return {"epsilon": self.epsilon, "delta": self.delta, "dp_noise": self.noise, "sampling_rate": self.rate}


def noise_for_epsilon(epsilon: float, rate: float, devices: int, rounds: int, delta: float,
                      tolerance: float = 1e-3) -> float:
    """The smallest noise multiplier whose epsilon after `rounds` Poisson-sampled rounds at `rate` is at most
    `epsilon` (bisection on the same accountant the runs report with, to `tolerance` in the multiplier)."""

    def spent(noise: float) -> float:
        ledger = Ledger(noise, rate, devices, delta)
        ledger.spend(rounds)
        return ledger.epsilon

    low, high = 0.05, 1.0
    while spent(high) > epsilon:
        low, high = high, 2 * high
        if high > 1e4:
            raise ValueError(f"no noise multiplier reaches epsilon {epsilon} in {rounds} rounds at rate {rate:g}")
    while high - low > tolerance:
        mid = (low + high) / 2
        low, high = (mid, high) if spent(mid) > epsilon else (low, mid)
    return high
