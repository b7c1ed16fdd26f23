"""Federated averaging over an emulated device population, through the hooks of the Flower strategy that is the
server's optimizer (server/optimizers.py: FedAvgM, FedAdam, FedYogi or FedAdagrad).

Which devices take part is chosen each round by the privacy mechanism's sampler (server/samplers/), so the population
costs nothing per round, however large it is; which node runs each is the placement's (server/placement.py: any
execution slot, or the SuperNode that holds the device's data). `configure_train` sends each node its device's
profile; `aggregate_train` applies the round deadline on the virtual
clock, hands the updates of devices that finished in time to the privacy mechanism (server/privacy/: FedAvg
weighted by examples, or DP-FedAvg's clipped, noised release), lets the optimizer's strategy average what it returns
and take its step, and hands every device's outcome to the recorder.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvgM
from flwr.serverapp.strategy.fedopt import FedOpt

from compression.runtime.update_codec import decode_update
from server.optimizers import message_strategy
from server.placement import Placement, Slots
from server.privacy.base import PrivacyMechanism

PROFILE = ("budget_bytes", "cpu_factor", "down_bps", "up_bps", "dropout")


def device_config(population: pd.DataFrame, device: int, server_round: int, job: dict) -> dict:
    """What one device is told in a round: the job, its identity and its profile."""
    profile = population.iloc[int(device)]
    return {**job, "server-round": server_round, "device": int(device),
            **{k.replace("_", "-"): profile[k].item() for k in PROFILE}}


def busiest_worker(replies: list[dict[str, float]]) -> dict[str, float]:
    """The host timings (client/app.py) of the worker process whose ClientApp calls took longest in the round, summed
    over its calls: the devices' share of the round's critical path."""
    workers: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for timing in replies:
        for part, seconds in timing.items():
            if part != "worker":
                workers[int(timing.get("worker", 0))][part] += seconds
    return dict(max(workers.values(), key=lambda w: w["call"], default={}))


def in_dtype_of(base: dict[str, np.ndarray], key: str, value: np.ndarray) -> np.ndarray:
    """`value` in the dtype of the weights it replaces. Flower's adaptive optimizers step in float64 (their
    bias-corrected step size is a numpy float64), and the model the devices get must stay as deployed: twice the
    bytes down, and twice the memory of the device's work, otherwise."""
    return np.asarray(value, dtype=base[key].dtype)


def left_out(r: int, devices: list[tuple[int, str]]) -> list[dict]:
    """The rows of devices sampled but sent no work: (device, why)."""
    return [{"round": r, "device": d, "outcome": "dropout", "error": why} for d, why in devices]


# Flower's errors for a node that went away (its SuperNode stopped answering the SuperLink's heartbeat) or a message
# lost with it: the device left the round, as a phone that loses its connection does.
GONE = (ErrorCode.NODE_UNAVAILABLE, ErrorCode.MESSAGE_UNAVAILABLE, ErrorCode.REPLY_MESSAGE_UNAVAILABLE)
# A Ray worker that dies (its node lost, or its process killed) takes its actor with it: Flower's simulation engine
# replies for the device it was running with an error of unknown code that names Ray's exception (ActorDiedError,
# or ActorUnavailableError until Ray has declared a lost node dead). The device's host went away: a dropout, not a
# failure of the device's work.
RAY_GONE = ("ray.exceptions.ActorDiedError", "ray.exceptions.ActorUnavailableError", "ray.exceptions.RayActorError")


def ray_node_gone(error: Error) -> bool:
    return error.code == ErrorCode.UNKNOWN and any(k in error.reason for k in RAY_GONE)


def gone(error: Error) -> bool:
    return error.code in GONE or ray_node_gone(error)


class RayNodeLost(RuntimeError):
    """Raised to end a Flower run whose Ray actor pool holds a dead actor (simulation/run.py starts a new one)."""


class _Fleet:
    """The fleet's rounds over a Flower strategy (the class after this one in a subclass's bases)."""

    def __init__(self, population: pd.DataFrame, mechanism: PrivacyMechanism, job: dict, deadline_ms: float,
                 on_devices: Callable[[int, pd.DataFrame, int, dict], None], round_offset: int = 0,
                 placement: Placement | None = None, **optimizer: float):
        self.slots = mechanism.slots
        self.placement = placement or Slots(self.slots)
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=self.slots,
                         min_available_nodes=self.slots, **optimizer)
        self.population, self.mechanism, self.job = population, mechanism, job
        self.deadline_ms, self.on_devices, self.round_offset = deadline_ms, on_devices, round_offset
        self._sent: dict[int, int] = {}
        self._unsent: list[tuple[int, str]] = []
        self._messages: dict[int, Message] = {}
        self._base: dict[str, np.ndarray] = {}
        # Host wall seconds of the last round's steps here, and of its busiest worker (for the round's breakdown).
        self.wall: dict[str, float] = {}
        self.worker_wall: dict[str, float] = {}
        self._sent_at = 0.0
        # The launcher starts a new Flower run once devices were lost with a Ray worker: this one then sends no more
        # work to its pool, which still holds the dead actor (docs/simulation.md, On a Ray cluster).
        self.stop_on_lost_node = False
        self._lost_node = False

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        started = time.perf_counter()
        r = server_round + self.round_offset
        if self._lost_node and self.stop_on_lost_node:
            raise RayNodeLost(f"devices were lost with a Ray worker in round {r - 1}; this run ends after it")
        devices, self._available = self.mechanism.sampler.sample(r)
        self._base = {k: a.numpy() for k, a in arrays.items()}
        if isinstance(self, FedOpt):  # what the optimizers' own configure_train does
            self.current_arrays = dict(self._base)
        elif self.current_arrays is None:
            self.current_arrays = arrays
        self._sent, self._unsent = self.placement.place(grid, devices, server_round)
        messages = [Message(RecordDict({"arrays": arrays,
                                    "config": ConfigRecord({**dict(config),
                                                            **device_config(self.population, device, r, self.job)})}),
                        node, MessageType.TRAIN)
                for node, device in self._sent.items()]
        self._messages = dict(zip(self._sent, messages))
        self._sent_at = time.perf_counter()
        self.wall = {"configure": self._sent_at - started}
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        received = time.perf_counter()
        r = server_round + self.round_offset
        rows, accepted, timings = [], [], []
        answered = set()
        # A reply names the message it answers (Flower gives a message its id when it is sent): an error the
        # SuperLink writes for a node that went away comes from the SuperLink, not from that node.
        sent_to = {m.metadata.message_id: node for node, m in self._messages.items() if m.metadata.message_id}
        for msg in replies:
            node = sent_to.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)
            answered.add(node)
            row = {"round": r, "device": self._sent.get(node, -1)}
            if msg.has_error():
                row.update(outcome="dropout" if gone(msg.error) else "error", error=msg.error.reason[:500])
                self._lost_node = self._lost_node or ray_node_gone(msg.error)
            else:
                if "wall" in msg.content:
                    timings.append(dict(msg.content["wall"]))
                metrics = dict(msg.content["metrics"])
                row.update(metrics, **dict(msg.content["outcome"]))
                if row["outcome"] == "ok" and metrics["virtual_ms"] > self.deadline_ms:
                    row["outcome"] = "straggler"
                elif row["outcome"] == "ok" and "arrays" in msg.content:
                    update = {k: a.numpy() for k, a in msg.content["arrays"].items()}
                    weights = decode_update(update, self._base)
                    if all(np.isfinite(v).all() for v in weights.values()):
                        msg.content["arrays"] = ArrayRecord({k: Array(v) for k, v in weights.items()})
                        accepted.append((row, msg))
                    else:  # never let one device poison the model
                        row.update(outcome="error", error="non-finite update")
            rows.append(row)
        for node, device in self._sent.items():  # a node that never answered: the device left the round
            if node not in answered:
                rows.append({"round": r, "device": device, "outcome": "dropout", "error": "no reply in the round"})
        rows += left_out(r, self._unsent)
        # In device order, not in the order the replies arrived: a float32 sum depends on its order, and a run is
        # reproducible from its config on one node or several.
        accepted.sort(key=lambda a: a[0]["device"])
        replies, extra = self.mechanism.aggregate(self._base, accepted)
        # The run's round, numbered across resumes: the adaptive optimizers correct their moments' bias with it.
        aggregated = super().aggregate_train(r, replies) if replies else (None, None)
        if aggregated[0] is not None:
            aggregated = (ArrayRecord({k: Array(in_dtype_of(self._base, k, a.numpy()))
                                       for k, a in aggregated[0].items()}), aggregated[1])
        self.wall.update(devices=received - self._sent_at, aggregate=time.perf_counter() - received)
        self.worker_wall = busiest_worker(timings)
        self.on_devices(r, pd.DataFrame(rows), self._available, extra)
        return aggregated


class FleetFedAvg(_Fleet, FedAvgM):
    """The fleet over FedAvgM: `server_lr` 1 and `server_momentum` 0 is plain FedAvg."""

    def __init__(self, population: pd.DataFrame, mechanism: PrivacyMechanism, job: dict, deadline_ms: float,
                 on_devices: Callable[[int, pd.DataFrame, int, dict], None], round_offset: int = 0,
                 server_lr: float = 1.0, server_momentum: float = 0.0, placement: Placement | None = None):
        super().__init__(population, mechanism, job, deadline_ms, on_devices, round_offset, placement,
                         server_learning_rate=server_lr, server_momentum=server_momentum)


def fleet_strategy(optimizer: str, population: pd.DataFrame, mechanism: PrivacyMechanism, job: dict,
                   deadline_ms: float, on_devices: Callable[[int, pd.DataFrame, int, dict], None],
                   round_offset: int, placement: Placement | None = None, **settings: float) -> _Fleet:
    """The fleet over the named server optimizer (server/optimizers.py), with its Flower strategy's settings;
    `placement` None: the nodes are slots (server/placement.py)."""
    base = message_strategy(optimizer)
    kind = type(f"Fleet{base.__name__}", (_Fleet, base), {"__doc__": f"The fleet over Flower's {base.__name__}."})
    return kind(population, mechanism, job, deadline_ms, on_devices, round_offset, placement, **settings)
