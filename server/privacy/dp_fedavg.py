"""DP-FedAvg (McMahan et al. 2018), client-level (add/remove one device), with fixed or adaptive clipping.

- **Sampling**: Poisson (server/samplers/poisson.py). A participant that drops out, runs out of memory or misses
  the deadline contributes nothing, which can only lower its influence.
- **Release**: the sum of the clipped updates, divided by the *expected* cohort (a fixed denominator, so one device
  moves the release by at most clip / cohort), plus Gaussian noise of std z * clip / cohort on every coordinate.
  Server momentum is applied to the released, noised average afterwards (post-processing).
- **Accounting**: one Poisson-sampled Gaussian event per round (accounting.py).

Without SecAgg+ the server clips each update itself (it is trusted with them); with SecAgg+ the devices clip with
Flower's clipping function and the server adds the noise to the secure sum (central DP on a secure sum).

Flower's DP strategy wrappers are not used around the strategy: they average over the replies that arrived (the
sensitivity then depends on how many devices dropped out), they add their noise after the wrapped strategy's
momentum step (whose buffer would keep the un-noised update), and the adaptive wrappers calibrate the noise to the
clipping norm *after* its update rather than the one the updates were clipped with. The clipping, the noise and the
adaptive noise split use Flower's own DP functions.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from flwr.app import Array, ArrayRecord, Message
from flwr.supercore.differential_privacy import (
    adaptive_clip_inputs_inplace,
    add_gaussian_noise_inplace,
    compute_adaptive_noise_params,
    compute_stdv,
    get_norm,
)

from edgefleet.config import Config
from server.privacy.accounting import Ledger
from server.privacy.base import Accepted, PrivacyMechanism, Weights
from server.samplers.base import Sampler
from server.samplers.poisson import PoissonSampler


def clip_update(delta: list[np.ndarray], clip: float) -> tuple[float, bool]:
    """Clip in place to L2 norm `clip`: (the norm before, whether it was within the norm)."""
    norm = get_norm(delta)
    return norm, not adaptive_clip_inputs_inplace(delta, clip)


def clip_and_sum(base: Weights, accepted: Accepted, clip: float) -> tuple[list[np.ndarray] | None, int]:
    """The sum of the accepted updates' deltas from `base` (in its key order), each clipped to `clip`, its norm
    before clipping noted in its row; and how many were within the norm. None when nothing was accepted."""
    total, within = None, 0
    for row, msg in accepted:
        delta = [msg.content["arrays"][k].numpy().astype(np.float64) - b for k, b in base.items()]
        norm, unclipped = clip_update(delta, clip)
        row["update_norm"] = norm
        within += unclipped
        total = delta if total is None else [t + d for t, d in zip(total, delta)]
    return total, within


def carry(base: Weights, accepted: Accepted, step: list[np.ndarray]) -> list[Message]:
    """The one reply FedAvgM is to average: the first accepted one, holding base + step (in base's dtypes), so that
    Flower's server learning rate and momentum act on the released step."""
    carrier = accepted[0][1]
    carrier.content["arrays"] = ArrayRecord({k: Array((b + s).astype(b.dtype))
                                             for (k, b), s in zip(base.items(), step)})
    return [carrier]


class DPFedAvg(PrivacyMechanism):
    """Clip, sum over the expected cohort, add noise; the clipping norm stays `clip`."""

    sampling = "poisson"
    accountant = "RDP of the Poisson-subsampled Gaussian (Flower's RdpAccountant over dp-accounting)"

    def __init__(self, sampler: Sampler, ledger: Ledger, clip: float, seed: int):
        super().__init__(sampler, clip)
        self.ledger, self.noise, self.cohort = ledger, ledger.noise, sampler.cohort
        self.update_noise = self.noise  # the multiplier of the updates' noise
        self.rng = np.random.default_rng([seed, 0xD9])

    @classmethod
    def from_config(cls, cfg: Config, sampler: PoissonSampler) -> DPFedAvg:
        return cls(sampler, Ledger.from_config(cfg, sampler.rate, sampler.population), cfg.privacy.clip,
                   cfg.sim.seed)

    def resume(self, rounds_done: int, rounds: pd.DataFrame) -> None:
        self.ledger.spend(rounds_done)

    def row(self) -> dict:
        return self.ledger.row()

    def clip_update(self, delta: list[np.ndarray]) -> tuple[float, bool]:
        """Clip in place to the current norm: (the norm before, whether it was within the norm)."""
        return clip_update(delta, self.clip)

    def release(self, total: list[np.ndarray] | None, shapes: list[tuple], within: int,
                contributed: int) -> tuple[list[np.ndarray], dict]:
        """The noised average update from the sum of `contributed` clipped updates (`within` of them unclipped),
        and what the round row records of it."""
        clip = self.clip
        mean = [np.zeros(s, np.float64) for s in shapes] if total is None else \
            [t.astype(np.float64) / max(self.cohort, contributed) for t in total]
        std = compute_stdv(self.update_noise, clip, self.cohort)
        # numpy's global generator is what Flower's helper draws from: seed it per release for reproducible runs.
        np.random.seed(int(self.rng.integers(2**32)))
        add_gaussian_noise_inplace(mean, std)
        info = {"clip_norm": clip, "noise_std": std, "contributed": contributed,
                "unclipped_fraction": within / contributed if contributed else math.nan}
        self.clip = self._next_clip(within)
        info["next_clip_norm"] = self.clip
        return mean, info

    def _next_clip(self, within: int) -> float:
        return self.clip

    def _spent(self, info: dict) -> dict:
        self.ledger.spend()
        return {**info, **self.ledger.row()}

    def aggregate(self, base: Weights, accepted: Accepted) -> tuple[list[Message], dict]:
        """Clip each update here, release the noised average, and hand FedAvgM one reply holding the released model,
        so that Flower's momentum acts on it."""
        total, within = clip_and_sum(base, accepted, self.clip)
        mean, info = self.release(total, [b.shape for b in base.values()], within, len(accepted))
        extra = self._spent(info)
        if not accepted:  # nothing to move the model with; the (noise-only) release is not applied
            return [], extra
        return carry(base, accepted, mean), extra

    def aggregate_sum(self, base: Weights, mean: Weights, contributors: int,
                      unclipped: int) -> tuple[Weights | None, dict]:
        total = [mean[k] * contributors for k in base] if contributors else None
        released, info = self.release(total, [b.shape for b in base.values()], unclipped, contributors)
        if not self.counts_clipped:  # the devices clip and, without adaptive clipping, do not say whether
            info["unclipped_fraction"] = math.nan
        extra = self._spent(info)
        if not contributors:
            return None, extra
        return {k: (b + m).astype(b.dtype) for (k, b), m in zip(base.items(), released)}, extra


class AdaptiveDPFedAvg(DPFedAvg):
    """DP-FedAvg whose clipping norm moves towards a quantile of the update norms (Andrew et al. 2021).

    The noise is split as in the paper: the clipped-count gets std sigma_b and the updates the rest, so that the
    round as a whole is a Gaussian mechanism with multiplier `noise`.
    """

    counts_clipped = True

    def __init__(self, sampler: Sampler, ledger: Ledger, clip: float, seed: int, target_quantile: float,
                 clip_lr: float):
        super().__init__(sampler, ledger, clip, seed)
        self.target_quantile, self.clip_lr = target_quantile, clip_lr
        self.count_std, self.update_noise = compute_adaptive_noise_params(self.noise, self.cohort, None)

    @classmethod
    def from_config(cls, cfg: Config, sampler: PoissonSampler) -> AdaptiveDPFedAvg:
        p = cfg.privacy
        return cls(sampler, Ledger.from_config(cfg, sampler.rate, sampler.population), p.clip, cfg.sim.seed,
                   p.target_quantile, p.clip_lr)

    def resume(self, rounds_done: int, rounds: pd.DataFrame) -> None:
        """Also from the norm the last committed release left (a halted SecAgg+ round released nothing)."""
        super().resume(rounds_done, rounds)
        left = rounds.get("next_clip_norm", pd.Series(dtype=float)).dropna()
        if len(left):
            self.clip = float(left.iloc[-1])

    def _next_clip(self, within: int) -> float:
        noisy = (within + self.rng.normal(0.0, self.count_std)) / self.cohort
        return self.clip * math.exp(-self.clip_lr * (noisy - self.target_quantile))
