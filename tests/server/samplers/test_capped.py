"""DP-FTRL's sampler (server/samplers/capped.py): uniform cohorts that never ask a device more than its cap."""

import numpy as np

from server.samplers import sampler_for
from server.samplers.capped import CappedSampler


def test_no_device_is_asked_more_than_its_cap():
    availability = np.where(np.arange(300) % 3 == 0, 0.0, 0.8)  # every third device is never available
    for cap in (1, 2):
        sampler = CappedSampler(availability, cohort=20, seed=4, max_participations=cap)
        asked = np.zeros(300, int)
        sizes = []
        for r in range(1, 31):
            chosen, available = sampler.sample(r)
            assert len(set(chosen)) == len(chosen) and (chosen % 3 != 0).all() and 120 < available < 200
            asked[chosen] += 1
            sizes.append(len(chosen))
        assert asked.max() == cap and (asked == sampler.participations()).all()
        # 200 devices can be available: 200 * cap participations in all, then the cohorts run dry
        assert sizes[0] == 20 and sum(sizes) <= 200 * cap and sizes[-1] < 20


def test_a_round_is_the_same_whoever_asks_and_in_whatever_order():
    """A resumed run replays the counts from round 1: its round 7 is the uninterrupted run's round 7."""
    whole = CappedSampler(np.full(100, 0.9), cohort=10, seed=1)
    rounds = [whole.sample(r)[0] for r in range(1, 9)]
    resumed = CappedSampler(np.full(100, 0.9), cohort=10, seed=1)
    np.testing.assert_array_equal(resumed.sample(7)[0], rounds[6])
    np.testing.assert_array_equal(resumed.sample(3)[0], rounds[2])  # an earlier round again: the same cohort
    assert not np.array_equal(rounds[0], rounds[1])
    assert resumed.slots == 10


def test_the_cap_is_a_sampler_option_by_name():
    sampler = sampler_for("capped", np.ones(10), 5, 0, max_participations=3)
    assert type(sampler) is CappedSampler and sampler.max_participations == 3
    assert sampler_for("capped", np.ones(10), 5, 0).max_participations == 1
