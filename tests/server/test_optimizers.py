"""The server's optimizer: each of Flower's steps over the fleet's released average, its state checkpointed, and a
resumed run stepping as an uninterrupted one."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from edgefleet.config import load_config
from server.optimizers import NAMES, legacy_strategy, restore, server_lr, settings, state_of
from server.privacy.none import NoPrivacy
from server.samplers.uniform import UniformSampler
from server.strategy import fleet_strategy
from simulation.population.tiers import draw_population
from tests.server.test_strategy import FakeGrid, _reply, task_identity  # noqa: F401 (the fixture)

ROUNDS = [np.array([1.0, -2.0], np.float32), np.array([0.5, 0.5], np.float32), np.array([-1.0, 3.0], np.float32)]


def _sim(optimizer, **extra):
    return load_config(overrides=[f'sim.server_optimizer="{optimizer}"', "sim.server_momentum=0.5",
                                  *(f"sim.{k}={v}" for k, v in extra.items())]).sim


def _fleet(optimizer, offset=0, **extra):
    population = draw_population(10, seed=0).assign(availability=1.0)
    mechanism = NoPrivacy(UniformSampler(population["availability"].to_numpy(), 1, 0), clip=1.0)
    return fleet_strategy(optimizer, population, mechanism, {"lr": 0.1}, 1000.0, lambda *a: None, offset,
                          **settings(_sim(optimizer, **extra)))


def _round(s, server_round, weights, target):
    """One round in which the one device sends `weights + target`; the new weights."""
    messages = list(s.configure_train(server_round, ArrayRecord({"w": Array(weights)}), ConfigRecord(), FakeGrid(1)))
    arrays, _ = s.aggregate_train(server_round, [_reply(messages[0], {"w": weights + target}, examples=1)])
    return arrays["w"].numpy()


def _adam(rounds, lr, b1, b2, tau):
    """Reddi et al.'s FedAdam with Flower's bias correction, by hand: the pseudo-gradient is the average - model."""
    w, m, v, out = np.zeros(2), np.zeros(2), np.zeros(2), []
    for t, delta in enumerate(rounds, 1):
        m = b1 * m + (1 - b1) * delta
        v = b2 * v + (1 - b2) * delta ** 2
        w = w + lr * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1)) * m / (np.sqrt(v) + tau)
        out.append(w)
    return out


def test_fedadam_takes_reddi_et_al_s_steps_over_the_fleets_average():
    s = _fleet("fedadam", server_lr=0.1)
    w = np.zeros(2, np.float32)
    for r, (delta, expected) in enumerate(zip(ROUNDS, _adam(ROUNDS, 0.1, 0.5, 0.99, 1e-3)), 1):
        w = _round(s, r, w, delta)
        np.testing.assert_allclose(w, expected, rtol=1e-5)


@pytest.mark.parametrize("optimizer", NAMES)
def test_a_resumed_run_steps_as_one_never_stopped(optimizer):
    whole = _fleet(optimizer)
    w_whole = np.zeros(2, np.float32)
    for r, delta in enumerate(ROUNDS, 1):
        w_whole = _round(whole, r, w_whole, delta)
    first = _fleet(optimizer)
    w = _round(first, 1, np.zeros(2, np.float32), ROUNDS[0])
    state = state_of(first)
    assert state, "every optimizer here keeps a state across rounds"
    resumed = _fleet(optimizer, offset=1)  # a new process: Flower numbers its rounds from 1 again
    restore(resumed, state, by_name=True)
    for r, delta in enumerate(ROUNDS[1:], 1):
        w = _round(resumed, r, w, delta)
    np.testing.assert_allclose(w, w_whole, rtol=1e-6)
    assert w.dtype == w_whole.dtype == np.float32  # the devices get the model in its deployed dtype


@pytest.mark.parametrize("optimizer", NAMES)
def test_the_legacy_strategies_state_restores_too(optimizer):
    """The SecAgg+ path (server/secure.py) steps with Flower's legacy strategies."""
    def make(initial):
        return legacy_strategy(optimizer)(initial_parameters=ndarrays_to_parameters([initial]),
                                          **settings(_sim(optimizer)))

    def step(s, r, w, delta):
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([w + delta]), 1, {})
        params, _ = s.aggregate_fit(r, [(None, res)], [])
        return parameters_to_ndarrays(params)[0]

    whole, w_whole = make(np.zeros(2, np.float32)), np.zeros(2, np.float32)
    for r, delta in enumerate(ROUNDS, 1):
        w_whole = step(whole, r, w_whole, delta)
    first = make(np.zeros(2, np.float32))
    w = step(first, 1, np.zeros(2, np.float32), ROUNDS[0])
    resumed = make(w)
    restore(resumed, state_of(first), by_name=False)
    for r, delta in enumerate(ROUNDS[1:], 2):
        w = step(resumed, r, w, delta)
    np.testing.assert_allclose(w, w_whole, rtol=1e-6)


def test_each_optimizer_has_its_own_default_step():
    assert server_lr(_sim("fedavgm")) == 1.0 and server_lr(_sim("fedyogi")) == 0.03
    assert server_lr(_sim("fedadam", server_lr=0.3)) == 0.3


def test_dp_ftrl_keeps_fedavgm():
    from edgefleet.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="dp-ftrl"):
        load_config(overrides=['sim.server_optimizer="fedadam"', 'privacy.mechanism="dp-ftrl"', "privacy.noise=1"])
