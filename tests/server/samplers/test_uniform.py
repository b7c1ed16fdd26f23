"""The non-private runs' sampler (server/samplers/uniform.py): a uniform cohort among the available devices."""

import numpy as np
import pytest

from edgefleet.errors import ConfigError
from server.samplers import sampler_for
from server.samplers.uniform import UniformSampler


def test_sampler_draws_available_devices_reproducibly():
    availability = np.where(np.arange(1000) % 2 == 0, 0.9, 0.0)  # odd devices are never available
    sampler = UniformSampler(availability, cohort=50, seed=7)
    chosen, available = sampler.sample(3)
    assert len(chosen) == 50 and len(set(chosen)) == 50 and (chosen % 2 == 0).all()
    assert 400 < available < 500
    assert (sampler.sample(3)[0] == chosen).all() and not (sampler.sample(4)[0] == chosen).all()
    few = UniformSampler(np.full(10, 0.3), cohort=8, seed=0).sample(1)[0]
    assert len(few) < 8  # never more than the available devices
    assert sampler.slots == 50  # one Flower node per cohort member


def test_samplers_are_chosen_by_name():
    assert type(sampler_for("uniform", np.ones(10), 5, 0)) is UniformSampler
    with pytest.raises(ConfigError, match="unknown sampler 'stratified' .*uniform, poisson"):
        sampler_for("stratified", np.ones(10), 5, 0)
