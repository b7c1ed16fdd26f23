"""The simulation engine's dispatch (simulation/engine.py) takes, sweep by sweep, the messages Flower's own takes."""

import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, RecordDict
from flwr.common.constant import NOOP_FLWR_AID
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

from simulation import engine


def fleet_state(n_nodes: int, dsts: list[int], short_lived: int):
    """Flower's in-memory LinkState with `n_nodes` registered as the engine registers them and one message pushed by
    the ServerApp's grid to node index `d` for each `d` in `dsts` (in that order), the message to `short_lived`
    with a TTL that has passed by the first sweep. Returns (state, nodes mapping)."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    state = factory.state()
    run_id = state.create_run(None, None, None, {}, NOOP_FEDERATION_ID, None, NOOP_FLWR_AID, "serverapp")
    nodes = vce_api._register_nodes(n_nodes, factory)
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = run_id, 1, 1
    grid = InMemoryGrid(factory)
    grid.set_run(state.get_run_info(run_ids=[run_id])[0])
    ids = list(nodes)
    messages = [grid.create_message(RecordDict({"w": ArrayRecord({"i": Array(np.array([k], np.int64))})}), "train",
                                    ids[d], "", ttl=0.05 if d == short_lived else None) for k, d in enumerate(dsts)]
    assert len(list(grid.push_messages(messages))) == len(dsts)
    return state, nodes


def flower_sweep(state, nodes):
    """One sweep of Flower's `add_messages_to_queue`: its per-node calls, without its thread and pause."""
    return [m for node in nodes for m in state.get_message_ins(node_id=node, limit=1)]


def taken(messages) -> list[tuple[int, int]]:
    return sorted((m.metadata.dst_node_id, int(m.content["w"]["i"].numpy()[0])) for m in messages)


def test_each_sweep_takes_what_flowers_takes():
    # node 3 has three messages waiting, node 5 one that expires before the first sweep, nodes 30-39 none
    dsts = [*range(30), 3, 3]
    flower, flower_nodes = fleet_state(40, dsts, short_lived=5)
    ours, our_nodes = fleet_state(40, dsts, short_lived=5)
    # node ids are drawn at random per state: compare by position in the mapping
    position = {n: i for i, n in enumerate(our_nodes)}
    flower_position = {n: i for i, n in enumerate(flower_nodes)}
    time.sleep(0.1)
    for sweep in range(4):
        theirs, mine = flower_sweep(flower, flower_nodes), engine.next_messages(ours, our_nodes)
        assert sorted((position[n], k) for n, k in taken(mine)) == \
            sorted((flower_position[n], k) for n, k in taken(theirs)), sweep
        assert all(m.metadata.delivered_at != "" for m in mine)
        if sweep == 0:
            assert len(mine) == 29  # one each for 0-29 but the expired one
        elif sweep in (1, 2):
            assert [(position[n], k) for n, k in taken(mine)] == [(3, 29 + sweep)]
        else:
            assert mine == []


def test_install_swaps_the_engines_dispatch_where_the_engine_is_loaded(monkeypatch):
    # the engine's `run_api` must still look its dispatch up by this global name for the swap to take effect
    assert "add_messages_to_queue" in vce_api.run_api.__code__.co_names

    def flowers(state, queue, nodes_mapping, f_stop):  # stands for Flower's own, whichever is loaded now
        raise AssertionError("not called here")

    monkeypatch.setattr(vce_api, "add_messages_to_queue", flowers)
    monkeypatch.setattr(engine, "_FLOWER_DISPATCH", [])
    assert engine.install()
    assert vce_api.add_messages_to_queue is engine.add_messages_to_queue
    assert engine._FLOWER_DISPATCH == [flowers]
    assert engine.install() and engine._FLOWER_DISPATCH == [flowers]  # twice changes nothing


def test_other_states_get_flowers_own_dispatch(monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "_FLOWER_DISPATCH", [lambda *args: calls.append(args)])
    state, queue, nodes, stop = object(), object(), {1: 0}, object()
    engine.add_messages_to_queue(state, queue, nodes, stop)
    assert calls == [(state, queue, nodes, stop)]


def test_the_dispatch_loop_queues_each_message_once_and_stops():
    import threading
    from queue import Queue

    state, nodes = fleet_state(20, [*range(20), 7], short_lived=-1)
    queue, stop = Queue(), threading.Event()
    thread = threading.Thread(target=engine.add_messages_to_queue, args=(state, queue, nodes, stop))
    thread.start()
    got = [queue.get(timeout=5) for _ in range(21)]
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and queue.empty()
    assert sorted(int(m.content["w"]["i"].numpy()[0]) for m in got) == list(range(21))


@pytest.fixture(autouse=True)
def _restore_task_identity():
    saved = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = saved
