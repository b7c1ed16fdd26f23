"""The ledger (server/privacy/accounting.py) against a published epsilon, and as rounds are spent and resumed."""

import math

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

from edgefleet.config import load_config
from server.privacy.accounting import Ledger


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
    resumed = Ledger.from_config(cfg, 0.01)
    resumed.spend(5)  # what a run resumed after 5 committed rounds starts from
    assert resumed.epsilon == pytest.approx(ledger.epsilon)
    assert resumed.row() == {"epsilon": ledger.epsilon, "delta": 1e-5, "dp_noise": 1.0, "sampling_rate": 0.01}
    no_noise = Ledger(0.0, 0.01, 100, 1e-3)
    assert no_noise.epsilon == 0.0  # nothing released yet
    no_noise.spend()
    assert math.isinf(no_noise.epsilon)


def test_delta_defaults_to_one_over_the_fleet():
    cfg = load_config(None, "default", ["sim.devices=2000", "privacy.noise=1.0"])
    assert Ledger.from_config(cfg, 0.01).delta == 1 / 2000
