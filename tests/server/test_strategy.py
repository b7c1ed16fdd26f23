"""FleetFedAvg through Flower's hooks: who is asked, what is averaged, and what is recorded."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from compression.runtime.update_codec import encode_update
from server.strategy import DeviceSampler, FleetFedAvg
from simulation.population import draw_population


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


def test_sampler_draws_available_devices_reproducibly():
    availability = np.where(np.arange(1000) % 2 == 0, 0.9, 0.0)  # odd devices are never available
    sampler = DeviceSampler(availability, cohort=50, seed=7)
    chosen, available = sampler.sample(3)
    assert len(chosen) == 50 and len(set(chosen)) == 50 and (chosen % 2 == 0).all()
    assert 400 < available < 500
    assert (sampler.sample(3)[0] == chosen).all() and not (sampler.sample(4)[0] == chosen).all()
    few = DeviceSampler(np.full(10, 0.3), cohort=8, seed=0).sample(1)[0]
    assert len(few) < 8  # never more than the available devices


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
    s = FleetFedAvg(population, DeviceSampler(population["availability"].to_numpy(), 4, 0), {"lr": 0.1},
                    deadline_ms=1000.0, on_devices=lambda r, frame, available, _: seen.append((r, frame, available)),
                    round_offset=2)
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
    assert sorted(frame["outcome"]) == ["dropout", "error", "error", "error"]  # three never answered
    assert (frame.loc[frame["outcome"] == "error", "error"] == "no reply").all()


def test_a_non_finite_update_is_an_error_not_aggregated(strategy):
    s, seen, _ = strategy
    base = {"w": np.zeros(2, np.float32)}
    messages = list(s.configure_train(1, ArrayRecord({"w": Array(base["w"])}), ConfigRecord(), FakeGrid(4)))
    replies = [_reply(messages[0], {"w": np.ones(2, np.float32)}, 2),
               _reply(messages[1], {"w": np.array([np.nan, 1.0], np.float32)}, 2)]
    arrays, _ = s.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), 1.0)
    assert list(seen[0][1]["outcome"][:2]) == ["ok", "error"]
