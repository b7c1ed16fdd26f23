"""Poisson sampling (server/samplers/poisson.py): the rates the accountant assumes, and room for the spread."""

import numpy as np
import pytest

from server.samplers.poisson import PoissonSampler


def test_poisson_sampling_rates():
    availability = np.array([0.1] * 500 + [0.4] * 500)
    sampler = PoissonSampler(availability, cohort=20, seed=0)
    assert sampler.p == pytest.approx(20 / availability.sum())
    assert sampler.rate == pytest.approx(sampler.p * 0.4)  # the busiest device's chance: what is accounted
    taken = np.zeros(len(availability))
    sizes = []
    for r in range(2000):
        devices, _ = sampler.sample(r)
        taken[devices] += 1
        sizes.append(len(devices))
    assert np.mean(sizes) == pytest.approx(20, rel=0.05)
    assert taken[500:].mean() / 2000 == pytest.approx(sampler.rate, rel=0.05)
    assert taken[:500].mean() / 2000 == pytest.approx(sampler.p * 0.1, rel=0.1)
    assert np.array_equal(sampler.sample(7)[0], sampler.sample(7)[0])  # reproducible per round
    assert max(sizes) <= PoissonSampler.slots_for(20) == sampler.slots == 20 + 23
