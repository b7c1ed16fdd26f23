"""The ClientApps as Flower's simulation engine loads them, and the engine's dispatch made one pass per sweep.

Flower 1.41's simulation engine moves the ServerApp's messages to its workers in `add_messages_to_queue`
(flwr/server/superlink/fleet/vce/vce_api.py): every 0.1 s it asks the in-memory LinkState for each registered node's
next message, one `get_message_ins(node_id, limit=1)` per node, and each of those calls walks every message stored,
delivered or not, under the state's lock. A sweep is nodes x stored messages, and the simulation's nodes are its
slots, one per cohort member: at a cohort of 1,000 that is a million checks, 3.6-7 s of one core measured here, all
of it holding the GIL that the engine's workers, the reply thread and the ServerApp share (on 2 cores, a core taken
from the device work); at a cohort of 100, 0.02-0.05 s every 0.1 s. `next_messages` takes the same messages in
one pass over the store: at most one undelivered message per node per sweep (Flower's `limit=1`), the same expiry
and federation checks first (the state's own), each marked delivered under the state's lock as Flower's call marks
it. Flower offers no hook for the engine's dispatch, so the engine's function is replaced (`install`), and only
where the engine runs on Flower's in-memory LinkState: with any other state Flower's own loop runs.

The engine loads the ClientApp named in the app's pyproject in its own process before it starts dispatching
(`start_vce` loads it once to check it, then calls `run_api`, which starts the dispatch thread), so the simulation
names the ClientApps of this module, and importing it is where `install` runs: inside the engine's process only,
where `vce_api` is already loaded. Anywhere else (the Ray workers that import it to run a device, a SuperNode of the
Deployment Engine) importing it changes nothing and imports nothing more than the ClientApp itself.
"""

from __future__ import annotations

import sys
import threading
from queue import Queue

from flwr.app import Message

from client.app import app as clientapp
from client.secure import app as secure_clientapp

__all__ = ["clientapp", "secure_clientapp", "install", "next_messages", "add_messages_to_queue"]

VCE_API = "flwr.server.superlink.fleet.vce.vce_api"


def next_messages(state, nodes: dict[int, int]) -> list[Message]:
    """The next undelivered message of each node in `nodes` (one at most, the oldest), marked delivered: what one
    sweep of Flower's `add_messages_to_queue` takes from an in-memory LinkState, in one pass instead of one per node."""
    from flwr.supercore.date import now

    taken: dict[int, Message] = {}
    with state.lock:
        # Flower's call first drops what expired or left the federation, one message at a time; once for all here.
        state._check_stored_messages(set(state.message_ins_store))
        for message in state.message_ins_store.values():
            node = message.metadata.dst_node_id
            if node in nodes and node not in taken and message.metadata.delivered_at == "":
                taken[node] = message
        delivered_at = now().isoformat()
        for message in taken.values():
            message.metadata.delivered_at = delivered_at
    return list(taken.values())


def add_messages_to_queue(state, queue: Queue[Message], nodes_mapping: dict[int, int],
                          f_stop: threading.Event) -> None:
    """Flower's dispatch loop, same signature and pace (a sweep, then 0.1 s), each sweep one `next_messages`."""
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    if not isinstance(state, InMemoryLinkState):
        return _FLOWER_DISPATCH[0](state, queue, nodes_mapping, f_stop)
    while not f_stop.is_set():
        for message in next_messages(state, nodes_mapping):
            queue.put(message)
        f_stop.wait(0.1)


_FLOWER_DISPATCH: list = []  # Flower's own function, kept for states other than the in-memory one


def install() -> bool:
    """Swap the engine's dispatch loop for `add_messages_to_queue` where the engine is loaded; True if it was."""
    vce_api = sys.modules.get(VCE_API)
    if vce_api is None:
        return False
    if vce_api.add_messages_to_queue is not add_messages_to_queue:
        from logging import INFO

        from flwr.supercore import log

        _FLOWER_DISPATCH[:] = [vce_api.add_messages_to_queue]
        vce_api.add_messages_to_queue = add_messages_to_queue
        log(INFO, "EdgeFleet: the engine dispatches messages in one pass per sweep (simulation/engine.py)")
    return True


install()
