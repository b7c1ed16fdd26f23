"""DP-FTRL (server/privacy/dp_ftrl.py): the tree's nodes and noises, how its noise grows with the rounds, the model it
releases through the strategy, and resuming."""

import math

import numpy as np
import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.supercore.task_identity import TaskIdentity
from scipy import stats

from server.privacy.accounting import TreeLedger
from server.privacy.dp_ftrl import DPFTRL, tree_nodes
from server.samplers.capped import CappedSampler
from server.strategy import FleetFedAvg
from simulation.population.tiers import draw_population
from tests.server.test_strategy import FakeGrid, _reply

SHAPES = [(3000,), (40, 25)]


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Messages are stamped with the identity of the running task, as inside a ServerApp."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def ftrl(noise: float, clip: float, cohort: int, seed: int = 0, devices: int = 1000) -> DPFTRL:
    return DPFTRL(CappedSampler(np.ones(devices), cohort, seed), TreeLedger(noise, 1, 1e-5), clip, seed)


def test_the_nodes_cover_each_prefix_of_rounds_exactly():
    assert tree_nodes(1) == [(0, 0)]
    assert tree_nodes(6) == [(2, 0), (1, 2)]  # rounds 1-4, 5-6
    assert tree_nodes(7) == [(2, 0), (1, 2), (0, 6)]  # rounds 1-4, 5-6, 7
    assert tree_nodes(8) == [(3, 0)]
    for t in range(1, 300):
        covered = [r for level, index in tree_nodes(t) for r in range(index * 2**level + 1, (index + 1) * 2**level + 1)]
        assert covered == list(range(1, t + 1))
        assert len(tree_nodes(t)) == bin(t).count("1") <= math.log2(t) + 1


def test_a_rounds_noise_is_the_sum_of_its_covering_nodes_noises():
    mech = ftrl(1.0, 0.5, 10)
    node = {(level, index): mech.node_noise(level, index, SHAPES) for level, index in [(2, 0), (1, 2), (0, 6)]}
    for t, nodes in [(6, [(2, 0), (1, 2)]), (7, [(2, 0), (1, 2), (0, 6)])]:
        expected = [sum(node[n][i] for n in nodes) for i in range(len(SHAPES))]
        for got, want in zip(mech.prefix_noise(t, SHAPES), expected):
            np.testing.assert_array_equal(got, want)
    # rounds 6 and 7 share their two largest nodes: the noise added in round 7 is one fresh node
    for a, b, n in zip(mech.prefix_noise(7, SHAPES), mech.prefix_noise(6, SHAPES), node[(0, 6)]):
        np.testing.assert_allclose(a - b, n, atol=1e-12)
    # distinct nodes draw distinct noise, of std noise * clip
    assert not np.allclose(node[(2, 0)][0], node[(1, 2)][0])
    assert np.concatenate([v.ravel() for v in node[(2, 0)]]).std() == pytest.approx(0.5, rel=0.03)


def test_the_running_sums_noise_std_grows_like_log_t_not_t():
    """Var(noise of rounds 1..t) = (nodes covering [1, t]) * (noise * clip)^2 <= (log2(t) + 1) * (noise * clip)^2;
    noising each round apart would give t * (noise * clip)^2. A chi-square test per t, at 0.1% each."""
    z, clip, cohort, n = 1.0, 1.0, 1, 20_000
    mech = ftrl(z, clip, cohort)
    for t in [1, 2, 3, 7, 8, 31, 63, 64, 100]:
        noise = mech.prefix_noise(t, [(n,)])[0]
        nodes = len(tree_nodes(t))
        statistic = (n - 1) * noise.var(ddof=1) / (nodes * (z * clip) ** 2)
        assert stats.chi2.ppf(0.0005, n - 1) < statistic < stats.chi2.ppf(0.9995, n - 1), t
        assert nodes <= math.log2(t) + 1
        if t >= 31:  # well below the sqrt(t) of independent per-round noise
            assert noise.std() < 0.5 * math.sqrt(t) * z * clip
    _, info = mech.release(None, [(n,)], 0, 0)  # round 1 of this mechanism
    assert info["noise_std"] == z * clip / cohort
    for _ in range(6):
        _, info = mech.release(None, [(n,)], 0, 0)
    assert info["noise_std"] == pytest.approx(math.sqrt(3) * z * clip / cohort)  # round 7: three nodes


def _run_rounds(mech: DPFTRL, updates: list[list[np.ndarray] | None], server_lr: float, first_round: int = 1,
                start: np.ndarray | None = None) -> tuple[list[np.ndarray], list[dict]]:
    """Drive FleetFedAvg with `mech` for one round per entry of `updates` (each: the devices' models relative to the
    round's base, None: nobody answers); (the model after each round, each round's row)."""
    population = draw_population(len(mech.sampler.availability), seed=0).assign(availability=1.0)
    rows: list[dict] = []
    strategy = FleetFedAvg(population, mech, {"lr": 0.1}, deadline_ms=1000.0, server_lr=server_lr,
                           on_devices=lambda r, frame, available, extra: rows.append(extra),
                           round_offset=first_round - 1)
    model = np.zeros(3, np.float32) if start is None else start
    models = []
    for server_round, deltas in enumerate(updates, start=1):
        messages = list(strategy.configure_train(server_round, ArrayRecord({"w": Array(model)}), ConfigRecord(),
                                                 FakeGrid(mech.slots)))
        replies = [_reply(m, {"w": (model + d).astype(np.float32)}, 1) for m, d in zip(messages, deltas or [])]
        arrays, _ = strategy.aggregate_train(server_round, replies)
        if arrays is not None:
            model = arrays["w"].numpy()
        models.append(model.copy())
    return models, rows


def test_the_model_follows_the_noised_running_sum_through_the_strategy():
    """Three devices a round, cohort 4, clip 1, server_lr 0.5: after round t the model is
    initial + 0.5 * (running sum of the clipped updates + the tree's noise of round t) / 4, whatever the rounds
    before released, including a round nobody answered (3)."""
    clip, cohort, lr = 1.0, 4, 0.5
    big, small = np.array([3.0, 4.0, 0.0]), np.array([0.0, 0.3, 0.4])  # norm 5 (clipped to 1) and 0.5
    updates = [[big, small, small], [small, small, small], None, [big, big, small]]
    exact, _ = _run_rounds(ftrl(0.0, clip, cohort), updates, lr)
    clipped_sum = np.zeros(3)
    for t, deltas in enumerate(updates):
        clipped_sum += sum((d / max(1.0, np.linalg.norm(d) / clip) for d in deltas or []), np.zeros(3))
        np.testing.assert_allclose(exact[t], lr * clipped_sum / cohort, atol=1e-6)
    noisy, rows = _run_rounds(ftrl(1.0, clip, cohort), updates, lr)
    tree = ftrl(1.0, clip, cohort)
    for t in (2, 4):  # rounds that released a model
        noise = tree.prefix_noise(t, [(3,)])[0]
        np.testing.assert_allclose(noisy[t - 1], exact[t - 1] + lr * noise / cohort, atol=1e-5)
    np.testing.assert_array_equal(noisy[2], noisy[1])  # round 3 released nothing: the model stays
    assert [r["tree_steps"] for r in rows] == [1, 2, 3, 4] and [r["tree_applied"] for r in rows] == [1, 2, 2, 4]
    assert rows[0]["contributed"] == 3 and rows[0]["unclipped_fraction"] == pytest.approx(2 / 3)
    assert rows[-1]["epsilon"] > rows[0]["epsilon"] > 0 and rows[-1]["sampling_rate"] == cohort / 1000


def test_a_resumed_run_subtracts_exactly_the_noise_its_model_holds():
    """Resuming after round 3 (which released nothing) from the committed rows and model gives the same round 4 as
    the run that never stopped: the tree's nodes are drawn again from the seed, nothing else is stored."""
    clip, cohort, lr = 1.0, 4, 1.0
    rng = np.random.default_rng(5)
    updates = [[rng.normal(0, 0.3, 3) for _ in range(3)] for _ in range(4)]
    updates[2] = None
    whole, rows = _run_rounds(ftrl(1.0, clip, cohort), updates, lr)
    resumed = ftrl(1.0, clip, cohort)
    resumed.resume(3, pd.DataFrame(rows[:3]))
    assert resumed.ledger.steps == 3 and resumed.applied == 2
    assert resumed.ledger.epsilon == rows[2]["epsilon"]
    again, _ = _run_rounds(resumed, updates[3:], lr, first_round=4, start=whole[2])
    np.testing.assert_allclose(again[0], whole[3], atol=1e-6)
    fresh = ftrl(1.0, clip, cohort)
    fresh.resume(0, pd.DataFrame())
    assert fresh.ledger.steps == 0 and fresh.applied == 0


def test_a_secure_round_releases_the_step_from_the_sum():
    base = {"w": np.ones(4, np.float32)}
    mean = {"w": np.full(4, 0.5, np.float32)}
    mech = ftrl(0.0, 1.0, 10)
    new, extra = mech.aggregate_sum(base, mean, contributors=4, unclipped=3)
    np.testing.assert_allclose(new["w"], 1.0 + 0.5 * 4 / 10)
    assert new["w"].dtype == np.float32 and math.isnan(extra["unclipped_fraction"]) and mech.applied == 1
    nothing, extra = mech.aggregate_sum(base, {}, contributors=0, unclipped=0)
    assert nothing is None and mech.ledger.steps == 2 and mech.applied == 1 and extra["tree_applied"] == 1
