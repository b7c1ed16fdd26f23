"""Client-level differential privacy of the shared head's updates: who is sampled, how updates are clipped and
noised, and what it costs in epsilon.

DP-FedAvg (McMahan et al. 2018) with the guarantee stated per device (client-level, add/remove one device):

- **Sampling**: every device is in a round's sample independently with probability p (Poisson sampling), and takes
  part if it is also available that round (its profile's probability a). p = cohort / sum(a), so that the expected
  number of participants is the cohort; a device's chance to take part is p * a <= p * max(a), the rate the
  accountant is given. A participant that drops out, runs out of memory or misses the deadline contributes nothing,
  which can only lower its influence. (The non-private runs keep server/strategy.py's uniform cohort among the
  available devices, which no accountant models.)
- **Release**: the sum of the clipped updates, divided by the *expected* cohort (a fixed denominator, so one device
  moves the release by at most clip / cohort), plus Gaussian noise of std z * clip / cohort on every coordinate.
  Server momentum is applied to the released, noised average afterwards (post-processing).
- **Accounting**: Flower's `RdpAccountant` (Google's dp-accounting underneath) composes one Poisson-sampled Gaussian
  event per round and reports epsilon at the configured delta.

Flower's DP strategy wrappers are not used around the strategy: they average over the replies that arrived (the
sensitivity then depends on how many devices dropped out), they add their noise after the wrapped strategy's
momentum step (whose buffer would keep the un-noised update), and the adaptive wrappers calibrate the noise to the
clipping norm *after* its update rather than the one the updates were clipped with. The clipping, the noise and the
adaptive noise split use Flower's own DP functions; with SecAgg+ the devices clip with Flower's clipping function.
"""

from __future__ import annotations

import math

import numpy as np
from absl import logging as absl_logging
from flwr.supercore.differential_privacy import (
    adaptive_clip_inputs_inplace,
    add_gaussian_noise_inplace,
    compute_adaptive_noise_params,
    compute_stdv,
    get_norm,
)
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from edgefleet.config import Config


def slots_for(cohort: int, poisson: bool) -> int:
    """Flower nodes needed for a round's sample: the cohort, or with Poisson sampling room for its spread (+5 sd)."""
    return cohort + (math.ceil(5 * math.sqrt(cohort)) if poisson else 0)


class PoissonSampler:
    """Each device is sampled with probability p independently; sampled and available devices are contacted.

    More participants than Flower nodes (beyond 5 standard deviations: about one round in three million) leaves the
    extra devices out of the round, like a dropout.
    """

    def __init__(self, availability: np.ndarray, cohort: int, seed: int):
        self.availability, self.cohort, self.seed = availability, cohort, seed
        self.p = min(1.0, cohort / float(availability.sum()))
        self.rate = self.p * float(availability.max())  # the largest chance any device has to take part

    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, server_round, 0x9015])
        sampled = rng.random(len(self.availability)) < self.p
        available = rng.random(len(self.availability)) < self.availability
        return rng.permutation(np.flatnonzero(sampled & available)), int(available.sum())


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


class Mechanism:
    """Clip, sum over the expected cohort, add noise; with adaptive clipping, move the norm towards a quantile.

    With adaptive clipping the noise is split as in Andrew et al. (2021): the clipped-count gets std sigma_b and the
    updates the rest, so that the round as a whole is a Gaussian mechanism with multiplier `noise`.
    """

    def __init__(self, noise: float, clip: float, cohort: int, adaptive: bool = False, target_quantile: float = 0.5,
                 clip_lr: float = 0.2, seed: int = 0):
        self.noise, self.clip, self.cohort, self.adaptive = noise, clip, cohort, adaptive
        self.target_quantile, self.clip_lr = target_quantile, clip_lr
        self.update_noise, self.count_std = noise, 0.0
        if adaptive:
            self.count_std, self.update_noise = compute_adaptive_noise_params(noise, cohort, None)
        self.rng = np.random.default_rng([seed, 0xD9])

    def clip_update(self, delta: list[np.ndarray]) -> tuple[float, bool]:
        """Clip in place to the current norm: (the norm before, whether it was within the norm)."""
        norm = get_norm(delta)
        return norm, not adaptive_clip_inputs_inplace(delta, self.clip)

    def release(self, total: list[np.ndarray] | None, shapes: list[tuple], within: int, contributed: int) -> dict:
        """The noised average update from the sum of `contributed` clipped updates (`within` of them unclipped)."""
        clip = self.clip
        mean = [np.zeros(s, np.float64) for s in shapes] if total is None else \
            [t.astype(np.float64) / max(self.cohort, contributed) for t in total]
        std = compute_stdv(self.update_noise, clip, self.cohort)
        # numpy's global generator is what Flower's helper draws from: seed it per release for reproducible runs.
        np.random.seed(int(self.rng.integers(2**32)))
        add_gaussian_noise_inplace(mean, std)
        info = {"clip_norm": clip, "noise_std": std, "contributed": contributed,
                "unclipped_fraction": within / contributed if contributed else math.nan}
        if self.adaptive:
            noisy = (within + self.rng.normal(0.0, self.count_std)) / self.cohort
            self.clip = clip * math.exp(-self.clip_lr * (noisy - self.target_quantile))
        info.update(next_clip_norm=self.clip, mean=mean)
        return info


def ledger_for(cfg: Config, sampler: PoissonSampler, rounds_done: int = 0) -> Ledger | None:
    p = cfg.privacy
    if p.noise is None:
        return None
    ledger = Ledger(p.noise, sampler.rate, cfg.sim.devices, p.delta or 1.0 / cfg.sim.devices)
    ledger.spend(rounds_done)
    return ledger


def mechanism_for(cfg: Config, clip: float | None = None) -> Mechanism | None:
    p = cfg.privacy
    if p.noise is None:
        return None
    return Mechanism(p.noise, clip or p.clip, cfg.sim.cohort, p.adaptive, p.target_quantile, p.clip_lr, cfg.sim.seed)
