"""DP-FedAvg (server/privacy/dp_fedavg.py): calibration of the noise, the adaptive clipping norm, the clipping
bound, the sensitivity of a release, what a SecAgg+ round releases, and resuming."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from server.privacy.accounting import Ledger
from server.privacy.dp_fedavg import AdaptiveDPFedAvg, DPFedAvg
from server.samplers.poisson import PoissonSampler

SHAPES = [(3000,), (40, 25)]


def fixed(noise: float, clip: float, cohort: int, seed: int = 0) -> DPFedAvg:
    sampler = PoissonSampler(np.full(100 * cohort, 0.5), cohort, seed)
    return DPFedAvg(sampler, Ledger(noise, sampler.rate, 100 * cohort, 1e-5), clip, seed)


def adaptive(noise: float, clip: float, cohort: int, seed: int = 0) -> AdaptiveDPFedAvg:
    sampler = PoissonSampler(np.full(100 * cohort, 0.5), cohort, seed)
    return AdaptiveDPFedAvg(sampler, Ledger(noise, sampler.rate, 100 * cohort, 1e-5), clip, seed,
                            target_quantile=0.5, clip_lr=0.2)


def test_noise_std_matches_calibration():
    z, clip, cohort = 1.3, 0.2, 50
    mech = fixed(z, clip, cohort, seed=1)
    mean, release = mech.release(None, SHAPES, within=0, contributed=0)
    noise = np.concatenate([m.ravel() for m in mean])
    sigma = z * clip / cohort
    assert release["noise_std"] == pytest.approx(sigma)
    # (n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom: a two-sided test at 0.1%.
    n = len(noise)
    statistic = (n - 1) * noise.var(ddof=1) / sigma**2
    assert stats.chi2.ppf(0.0005, n - 1) < statistic < stats.chi2.ppf(0.9995, n - 1)
    assert abs(noise.mean()) < 4 * sigma / math.sqrt(n)
    # ... and a mis-calibrated noise (10% off) would fail the same test
    assert not stats.chi2.ppf(0.0005, n - 1) < (n - 1) * noise.var(ddof=1) / (1.1 * sigma) ** 2


def test_adaptive_clipping_splits_the_noise_and_tracks_the_quantile():
    z, cohort = 1.0, 100
    mech = adaptive(z, 1.0, cohort)
    # the update noise and the count noise together are one Gaussian mechanism with multiplier z
    assert mech.update_noise ** -2 + (2 * mech.count_std) ** -2 == pytest.approx(z ** -2)
    assert mech.update_noise > z
    shapes = [(10,)]
    _, info = mech.release([np.zeros(10)], shapes, within=100, contributed=100)  # nobody clipped: the norm shrinks
    assert info["clip_norm"] == 1.0 and mech.clip < 1.0 and info["next_clip_norm"] == mech.clip
    before = mech.clip
    mech.release([np.zeros(10)], shapes, within=0, contributed=100)  # everybody clipped: it grows
    assert mech.clip > before


@pytest.mark.parametrize("scale", [0.01, 0.5, 1.0, 7.0, 300.0])
def test_clipping_bound_holds(scale):
    rng = np.random.default_rng(2)
    delta = [rng.normal(0, scale, s) for s in SHAPES]
    original = [d.copy() for d in delta]
    mech = fixed(1.0, 0.5, 10)
    norm, within = mech.clip_update(delta)
    clipped = math.sqrt(sum(float((d ** 2).sum()) for d in delta))
    assert norm == pytest.approx(math.sqrt(sum(float((d ** 2).sum()) for d in original)))
    assert clipped <= 0.5 * (1 + 1e-9)
    assert within == (norm <= 0.5)
    if within:
        assert all(np.array_equal(a, b) for a, b in zip(delta, original))
    else:  # clipping scales, it does not change the direction
        assert clipped == pytest.approx(0.5)
        np.testing.assert_allclose(delta[0] * norm / 0.5, original[0], rtol=1e-9)


def test_one_device_moves_the_release_by_at_most_clip_over_cohort():
    """The fixed denominator: the sensitivity does not depend on how many devices dropped out."""
    rng = np.random.default_rng(3)
    clip, cohort = 0.3, 40
    updates = []
    for _ in range(12):
        d = [rng.normal(0, 1.0, s) for s in SHAPES]
        fixed(0.0, clip, cohort).clip_update(d)
        updates.append(d)

    def release(ups):
        total = [sum(u[i] for u in ups) for i in range(len(SHAPES))]
        return fixed(0.0, clip, cohort).release(total, SHAPES, 0, len(ups))[0]

    with_all, without_one = release(updates), release(updates[1:])
    moved = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(with_all, without_one)))
    assert moved <= clip / cohort * (1 + 1e-9)
    assert moved > 0.5 * clip / cohort  # the check is not vacuous: a clipped update does move it


def test_a_secure_round_releases_the_noised_sum_and_counts_clipping_only_when_adaptive():
    """Under SecAgg+ the server holds the average of the k clipped deltas; the release divides their sum by the
    expected cohort. With fixed clipping the devices do not say whether they clipped."""
    base = {"w": np.ones(4, np.float32)}
    mean = {"w": np.full(4, 0.5, np.float32)}
    mech = fixed(0.0, 1.0, 10)
    new, extra = mech.aggregate_sum(base, mean, contributors=4, unclipped=3)
    np.testing.assert_allclose(new["w"], 1.0 + 0.5 * 4 / 10)
    assert new["w"].dtype == np.float32
    assert math.isnan(extra["unclipped_fraction"]) and extra["contributed"] == 4
    assert extra["epsilon"] == mech.ledger.epsilon and mech.ledger.rounds == 1
    nothing, extra = mech.aggregate_sum(base, {}, contributors=0, unclipped=0)
    assert nothing is None and mech.ledger.rounds == 2  # a noise-only release is not applied, but it is accounted
    _, extra = adaptive(1.0, 1.0, 100).aggregate_sum(base, mean, contributors=4, unclipped=3)
    assert extra["unclipped_fraction"] == 0.75


def test_resume_spends_the_committed_rounds_and_keeps_the_adaptive_norm():
    rounds = pd.DataFrame({"round": [1, 2, 3], "next_clip_norm": [0.4, 0.3, math.nan]})  # round 3: SecAgg+ halted
    mech = adaptive(1.0, 1.0, 100)
    mech.resume(3, rounds)
    assert mech.clip == 0.3 and mech.ledger.rounds == 3
    still = fixed(1.0, 1.0, 10)
    still.resume(3, rounds)
    assert still.clip == 1.0 and still.ledger.rounds == 3
