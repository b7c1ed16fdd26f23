"""No differential privacy: FedAvg, weighted by examples, by Flower's FedAvgM over the accepted replies.

Devices are a uniform cohort among the available ones (server/samplers/uniform.py), which no accountant models.
Under SecAgg+ the devices still clip to `privacy.clip`: it bounds the range SecAgg+ quantizes into its field.
"""

from __future__ import annotations

from flwr.app import Message

from edgefleet.config import Config
from server.privacy.base import Accepted, PrivacyMechanism, Weights
from server.samplers.base import Sampler


class NoPrivacy(PrivacyMechanism):
    sampling = "uniform"

    @classmethod
    def from_config(cls, cfg: Config, sampler: Sampler) -> NoPrivacy:
        return cls(sampler, cfg.privacy.clip)

    def aggregate(self, base: Weights, accepted: Accepted) -> tuple[list[Message], dict]:
        return [msg for _, msg in accepted], {}

    def aggregate_sum(self, base: Weights, mean: Weights, contributors: int,
                      unclipped: int) -> tuple[Weights | None, dict]:
        if not contributors:
            return None, {}
        # SecAgg+ weighs every device 1: the uniform average of the deltas
        return {k: (b + mean[k]).astype(b.dtype) for k, b in base.items()}, {}
