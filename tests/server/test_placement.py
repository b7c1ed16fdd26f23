"""Which node runs which device: slots that wait for a SuperNode that went away once, not every round; devices that
own their data, met by a first message and offline when their SuperNode is not connected."""

import time

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from edgefleet.protocol import BUNDLE_ARTIFACT, BUNDLE_MODEL, DEVICE
from server.placement import NO_SLOT, OFFLINE, OwnDevices, Slots, deployment_bundle


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


class Grid:
    def __init__(self, nodes, devices=None):
        self.nodes, self.devices, self.asked = list(nodes), devices or {}, []

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for m in messages:
            node = m.metadata.dst_node_id
            self.asked.append(node)
            assert m.content[BUNDLE_MODEL][BUNDLE_ARTIFACT].numpy().tobytes() == b"model"  # the model rides along
            reply = Message(RecordDict({DEVICE: ConfigRecord({DEVICE: self.devices[node]})}), reply_to=m)
            reply.metadata.__dict__["_src_node_id"] = node
            replies.append(reply)
        return replies


def test_slots_wait_once_for_a_node_that_went_away():
    slots = Slots(3, wait_s=0.3)
    sent, unsent = slots.place(Grid([1, 2, 3]), np.array([7, 8, 9]), 1)
    assert sent == {1: 7, 2: 8, 3: 9} and unsent == []
    grid = Grid([1, 3])  # node 2 died
    started = time.monotonic()
    sent, unsent = slots.place(grid, np.array([4, 5, 6]), 2)
    assert time.monotonic() - started >= 0.3 and sent == {1: 4, 3: 5} and unsent == [(6, NO_SLOT)]
    started = time.monotonic()
    slots.place(grid, np.array([4, 5, 6]), 3)
    assert time.monotonic() - started < 0.3  # not waited for again
    grid.nodes.append(9)  # a SuperNode joins again: used again
    assert len(slots.place(grid, np.array([4, 5, 6]), 4)[0]) == 3


def test_own_devices_are_met_once_and_offline_when_not_connected():
    grid = Grid([10, 11, 12], devices={10: 0, 11: 1, 12: 2})
    own = OwnDevices(deployment_bundle(b"model", "{}"), expected=3)
    sent, offline = own.place(grid, np.array([2, 0]), 1)
    assert sent == {12: 2, 10: 0} and offline == [] and sorted(grid.asked) == [10, 11, 12]
    grid.nodes.remove(11)
    sent, offline = own.place(grid, np.array([1, 2]), 2)
    assert sent == {12: 2} and offline == [(1, OFFLINE)]
    assert sorted(grid.asked) == [10, 11, 12]  # nobody met twice
    grid.nodes.append(13)  # device 1's SuperNode back, as a new node
    grid.devices[13] = 1
    sent, _ = own.place(grid, np.array([1]), 3)
    assert sent == {13: 1}
