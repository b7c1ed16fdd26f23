import numpy as np
import pytest

from simulation.intervals import gain_interval, share_interval


def _hits(rng, n, rate):
    return (rng.random(n) < rate).astype(float)


def _flip(rows, rng, up, down):
    """The rows with `up` misses turned into hits and `down` hits into misses."""
    out = rows.copy()
    out[rng.choice(np.flatnonzero(rows == 0), up, replace=False)] = 1
    out[rng.choice(np.flatnonzero(rows == 1), down, replace=False)] = 0
    return out


def test_a_paired_gain_is_tighter_than_its_rows_spread_and_holds_the_gain():
    rng = np.random.default_rng(0)
    start = _hits(rng, 800, 0.4)
    value = _flip(start, rng, 40, 10)  # +30 rows of 800
    low, high = gain_interval(start, value)
    assert low < 30 / 800 < high and low > 0
    # Unpaired, two proportions near 0.4 over 800 rows each would give a 90% half-width of about 0.04.
    assert high - low < 0.04


def _start_value_reference(seed, value_flips, reference_flips):
    """849 test rows (MovieLens's device users) scored by the start, and by two models that change some of them."""
    rng = np.random.default_rng(seed)
    start = _hits(rng, 849, 0.39)
    return start, _flip(start, rng, *value_flips), _flip(start, rng, *reference_flips)


def test_a_share_of_a_real_gain_has_an_interval_around_it():
    start, value, reference = _start_value_reference(1, (50, 10), (70, 10))
    out = share_interval(start, value, reference)
    share = (value.mean() - start.mean()) / (reference.mean() - start.mean())
    assert out["measurable"] and out["level"] == 0.9
    low, high = out["share"]
    assert low < share < high and 0 < low and high < 2
    assert out["reference_gain"][0] > 0 and out["gain"][0] > 0


def test_the_share_is_exact_when_the_value_is_the_reference():
    rng = np.random.default_rng(2)
    start = _hits(rng, 500, 0.4)
    reference = _flip(start, rng, 60, 0)
    assert share_interval(start, reference, reference)["share"] == pytest.approx([1.0, 1.0])


def test_no_share_is_read_when_the_reference_gained_within_the_noise():
    """A reference that gained 2 rows of 849 (the 25-round twin of the DP bench): the ratio means nothing."""
    start, value, reference = _start_value_reference(3, (15, 10), (12, 10))
    out = share_interval(start, value, reference)
    assert not out["measurable"] and out["share"] is None
    assert out["reference_gain"][0] <= 0 < out["reference_gain"][1]
