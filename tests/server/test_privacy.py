"""DP-FedAvg's pieces (server/privacy.py): calibration of the noise, the clipping bound, the sensitivity of a
release, the sampling the accountant assumes, and the accountant against a published value."""

import math

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp
from scipy import stats

from edgefleet.config import load_config
from server.privacy import Ledger, Mechanism, PoissonSampler, ledger_for, mechanism_for, slots_for

SHAPES = [(3000,), (40, 25)]


def test_noise_std_matches_calibration():
    z, clip, cohort = 1.3, 0.2, 50
    mech = Mechanism(z, clip, cohort, seed=1)
    release = mech.release(None, SHAPES, within=0, contributed=0)
    noise = np.concatenate([m.ravel() for m in release["mean"]])
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
    mech = Mechanism(z, 1.0, cohort, adaptive=True, target_quantile=0.5, clip_lr=0.2, seed=0)
    # the update noise and the count noise together are one Gaussian mechanism with multiplier z
    assert mech.update_noise ** -2 + (2 * mech.count_std) ** -2 == pytest.approx(z ** -2)
    assert mech.update_noise > z
    shapes = [(10,)]
    info = mech.release([np.zeros(10)], shapes, within=100, contributed=100)  # nobody clipped: the norm shrinks
    assert info["clip_norm"] == 1.0 and mech.clip < 1.0 and info["next_clip_norm"] == mech.clip
    before = mech.clip
    mech.release([np.zeros(10)], shapes, within=0, contributed=100)  # everybody clipped: it grows
    assert mech.clip > before


@pytest.mark.parametrize("scale", [0.01, 0.5, 1.0, 7.0, 300.0])
def test_clipping_bound_holds(scale):
    rng = np.random.default_rng(2)
    delta = [rng.normal(0, scale, s) for s in SHAPES]
    original = [d.copy() for d in delta]
    mech = Mechanism(1.0, 0.5, 10)
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
        Mechanism(0.0, clip, cohort).clip_update(d)
        updates.append(d)

    def release(ups):
        total = [sum(u[i] for u in ups) for i in range(len(SHAPES))]
        return Mechanism(0.0, clip, cohort).release(total, SHAPES, 0, len(ups))["mean"]

    with_all, without_one = release(updates), release(updates[1:])
    moved = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(with_all, without_one)))
    assert moved <= clip / cohort * (1 + 1e-9)
    assert moved > 0.5 * clip / cohort  # the check is not vacuous: a clipped update does move it


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
    assert max(sizes) <= slots_for(20, poisson=True)


def test_accountant_matches_the_published_dp_sgd_value():
    """TF Privacy's README: N=60000, batch 256, noise 1.1, 60 epochs, delta 1e-5 is (3.01, 1e-5)-DP with the
    classic RDP conversion. The library's RDP curve reproduces 3.01 with that conversion; the ledger reports the
    library's tighter conversion of the same curve, so at most that and not far below."""
    q, steps, delta = 256 / 60000, 14063, 1e-5
    tf_orders = [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5, *range(5, 64), 128, 256, 512]
    curve = rdp._compute_rdp_poisson_subsampled_gaussian(q, 1.1, tf_orders) * steps
    classic = min(c + math.log(1 / delta) / (o - 1) for c, o in zip(curve, tf_orders))
    assert round(classic, 2) == 3.01
    ledger = Ledger(1.1, q, 60000, delta)
    ledger.spend(steps)
    assert 0.8 * classic < ledger.epsilon <= classic
    reference = rdp.RdpAccountant()
    reference.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(1.1)), steps)
    assert ledger.epsilon == pytest.approx(reference.get_epsilon(delta), rel=1e-6)


def test_ledger_grows_with_rounds_and_resumes():
    ledger = Ledger(1.0, 0.01, 10000, 1e-5)
    assert ledger.epsilon == 0.0
    eps = []
    for _ in range(5):
        ledger.spend()
        eps.append(ledger.epsilon)
    assert all(a < b for a, b in zip(eps, eps[1:]))
    cfg = load_config(None, "default", ["sim.devices=10000", "sim.cohort=100", "privacy.noise=1.0",
                                        "privacy.delta=1e-5"])
    sampler = PoissonSampler(np.full(10000, 0.5), 100, 0)
    resumed = ledger_for(cfg, sampler, rounds_done=5)
    fresh = Ledger(1.0, sampler.rate, 10000, 1e-5)
    fresh.spend(5)
    assert resumed.epsilon == pytest.approx(fresh.epsilon)
    no_noise = Ledger(0.0, 0.01, 100, 1e-3)
    assert no_noise.epsilon == 0.0  # nothing released yet
    no_noise.spend()
    assert math.isinf(no_noise.epsilon)


def test_no_privacy_without_noise():
    cfg = load_config(None, "default", [])
    assert mechanism_for(cfg) is None
    assert ledger_for(cfg, PoissonSampler(np.ones(1000), 100, 0)) is None
