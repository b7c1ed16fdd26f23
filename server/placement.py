"""Which Flower node runs which sampled device in a round: the two placements of `sim.device_data`.

`Slots` ("shared"): Flower's nodes are execution slots (Ray workers in simulation, SuperNodes on the Deployment
Engine) and any of them can emulate any device, because they all read the fleet from the run directory; the
round's devices go to the connected nodes in order.

`OwnDevices` ("own", Deployment Engine only): each SuperNode is one device and holds only that device's data
(simulation/deploy.py writes `devices/<id>/`). The server does not know which node is which device until it asks:
its first message to a node it has not met is a query that carries the deployment (the model's bytes and the
run's config); the device stores them in its own directory and answers with its device id. A sampled device
whose SuperNode is not connected is offline this round, a dropout, as a phone that is switched off.
"""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from edgefleet.protocol import BUNDLE_ARTIFACT, BUNDLE_CONFIG, BUNDLE_DEPLOYMENT, BUNDLE_MODEL, DEVICE

# After its first round, a run waits this long (`sim.node_wait_s`) for a slot's node that went away before it goes on
# with those connected: on the Deployment Engine a SuperNode that died is not back, and its devices are dropouts
# until one replaces it.
NODE_WAIT_S = 30.0
NO_SLOT = "no free slot this round"
OFFLINE = "offline: no connected SuperNode holds this device's data"
# How long the server waits for devices to store the deployment and answer who they are.
GREET_TIMEOUT_S = 120.0


class Placement(Protocol):
    def place(self, grid: Grid, devices: np.ndarray, server_round: int) -> tuple[dict[int, int], list[tuple[int, str]]]:
        """(node -> device it runs, [(device left out, why)]) for this round's sampled `devices`."""


def connected_nodes(grid: Grid, slots: int, wait_s: float | None, wait_for: int | None = None) -> list[int]:
    """Up to `slots` connected nodes, waiting for `wait_for` (default: `slots`) of them at most `wait_s` (None: as
    long as it takes)."""
    wait_for = slots if wait_for is None else wait_for
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while len(nodes := sorted(grid.get_node_ids())) < wait_for and (deadline is None or time.monotonic() < deadline):
        time.sleep(1.0)
    return nodes[:slots]


def assign(nodes: list[int], devices: np.ndarray) -> tuple[dict[int, int], list[int]]:
    """Devices onto execution slots in order; (node -> device, devices left without a slot)."""
    nodes = sorted(nodes)
    return {n: int(d) for n, d in zip(nodes, devices)}, [int(d) for d in devices[len(nodes):]]


class Slots:
    """Any node runs any device. The first round waits for every slot (the SuperNodes joining); a later round with
    fewer nodes connected than the last waits at most `wait_s` for the missing ones, then goes on with those
    connected, and later rounds expect only that many (a SuperNode that died is not waited for every round) until
    more join again."""

    def __init__(self, slots: int, wait_s: float = NODE_WAIT_S):
        self.slots, self.wait_s = slots, wait_s
        self.expected = slots  # the nodes a round waits for

    def place(self, grid: Grid, devices: np.ndarray, server_round: int) -> tuple[dict[int, int], list[tuple[int, str]]]:
        nodes = connected_nodes(grid, self.slots, None if server_round == 1 else self.wait_s, self.expected)
        self.expected = len(nodes)
        sent, unsent = assign(nodes, devices)
        return sent, [(d, NO_SLOT) for d in unsent]


def deployment_bundle(model: bytes, sim_config: str) -> RecordDict:
    """What the server's first message to a device carries: the artifact and the run's config."""
    return RecordDict({BUNDLE_MODEL: ArrayRecord({BUNDLE_ARTIFACT: Array(np.frombuffer(model, dtype=np.uint8))}),
                       BUNDLE_DEPLOYMENT: ConfigRecord({BUNDLE_CONFIG: sim_config,
                                                        "sha256": hashlib.sha256(model).hexdigest()})})


class OwnDevices:
    """Each SuperNode is one device. `expected`: devices the first round waits for (all of them on loopback; on
    other hosts, as many as a round sends work to)."""

    def __init__(self, bundle: RecordDict, expected: int, greet_timeout_s: float = GREET_TIMEOUT_S):
        self.bundle, self.expected, self.greet_timeout_s = bundle, expected, greet_timeout_s
        self.node_of: dict[int, int] = {}  # device -> the node that last said it holds it

    def greet(self, grid: Grid) -> None:
        """Send the deployment to every connected node not met yet and learn which device each is."""
        met = set(self.node_of.values())
        new = [n for n in sorted(grid.get_node_ids()) if n not in met]
        if not new:
            return
        queries = [Message(self.bundle, node, MessageType.QUERY) for node in new]
        for reply in grid.send_and_receive(queries, timeout=self.greet_timeout_s):
            if reply.has_error():  # not reachable now: asked again next round
                continue
            self.node_of[int(reply.content[DEVICE][DEVICE])] = reply.metadata.src_node_id

    def place(self, grid: Grid, devices: np.ndarray, server_round: int) -> tuple[dict[int, int], list[tuple[int, str]]]:
        self.greet(grid)
        while server_round == 1 and len(self.node_of) < self.expected:
            time.sleep(1.0)
            self.greet(grid)
        connected = set(grid.get_node_ids())
        sent, offline = {}, []
        for d in devices:
            node = self.node_of.get(int(d))
            if node in connected:
                sent[node] = int(d)
            else:
                offline.append((int(d), OFFLINE))
        return sent, offline
