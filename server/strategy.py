"""FedAvg (with optional server momentum: Flower's FedAvgM) over an emulated device population, through the
strategy's hooks.

Flower's nodes are the simulation's execution slots (one per cohort member); which device a slot emulates is
chosen each round by the server: devices are available with their profile's probability, and the cohort is a
uniform sample without replacement of the available ones. The population therefore costs nothing per round, however
large it is. `configure_train` sends each slot its device's profile; `aggregate_train` applies the round deadline
on the virtual clock, averages the updates of devices that finished in time (FedAvg, weighted by examples), and
hands every device's outcome to the recorder. With differential privacy (server/privacy.py) the devices are
Poisson-sampled and the average is DP-FedAvg's: clipped updates, a fixed denominator, Gaussian noise, then momentum.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvgM
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from compression.runtime.update_codec import decode_update
from server.privacy import Ledger, Mechanism

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


def device_config(population: pd.DataFrame, device: int, server_round: int, job: dict) -> dict:
    """What one device is told in a round: the job, its identity and its profile."""
    profile = population.iloc[int(device)]
    return {**job, "server-round": server_round, "device": int(device),
            **{k.replace("_", "-"): profile[k].item() for k in PROFILE}}


def assign(nodes: list[int], devices: np.ndarray) -> tuple[dict[int, int], list[int]]:
    """Devices onto execution slots in order; (node -> device, devices left without a slot)."""
    nodes = sorted(nodes)
    return {n: int(d) for n, d in zip(nodes, devices)}, [int(d) for d in devices[len(nodes):]]


def left_out(r: int, devices: list[int]) -> list[dict]:
    return [{"round": r, "device": d, "outcome": "dropout", "error": "no free slot this round"} for d in devices]


class FleetFedAvg(FedAvgM):
    def __init__(self, population: pd.DataFrame, sampler: DeviceSampler, job: dict, deadline_ms: float,
                 on_devices: Callable[[int, pd.DataFrame, int, dict], None], round_offset: int = 0,
                 server_lr: float = 1.0, server_momentum: float = 0.0, slots: int | None = None,
                 mechanism: Mechanism | None = None, ledger: Ledger | None = None):
        self.slots = slots or sampler.cohort
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=self.slots,
                         min_available_nodes=self.slots, server_learning_rate=server_lr,
                         server_momentum=server_momentum)
        self.population, self.sampler, self.job = population, sampler, job
        self.deadline_ms, self.on_devices, self.round_offset = deadline_ms, on_devices, round_offset
        self.mechanism, self.ledger = mechanism, ledger
        self._sent: dict[int, int] = {}
        self._unsent: list[int] = []
        self._base: dict[str, np.ndarray] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        r = server_round + self.round_offset
        nodes, _ = sample_nodes(grid, self.slots, self.slots)
        devices, self._available = self.sampler.sample(r)
        self._base = {k: a.numpy() for k, a in arrays.items()}
        if self.current_arrays is None:  # what FedAvgM's own configure_train does
            self.current_arrays = arrays
        self._sent, self._unsent = assign(nodes, devices)
        return [Message(RecordDict({"arrays": arrays,
                                    "config": ConfigRecord({**dict(config),
                                                            **device_config(self.population, device, r, self.job)})}),
                        node, MessageType.TRAIN)
                for node, device in self._sent.items()]

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
        rows += left_out(r, self._unsent)
        if self.mechanism is None:
            self.on_devices(r, pd.DataFrame(rows), self._available, {})
            return super().aggregate_train(server_round, accepted) if accepted else (None, None)
        return self._private_aggregate(server_round, r, rows, accepted)

    def _private_aggregate(self, server_round: int, r: int, rows: list[dict],
                           accepted: list[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """DP-FedAvg: clip each update here (the server is trusted with them without SecAgg), release the noised
        average, then let FedAvgM's momentum act on the released model."""
        keys = list(self._base)
        total, within, norms = None, 0, {}
        for msg in accepted:
            delta = [msg.content["arrays"][k].numpy().astype(np.float64) - self._base[k] for k in keys]
            norm, unclipped = self.mechanism.clip_update(delta)
            norms[msg.metadata.src_node_id] = norm
            within += unclipped
            total = delta if total is None else [t + d for t, d in zip(total, delta)]
        release = self.mechanism.release(total, [self._base[k].shape for k in keys], within, len(accepted))
        self.ledger.spend()
        device_of = {d: n for n, d in self._sent.items()}
        for row in rows:
            if device_of.get(row["device"]) in norms:
                row["update_norm"] = norms[device_of[row["device"]]]
        extra = {k: v for k, v in release.items() if k != "mean"}
        self.on_devices(r, pd.DataFrame(rows), self._available, {**extra, **self.ledger.row()})
        if not accepted:  # nothing to move the model with; the (noise-only) release is not applied
            return None, None
        released = {k: (self._base[k] + m).astype(self._base[k].dtype) for k, m in zip(keys, release["mean"])}
        carrier = accepted[0]  # FedAvgM over one reply holding the release: Flower's momentum, on the noised model
        carrier.content["arrays"] = ArrayRecord({k: Array(v) for k, v in released.items()})
        return super().aggregate_train(server_round, [carrier])
