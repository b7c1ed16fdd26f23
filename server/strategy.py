"""FedAvg (with optional server momentum: Flower's FedAvgM) over an emulated device population, through the
strategy's hooks.

Flower's nodes are the simulation's execution slots (one per cohort member); which device a slot emulates is
chosen each round by the server: devices are available with their profile's probability, and the cohort is a
uniform sample without replacement of the available ones. The population therefore costs nothing per round, however
large it is. `configure_train` sends each slot its device's profile; `aggregate_train` applies the round deadline
on the virtual clock, averages the updates of devices that finished in time (FedAvg, weighted by examples), and
hands every device's outcome to the recorder.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvgM
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from compression.update_codec import decode_update

PROFILE = ("budget_bytes", "cpu_factor", "down_bps", "up_bps", "dropout")


class DeviceSampler:
    """Who is available in a round, and the uniform cohort drawn from them; reproducible per (seed, round)."""

    def __init__(self, availability: np.ndarray, cohort: int, seed: int):
        self.availability, self.cohort, self.seed = availability, cohort, seed

    def sample(self, server_round: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, server_round, 0xA7A1])
        available = np.flatnonzero(rng.random(len(self.availability)) < self.availability)
        chosen = rng.choice(available, size=min(self.cohort, len(available)), replace=False)
        return np.sort(chosen), len(available)


class FleetFedAvg(FedAvgM):
    def __init__(self, population: pd.DataFrame, sampler: DeviceSampler, job: dict, deadline_ms: float,
                 on_devices: Callable[[int, pd.DataFrame, int], None], round_offset: int = 0,
                 server_lr: float = 1.0, server_momentum: float = 0.0):
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=sampler.cohort,
                         min_available_nodes=sampler.cohort, server_learning_rate=server_lr,
                         server_momentum=server_momentum)
        self.population, self.sampler, self.job = population, sampler, job
        self.deadline_ms, self.on_devices, self.round_offset = deadline_ms, on_devices, round_offset
        self._sent: dict[int, int] = {}
        self._base: dict[str, np.ndarray] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        r = server_round + self.round_offset
        nodes, _ = sample_nodes(grid, self.sampler.cohort, self.sampler.cohort)
        devices, self._available = self.sampler.sample(r)
        self._base = {k: a.numpy() for k, a in arrays.items()}
        if self.current_arrays is None:  # what FedAvgM's own configure_train does
            self.current_arrays = arrays
        self._sent = {}
        messages = []
        for node, device in zip(sorted(nodes), devices):
            profile = self.population.iloc[int(device)]
            cfg = ConfigRecord({**dict(config), **self.job, "server-round": r, "device": int(device),
                                **{k.replace("_", "-"): profile[k].item() for k in PROFILE}})
            self._sent[node] = int(device)
            messages.append(Message(RecordDict({"arrays": arrays, "config": cfg}), node, MessageType.TRAIN))
        return messages

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        r = server_round + self.round_offset
        rows, accepted = [], []
        answered = set()
        for msg in replies:
            node = msg.metadata.src_node_id
            answered.add(node)
            row = {"round": r, "device": self._sent.get(node, -1)}
            if msg.has_error():
                row.update(outcome="error", error=msg.error.reason[:500])
            else:
                metrics = dict(msg.content["metrics"])
                row.update(metrics, **dict(msg.content["outcome"]))
                if row["outcome"] == "ok" and metrics["virtual_ms"] > self.deadline_ms:
                    row["outcome"] = "straggler"
                elif row["outcome"] == "ok" and "arrays" in msg.content:
                    update = {k: a.numpy() for k, a in msg.content["arrays"].items()}
                    weights = decode_update(update, self._base)
                    if all(np.isfinite(v).all() for v in weights.values()):
                        msg.content["arrays"] = ArrayRecord({k: Array(v) for k, v in weights.items()})
                        accepted.append(msg)
                    else:  # never let one device poison the model
                        row.update(outcome="error", error="non-finite update")
            rows.append(row)
        for node, device in self._sent.items():  # a node that never answered is a device lost in the round
            if node not in answered:
                rows.append({"round": r, "device": device, "outcome": "error", "error": "no reply"})
        self.on_devices(r, pd.DataFrame(rows), self._available)
        if not accepted:
            return None, None
        return super().aggregate_train(server_round, accepted)
