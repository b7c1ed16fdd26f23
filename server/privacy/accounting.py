"""What DP costs in epsilon, with Google's dp-accounting RDP accountant.

- `Ledger` (DP-FedAvg): Flower's `RdpAccountant` composes one Poisson-sampled Gaussian event per round and reports
  epsilon at the configured delta. The rate is the largest chance any device has to take part in a round
  (server/samplers/poisson.py), and the neighbouring relation adds or removes one device.
- `TreeLedger` (DP-FTRL): one tree-aggregation event over the rounds so far, no sampling (Kairouz et al. 2021,
  appendix D), for a device that takes part in at most `max_participations` rounds.

Either way the guarantee covers everything one device contributes.
"""

from __future__ import annotations

import math

from absl import logging as absl_logging
from dp_accounting import dp_event
from dp_accounting.privacy_accountant import NeighboringRelation as Relation
from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant as TreeAccountant
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
    def from_config(cls, cfg: Config, rate: float, population: int) -> Ledger:
        """The population is what the sampler draws (devices, or users); delta defaults to one over its size."""
        p = cfg.privacy
        return cls(p.noise, rate, population, p.delta or 1.0 / population)

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


class TreeLedger:
    """Epsilon spent so far by a binary-tree release of the running sum of the updates, `steps` leaves so far.

    A leaf is one round's sum of clipped updates; one device's update (norm at most clip, against replacing it with
    zeros: dp-accounting's REPLACE_SPECIAL relation) enters at most ceil(log2(steps + 1)) of the tree's nodes, each
    noised with std noise * clip. A device in k rounds is a sum of k such contributions, so it moves the released
    nodes by at most k * sqrt(depth) * clip (triangle inequality; tight when its rounds are adjacent): the
    single-participation event at multiplier noise / k. No restart: one tree over the whole run.
    """

    def __init__(self, noise: float, max_participations: int, delta: float):
        self.noise, self.max_participations, self.delta = noise, max_participations, delta
        self.steps = 0
        absl_logging.set_verbosity(absl_logging.ERROR)

    @classmethod
    def from_config(cls, cfg: Config) -> TreeLedger:
        p = cfg.privacy
        return cls(p.noise, p.max_participations, p.delta or 1.0 / cfg.sim.devices)

    def spend(self, steps: int = 1) -> None:
        self.steps += steps

    @property
    def depth(self) -> int:
        """Released nodes one leaf is in, after `steps` leaves."""
        return math.ceil(math.log2(self.steps + 1))

    @property
    def epsilon(self) -> float:
        if self.steps == 0:
            return 0.0
        if self.noise == 0:
            return math.inf
        accountant = TreeAccountant(neighboring_relation=Relation.REPLACE_SPECIAL)
        accountant.compose(dp_event.SingleEpochTreeAggregationDpEvent(self.noise / self.max_participations,
                                                                       self.steps))
        return float(accountant.get_epsilon(self.delta))

    def row(self) -> dict:
        """What a round's result row says of the privacy spent so far."""
        return {"epsilon": self.epsilon, "delta": self.delta, "dp_noise": self.noise, "tree_steps": self.steps,
                "tree_depth": self.depth, "max_participations": self.max_participations}


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
