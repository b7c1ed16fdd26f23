"""Turns each round's device outcomes and the global evaluation into result rows (edgefleet/results.py)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from flwr.app import ArrayRecord, MetricRecord

from edgefleet.results import OUTCOMES, WALL_PARTS, Results
from edgefleet.tasks.base import Metric
from server.optimizers import state_of

EMA = "ema/"  # the checkpoint's names for the released average (no weight name has a "/")


def round_row(r: int, devices: pd.DataFrame, available: int, deadline_s: float, metrics: dict, wall_s: float,
              device_metrics: Sequence[Metric]) -> dict:
    """One round's row: outcome counts, the virtual round time, traffic, the global metrics (`metrics`, the task's
    evaluation) and the mean of each of the task's device metrics over the devices that finished."""
    counts = devices["outcome"].value_counts()
    ok = devices[devices["outcome"] == "ok"]
    replied = devices[devices["outcome"].isin(["ok", "straggler"])]
    row = {"round": r, "sampled": len(devices), "available": available,
           **{o: int(counts.get(o, 0)) for o in OUTCOMES},
           "fallback": int((ok.get("plan", pd.Series(dtype=str)) != "full").sum()),
           # Round time on the virtual clock: the slowest device inside the deadline (the deadline if any was late).
           "round_virtual_s": float(min(replied["virtual_ms"].max() / 1e3, deadline_s)) if len(replied) else 0.0,
           "deadline_s": deadline_s, "wall_s": wall_s,
           "bytes_up": int(devices.get("bytes_up", pd.Series(dtype=float)).fillna(0).sum()),
           "bytes_down": int(devices.get("bytes_down", pd.Series(dtype=float)).fillna(0).sum()),
           "train_loss": float(ok["loss"].mean()) if len(ok) and "loss" in ok else float("nan"),
           **{m.round_key: float(ok[m.key].mean()) if len(ok) and m.key in ok else float("nan")
              for m in device_metrics}}
    row.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "users"})
    row.update({f"full_{k}": float(v) for k, v in metrics.get("full", {}).items()})
    return row


def wall_breakdown(wall_s: float, server: dict[str, float], worker: dict[str, float], evaluate_s: float,
                   write_s: float) -> dict[str, float]:
    """The round's wall time by part (edgefleet/results.py WALL_PARTS) as `wall_<part>_s` columns. `server`: the
    strategy's steps (configure, devices: the wait for the replies, aggregate); `worker`: the busiest worker's summed
    ClientApp calls (`call`) and their parts. The parts are non-negative and add up to `wall_s`."""
    device = {p: float(worker.get(p, 0.0)) for p in ("encode", "traced", "rerun", "fork")}
    call = max(float(worker.get("call", 0.0)), sum(device.values()))
    parts = {"configure": server.get("configure", 0.0), "messaging": max(0.0, server.get("devices", 0.0) - call),
             **device, "client": call - sum(device.values()), "aggregate": server.get("aggregate", 0.0),
             "evaluate": evaluate_s, "write": write_s}
    spent = sum(parts.values())
    if spent > wall_s > 0:  # clocks of different processes: never claim more than the round took
        parts = {k: v * wall_s / spent for k, v in parts.items()}
    parts["other"] = max(0.0, wall_s - sum(parts.values()))
    return {f"wall_{p}_s": float(parts[p]) for p in WALL_PARTS}


class Released:
    """The model a run releases after each round: the server's model, or with `decay` > 0 an exponential moving
    average of the server's models (Polyak averaging, as production federated language models release: Xu et al.
    2023). The devices keep training from the server's model; the average only smooths what is evaluated and
    shipped, which under a server momentum swings from round to round. It is bias-corrected as Adam's moments are
    (round 1 releases round 1's model, never a pull back to the deployed one), and it reads nothing but the server's
    models, so with DP it is post-processing and costs no privacy. Its state is checkpointed under `EMA` names."""

    def __init__(self, decay: float, state: dict[str, np.ndarray] | None = None):
        self.decay = decay
        self.average = {k[len(EMA):]: v for k, v in (state or {}).items() if k.startswith(EMA)} or None

    def __call__(self, params: dict[str, np.ndarray], r: int) -> dict[str, np.ndarray]:
        """The model released after round `r` of the run (0: the deployed one) from the server's `params`."""
        if not self.decay or r == 0:
            return params
        step = (1 - self.decay) / (1 - self.decay ** r)  # 1 at round 1
        average = self.average or params
        self.average = {k: (average[k] + step * (v - average[k])).astype(v.dtype) for k, v in params.items()}
        return self.average

    def state(self) -> dict[str, np.ndarray]:
        return {f"{EMA}{k}": v for k, v in (self.average or {}).items()}


class RoundRecorder:
    def __init__(self, results: Results, population: pd.DataFrame, evaluate: Callable[[dict], dict],
                 deadline_s: float, round_offset: int, device_metrics: Sequence[Metric],
                 released: Released | None = None):
        self.results, self.population, self.evaluate_params = results, population, evaluate
        self.released = released or Released(0.0)
        self.device_metrics = tuple(device_metrics)
        self.deadline_s, self.round_offset = deadline_s, round_offset
        self._devices: pd.DataFrame | None = None
        self._available, self._extra = 0, {}
        self._clock = time.perf_counter()
        self._write_s = 0.0  # writing the last round's results, which happens in the next round's wall time
        self.strategy = None  # set by the ServerApp: its server-optimizer state is checkpointed with the weights

    def on_devices(self, r: int, devices: pd.DataFrame, available: int, extra: dict | None = None) -> None:
        """The round's device outcomes, and what else the strategy knows of it (privacy spent, clipping norm). A round
        may have none: no device of a small fleet was available."""
        if devices.empty:
            devices = pd.DataFrame({"round": pd.Series([], dtype=np.int64), "device": pd.Series([], dtype=np.int64),
                                    "outcome": pd.Series([], dtype=object)})
        profile = self.population.iloc[devices["device"].clip(lower=0).to_numpy()]
        devices = devices.assign(tier=profile["tier"].to_numpy(), budget_bytes=profile["budget_bytes"].to_numpy(),
                                 cpu_factor=profile["cpu_factor"].to_numpy())
        self._devices, self._available, self._extra = devices, available, dict(extra or {})

    def evaluate(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        """Flower's `evaluate_fn`: round 0 is the deployed model; every later call commits its round."""
        params = {k: a.numpy() for k, a in arrays.items()}
        if server_round == 0 and self.results.start() is not None:  # resumed: the average came with the checkpoint
            return MetricRecord(_scalars(self.results.start()))
        started = time.perf_counter()
        r = server_round + self.round_offset
        metrics = self.evaluate_params(self.released(params, r if server_round else 0))
        evaluate_s = time.perf_counter() - started
        if server_round == 0:
            self.results.write_start(metrics)
            self._clock = time.perf_counter()
            return MetricRecord(_scalars(metrics))
        now = time.perf_counter()
        wall, self._clock = now - self._clock, now
        devices = self._devices if self._devices is not None else pd.DataFrame({"round": [], "outcome": []})
        row = {**round_row(r, devices, self._available, self.deadline_s, metrics, wall, self.device_metrics),
               **wall_breakdown(wall, getattr(self.strategy, "wall", {}), getattr(self.strategy, "worker_wall", {}),
                                evaluate_s, self._write_s),
               **self._extra}
        state = {**(state_of(self.strategy) if self.strategy else {}), **self.released.state()}
        self.results.commit_round(r, devices, row, params, state)
        self._devices, self._extra = None, {}
        self._write_s = time.perf_counter() - now
        return MetricRecord(_scalars(row))


def _scalars(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float, np.floating)) and np.isfinite(v)}
