"""What a privacy mechanism is: the one object both ServerApps hand a round's updates to.

A mechanism names the sampler its guarantee assumes (`sampling`, a name in server/samplers/) and holds it, turns the
accepted updates of a round into what Flower's FedAvgM averages (server/strategy.py) or the released model from a
secure sum (server/secure.py), and says what the round's result row records of it (the privacy spent so far, the
clipping norm). Server momentum is Flower's, applied afterwards to what the mechanism released (post-processing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import pandas as pd
from flwr.app import Message

from edgefleet.config import Config
from server.samplers.base import Sampler

# Each accepted reply (its arrays: the device's decoded model) with the device's result row, which a mechanism may
# annotate (e.g. the norm of the update).
Accepted = list[tuple[dict, Message]]
Weights = dict[str, np.ndarray]


class PrivacyMechanism(ABC):
    """How a round's accepted updates become the model the server releases, and what that costs."""

    sampling: ClassVar[str] = "uniform"
    accountant: ClassVar[str | None] = None  # what the run's epsilon is computed with (summary.json), if any
    # Whether the mechanism needs to know how many updates were within the clipping norm (adaptive clipping): under
    # SecAgg+ the devices then report it, since only they see their own update.
    counts_clipped: ClassVar[bool] = False

    def __init__(self, sampler: Sampler, clip: float):
        self.sampler = sampler
        self.clip = clip  # the L2 norm a device's update is held to this round (under SecAgg+, also its field's range)

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Config, sampler: Sampler) -> PrivacyMechanism: ...

    @classmethod
    def sampler_options(cls, cfg: Config) -> dict:
        """What the sampler takes beyond the fleet, the cohort and the seed (e.g. a cap on participations)."""
        return {}

    @property
    def slots(self) -> int:
        """Flower nodes a round needs."""
        return self.sampler.slots

    def resume(self, rounds_done: int, rounds: pd.DataFrame) -> None:
        """Continue a run after its `rounds_done` committed rounds (`rounds`: their result rows)."""

    @abstractmethod
    def aggregate(self, base: Weights, accepted: Accepted) -> tuple[list[Message], dict]:
        """(the replies FedAvgM is to average, possibly none; what the round's result row records of it)."""

    @abstractmethod
    def aggregate_sum(self, base: Weights, mean: Weights, contributors: int,
                      unclipped: int) -> tuple[Weights | None, dict]:
        """SecAgg+: the server holds only `mean`, the average of `contributors` devices' clipped deltas from `base`
        (`unclipped` of them within the norm). (The model to release, None for none; the round row's part.)"""

    def row(self) -> dict:
        """What every round's result row says of the privacy spent so far."""
        return {}
