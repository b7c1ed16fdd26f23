"""Who a round asks, by name (server/samplers/base.py says what a sampler is).

A privacy mechanism names the sampler its guarantee assumes (server/privacy/base.py `sampling`) and any options it
takes (`sampler_options`, e.g. the cap on participations). A new sampler is one new file here with a `Sampler`
subclass, plus one line in SAMPLERS.
"""

from __future__ import annotations

import numpy as np

from edgefleet.errors import ConfigError
from server.samplers.base import Sampler
from server.samplers.capped import CappedSampler
from server.samplers.poisson import PoissonSampler
from server.samplers.poisson_user import UserPoissonSampler
from server.samplers.uniform import UniformSampler

SAMPLERS: dict[str, type[Sampler]] = {
    "uniform": UniformSampler,
    "poisson": PoissonSampler,
    "poisson-user": UserPoissonSampler,
    "capped": CappedSampler,
}


def sampler_class(name: str) -> type[Sampler]:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")
    return SAMPLERS[name]


def sampler_for(name: str, availability: np.ndarray, cohort: int, seed: int, **options) -> Sampler:
    return sampler_class(name)(availability, cohort, seed, **options)
