"""Privacy of the devices' updates, by name (server/privacy/base.py says what a mechanism is).

- `none`: FedAvg weighted by examples over a uniform cohort (none.py);
- `dp-fedavg`, `dp-fedavg-adaptive`: client-level DP-FedAvg over a Poisson sample, with a fixed clipping norm or one
  that tracks a quantile of the update norms, accounted in epsilon (dp_fedavg.py, accounting.py);
- `dp-ftrl`: client-level DP-FTRL (Kairouz et al. 2021): tree-aggregated noise on the running sum of the updates of
  uniform cohorts, with no sampling assumption, each device in at most `max_participations` rounds (dp_ftrl.py).

A new mechanism is one new file here with a `PrivacyMechanism` subclass, plus one line in MECHANISMS (and, to choose
it from a config, the line of `mechanism_name` that says which). Each mechanism names the sampler it needs
(server/samplers/), which also fixes how many Flower nodes a round takes.
"""

from __future__ import annotations

import numpy as np

from edgefleet.config import Config
from edgefleet.errors import ConfigError
from server.privacy.base import PrivacyMechanism
from server.privacy.dp_fedavg import AdaptiveDPFedAvg, DPFedAvg
from server.privacy.dp_ftrl import DPFTRL
from server.privacy.none import NoPrivacy
from server.samplers import sampler_class, sampler_for

MECHANISMS: dict[str, type[PrivacyMechanism]] = {
    "none": NoPrivacy,
    "dp-fedavg": DPFedAvg,
    "dp-fedavg-adaptive": AdaptiveDPFedAvg,
    "dp-ftrl": DPFTRL,
}


def mechanism_name(cfg: Config) -> str:
    """The mechanism the privacy settings ask for."""
    p = cfg.privacy
    if p.noise is None:
        return "none"
    return "dp-fedavg-adaptive" if p.adaptive else p.mechanism  # the config rejects adaptive dp-ftrl


def mechanism_class(name: str) -> type[PrivacyMechanism]:
    if name not in MECHANISMS:
        raise ConfigError(f"unknown privacy mechanism {name!r} (choose from {', '.join(MECHANISMS)})")
    return MECHANISMS[name]


def sampling_name(cfg: Config) -> str:
    """The sampler the run's guarantee assumes: the mechanism's, over users with `privacy.unit="user"`."""
    sampling = mechanism_class(mechanism_name(cfg)).sampling
    return "poisson-user" if cfg.privacy.unit == "user" else sampling  # the config allows it with dp-fedavg only


def mechanism_from_config(cfg: Config, availability: np.ndarray,
                          owners: np.ndarray | None = None) -> PrivacyMechanism:
    """The run's mechanism, holding the sampler it needs over the fleet's `availability` (and, for a user-level
    guarantee, `owners`: the user of each device)."""
    cls = mechanism_class(mechanism_name(cfg))
    options = {**cls.sampler_options(cfg), **({"owners": owners} if cfg.privacy.unit == "user" else {})}
    sampler = sampler_for(sampling_name(cfg), availability, cfg.sim.cohort, cfg.sim.seed, **options)
    return cls.from_config(cfg, sampler)


def slots_for(cfg: Config) -> int:
    """Flower nodes the run needs, before there is a fleet to sample from."""
    return sampler_class(sampling_name(cfg)).slots_for(cfg.sim.cohort)
