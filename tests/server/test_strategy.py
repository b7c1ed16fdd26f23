"""FleetFedAvg through Flower's hooks: who is asked, what is averaged, and what is recorded."""

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from compression.runtime.update_codec import encode_update
from server.privacy.accounting import Ledger
from server.privacy.dp_fedavg import DPFedAvg
from server.privacy.none import NoPrivacy
from server.samplers.poisson import PoissonSampler
from server.samplers.uniform import UniformSampler
from server.strategy import FleetFedAvg, RayNodeLost, busiest_worker
from simulation.population.tiers import draw_population


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Messages are stamped with the identity of the running task, as inside a ServerApp."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


class FakeGrid:
    def __init__(self, n):
        self.nodes = list(range(100, 100 + n))

    def get_node_ids(self):
        return self.nodes


def _reply(request, weights, examples, outcome="ok", virtual_ms=100.0, bits=32, base=None):
    metrics = {"num-examples": examples, "virtual_ms": virtual_ms, "peak_bytes": 1000, "examples": examples}
    content = RecordDict({"metrics": MetricRecord(metrics), "outcome": ConfigRecord({"outcome": outcome})})
    if weights is not None:
        arrays = encode_update(weights, base, bits) if bits == 8 else weights
        content["arrays"] = ArrayRecord({k: Array(v) for k, v in arrays.items()})
    return Message(content=content, reply_to=request)


@pytest.fixture
def strategy():
    population = draw_population(40, seed=0).assign(availability=1.0)
    seen = []
    s = FleetFedAvg(population, NoPrivacy(UniformSampler(population["availability"].to_numpy(), 4, 0), clip=0.1),
                    {"lr": 0.1}, deadline_ms=1000.0,
                    on_devices=lambda r, frame, available, _: seen.append((r, frame, available)), round_offset=2)
    return s, seen, population


def test_each_node_is_told_its_device_and_profile(strategy):
    s, _, population = strategy
    base = {"w": np.zeros((2, 3), np.float32)}
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(base["w"])}), ConfigRecord(), FakeGrid(4)))
    assert len(messages) == 4
    devices = [m.content["config"]["device"] for m in messages]
    assert len(set(devices)) == 4
    for m in messages:
        cfg = m.content["config"]
        assert cfg["server-round"] == 3 and cfg["lr"] == 0.1  # round offset of a resumed run
        assert cfg["budget-bytes"] == population.loc[cfg["device"], "budget_bytes"]


def test_aggregation_weights_examples_drops_late_and_failed_devices(strategy):
    s, seen, _ = strategy
    base = {"w": np.zeros((2, 3), np.float32)}
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(base["w"])}), ConfigRecord(), FakeGrid(4)))
    replies = [
        _reply(messages[0], {"w": np.full((2, 3), 1.0, np.float32)}, examples=1),
        _reply(messages[1], {"w": np.full((2, 3), 4.0, np.float32)}, examples=3, bits=8, base=base),
        _reply(messages[2], {"w": np.full((2, 3), 100.0, np.float32)}, examples=5, virtual_ms=5000.0),
        _reply(messages[3], None, examples=0, outcome="oom"),
    ]
    arrays, metrics = s.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), (1.0 * 1 + 4.0 * 3) / 4, rtol=1e-2)
    (r, frame, available), = seen
    assert r == 3 and available == 40
    assert list(frame["outcome"]) == ["ok", "ok", "straggler", "oom"]
    assert list(frame["device"]) == [m.content["config"]["device"] for m in messages]


def test_a_round_with_no_usable_update_keeps_the_model(strategy):
    s, seen, _ = strategy
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(np.zeros(2, np.float32))}), ConfigRecord(),
                                      FakeGrid(4)))
    arrays, metrics = s.aggregate_train(1, [_reply(messages[0], None, 0, outcome="dropout")])
    assert arrays is None
    frame = seen[0][1]
    assert list(frame["outcome"]) == ["dropout"] * 4  # one said so, three never answered: they left the round
    assert (frame["error"].iloc[1:] == "no reply in the round").all()


def test_a_device_whose_node_went_away_is_a_dropout_and_a_crash_an_error(strategy):
    from flwr.app import Error
    from flwr.common.constant import ErrorCode

    s, seen, _ = strategy
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(np.zeros(2, np.float32))}), ConfigRecord(),
                                      FakeGrid(4)))
    for i, m in enumerate(messages):  # what Flower does when it sends them
        m.metadata.__dict__["_message_id"] = f"sent-{i}"
    gone = Message(Error(ErrorCode.NODE_UNAVAILABLE, "node offline"), reply_to=messages[0])
    gone.metadata.__dict__["_src_node_id"] = 0  # written by the SuperLink, not by the node that went away
    crashed = Message(Error(ErrorCode.CLIENT_APP_CRASHED, "segfault"), reply_to=messages[1])
    s.aggregate_train(1, [gone, crashed])
    frame = seen[0][1]
    sent = [m.content["config"]["device"] for m in messages]
    assert list(frame["device"][:2]) == sent[:2] and list(frame["outcome"][:2]) == ["dropout", "error"]
    assert len(frame) == 4 and sorted(frame["device"]) == sorted(sent)


def test_a_device_lost_with_its_ray_worker_node_is_a_dropout(strategy):
    """Flower's simulation engine answers for an actor whose Ray node died with an unknown-code error naming Ray's
    exception; any other unknown error stays an error."""
    from flwr.app import Error
    from flwr.common.constant import ErrorCode

    s, seen, _ = strategy
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(np.zeros(2, np.float32))}), ConfigRecord(),
                                      FakeGrid(4)))
    reasons = ["<class 'ray.exceptions.ActorUnavailableError'>:<'The actor 53 is unavailable'>",
               "<class 'ray.exceptions.ActorDiedError'>:<'The actor died unexpectedly'>",
               "<class 'ValueError'>:<'bad'>"]
    s.aggregate_train(1, [Message(Error(ErrorCode.UNKNOWN, why), reply_to=m) for m, why in zip(messages, reasons)])
    assert list(seen[0][1]["outcome"][:3]) == ["dropout", "dropout", "error"]
    arrays = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    assert len(list(s.configure_train(2, arrays, ConfigRecord(), FakeGrid(4)))) == 4  # alone, it goes on
    s.stop_on_lost_node = True  # the launcher will start a new Flower run: send no more work to this pool
    with pytest.raises(RayNodeLost):
        s.configure_train(2, arrays, ConfigRecord(), FakeGrid(4))


def test_after_its_first_round_a_run_goes_on_with_the_nodes_still_connected(strategy):
    s, seen, _ = strategy
    s.placement.wait_s = 0.0  # sim.node_wait_s
    arrays = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    assert len(list(s.configure_train(1, arrays, ConfigRecord(), FakeGrid(4)))) == 4
    messages = list(s.configure_train(2, arrays, ConfigRecord(), FakeGrid(3)))  # one SuperNode died
    assert len(messages) == 3
    s.aggregate_train(2, [_reply(m, None, 0, outcome="dropout") for m in messages])
    frame = seen[0][1]
    assert list(frame["outcome"]) == ["dropout"] * 4
    assert frame["error"].iloc[-1] == "no free slot this round"


def test_a_non_finite_update_is_an_error_not_aggregated(strategy):
    s, seen, _ = strategy
    base = {"w": np.zeros(2, np.float32)}
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(base["w"])}), ConfigRecord(), FakeGrid(4)))
    replies = [_reply(messages[0], {"w": np.ones(2, np.float32)}, 2),
               _reply(messages[1], {"w": np.array([np.nan, 1.0], np.float32)}, 2)]
    arrays, _ = s.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), 1.0)
    assert list(seen[0][1]["outcome"][:2]) == ["ok", "error"]


def test_a_dp_round_releases_one_clipped_noised_model_and_records_what_it_spent():
    population = draw_population(40, seed=0).assign(availability=1.0)
    sampler = PoissonSampler(population["availability"].to_numpy(), 4, 0)
    mechanism = DPFedAvg(sampler, Ledger(0.0, sampler.rate, 40, 1e-3), clip=1.0, seed=0)  # noise 0: exact values
    seen = []
    s = FleetFedAvg(population, mechanism, {"lr": 0.1}, deadline_ms=1000.0,
                    on_devices=lambda r, frame, available, extra: seen.append((frame, extra)))
    base = {"w": np.zeros(2, np.float32)}
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(base["w"])}), ConfigRecord(),
                                      FakeGrid(mechanism.slots)))
    replies = [_reply(messages[0], {"w": np.array([3.0, 4.0], np.float32)}, 1),  # norm 5: clipped to 1
               _reply(messages[1], {"w": np.array([0.3, 0.4], np.float32)}, 9)]  # within the norm; not weighted
    arrays, _ = s.aggregate_train(1, replies)
    # the sum of the clipped updates over the expected cohort (4), not over the 2 that arrived
    np.testing.assert_allclose(arrays["w"].numpy(), (np.array([0.6, 0.8]) + np.array([0.3, 0.4])) / 4, rtol=1e-6)
    frame, extra = seen[0]
    assert frame["update_norm"].iloc[:2].tolist() == pytest.approx([5.0, 0.5])
    assert extra["contributed"] == 2 and extra["unclipped_fraction"] == 0.5 and extra["clip_norm"] == 1.0
    assert extra["noise_std"] == 0.0 and math.isinf(extra["epsilon"]) and extra["sampling_rate"] == sampler.rate


def test_the_round_keeps_the_host_timings_of_its_busiest_worker():
    timings = [{"worker": 1, "call": 1.0, "traced": 0.5}, {"worker": 2, "call": 1.5, "traced": 1.0},
               {"worker": 1, "call": 1.0, "traced": 0.25}]
    assert busiest_worker(timings) == {"call": 2.0, "traced": 0.75}
    assert busiest_worker([]) == {}
