"""Choosing the privacy mechanism (server/privacy/__init__.py): by name from the config, with the sampler it needs."""

import numpy as np
import pytest

from edgefleet.config import load_config
from edgefleet.errors import ConfigError
from server.privacy import MECHANISMS, mechanism_class, mechanism_from_config, mechanism_name, slots_for
from server.privacy.dp_fedavg import AdaptiveDPFedAvg, DPFedAvg
from server.privacy.dp_ftrl import DPFTRL
from server.privacy.none import NoPrivacy
from server.samplers.capped import CappedSampler
from server.samplers.poisson import PoissonSampler
from server.samplers.uniform import UniformSampler


@pytest.mark.parametrize("settings, name, mechanism, sampler, slots", [
    ([], "none", NoPrivacy, UniformSampler, 100),
    (["privacy.noise=1.0"], "dp-fedavg", DPFedAvg, PoissonSampler, 150),  # 100 + ceil(5 * sqrt(100))
    (["privacy.noise=1.0", "privacy.adaptive=true"], "dp-fedavg-adaptive", AdaptiveDPFedAvg, PoissonSampler, 150),
    (["privacy.noise=1.0", 'privacy.mechanism="dp-ftrl"'], "dp-ftrl", DPFTRL, CappedSampler, 100),
])
def test_the_config_picks_the_mechanism_and_its_sampler(settings, name, mechanism, sampler, slots):
    cfg = load_config(None, "default", ["sim.devices=1000", "sim.cohort=100", "privacy.clip=0.3", *settings])
    assert mechanism_name(cfg) == name and MECHANISMS[name] is mechanism
    chosen = mechanism_from_config(cfg, np.full(1000, 0.5))
    assert type(chosen) is mechanism and type(chosen.sampler) is sampler
    assert chosen.sampler.cohort == 100 and chosen.clip == 0.3
    assert chosen.slots == slots_for(cfg) == slots


def test_no_privacy_without_noise():
    cfg = load_config(None, "default", [])
    mechanism = mechanism_from_config(cfg, np.ones(cfg.sim.devices))
    assert mechanism.row() == {}  # nothing accounted, nothing in the round rows
    assert not mechanism.counts_clipped


def test_an_unknown_mechanism_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown privacy mechanism 'laplace' .*none, dp-fedavg, dp-fedavg-adaptive"):
        mechanism_class("laplace")


def test_dp_ftrl_takes_its_cap_to_the_sampler_and_rejects_what_does_not_fit():
    cfg = load_config(None, "default", ["sim.devices=1000", "privacy.noise=1.0", 'privacy.mechanism="dp-ftrl"',
                                        "privacy.max_participations=3"])
    chosen = mechanism_from_config(cfg, np.full(1000, 0.5))
    assert chosen.sampler.max_participations == chosen.ledger.max_participations == 3
    for settings, message in [(['privacy.mechanism="dp-ftrl"'], "dp-ftrl is differential privacy: set privacy.noise"),
                              (["privacy.noise=1.0", 'privacy.mechanism="dp-ftrl"', "privacy.adaptive=true"],
                               "adaptive clipping goes with dp-fedavg, not dp-ftrl"),
                              (['privacy.mechanism="dp-sgd"'], "privacy.mechanism")]:
        with pytest.raises(ConfigError, match=message) as error:
            load_config(None, "default", settings)
        assert "\n" not in str(error.value)


def test_a_user_level_guarantee_samples_users_and_counts_them():
    from server.samplers.poisson_user import UserPoissonSampler

    cfg = load_config(None, "default", ["sim.devices=1000", "sim.cohort=50", "privacy.noise=1.0",
                                        'privacy.unit="user"'])
    owners = np.arange(1000) // 4  # 250 users of 4 devices each
    chosen = mechanism_from_config(cfg, np.full(1000, 0.5), owners)
    assert type(chosen) is DPFedAvg and type(chosen.sampler) is UserPoissonSampler
    assert chosen.ledger.devices == 250 and chosen.ledger.delta == 1 / 250  # the users are the population
    device_level = mechanism_from_config(load_config(None, "default", ["sim.devices=1000", "sim.cohort=50",
                                                                       "privacy.noise=1.0"]), np.full(1000, 0.5))
    assert chosen.sampler.rate > 3 * device_level.sampler.rate  # covering a user costs a higher sampling rate
    assert chosen.slots == slots_for(cfg)
    for settings in (['privacy.unit="user"'], ["privacy.noise=1.0", 'privacy.mechanism="dp-ftrl"',
                                               'privacy.unit="user"']):
        with pytest.raises(ConfigError, match="privacy.unit \"user\" is a DP-FedAvg guarantee"):
            load_config(None, "default", settings)
