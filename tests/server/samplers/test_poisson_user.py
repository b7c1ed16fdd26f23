"""Poisson sampling of users (server/samplers/poisson_user.py): one device per sampled user, at the rate accounted."""

import numpy as np
import pytest

from edgefleet.errors import ConfigError
from server.samplers.poisson_user import UserPoissonSampler

# 300 users: the first 100 own one device, the next 100 two, the last 100 ten; every device available half the time.
OWNERS = np.concatenate([np.arange(100), np.repeat(np.arange(100, 200), 2), np.repeat(np.arange(200, 300), 10)])
AVAILABILITY = np.full(len(OWNERS), 0.5)


def test_a_sampled_user_takes_part_through_one_available_device():
    sampler = UserPoissonSampler(AVAILABILITY, cohort=30, seed=0, owners=OWNERS)
    reach = {1: 0.5, 2: 0.75, 10: 1 - 0.5 ** 10}  # a user's chance that one of its devices is available
    assert sampler.population == 300
    assert sampler.p == pytest.approx(30 / (100 * (reach[1] + reach[2] + reach[10])))
    assert sampler.rate == pytest.approx(sampler.p * reach[10])  # the best-reached user's chance: what is accounted
    took_part = np.zeros(300)
    sizes = []
    for r in range(3000):
        devices, available = sampler.sample(r)
        users = OWNERS[devices]
        assert len(set(users.tolist())) == len(users)  # at most one device of a user a round
        took_part[users] += 1
        sizes.append(len(devices))
    assert np.mean(sizes) == pytest.approx(30, rel=0.05)
    assert took_part[200:].mean() / 3000 == pytest.approx(sampler.rate, rel=0.05)
    assert took_part[:100].mean() / 3000 == pytest.approx(sampler.p * reach[1], rel=0.1)
    assert np.array_equal(sampler.sample(7)[0], sampler.sample(7)[0])  # reproducible per round
    assert max(sizes) <= sampler.slots == 30 + 28


def test_the_device_a_user_sends_through_varies_and_is_available():
    sampler = UserPoissonSampler(np.ones(20), cohort=2, seed=1, owners=np.zeros(20, dtype=int))
    picked = {int(sampler.sample(r)[0][0]) for r in range(200) if len(sampler.sample(r)[0])}
    assert len(picked) > 10  # not always the user's first device
    never = UserPoissonSampler(np.array([0.0, 1.0]), cohort=1, seed=0, owners=np.array([0, 0]))
    assert all(set(never.sample(r)[0].tolist()) <= {1} for r in range(50))  # an unavailable device never sends


def test_a_fleet_without_owners_is_one_clear_error():
    with pytest.raises(ConfigError, match="needs a fleet that says which user owns each device"):
        UserPoissonSampler(AVAILABILITY, cohort=30, seed=0, owners=None)
