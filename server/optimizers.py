"""The server's optimizer: what turns each round's released average into the next global model.

Flower's own strategies do the step, on top of which the fleet strategies (server/strategy.py, server/secure.py)
add the emulated population, the deadline and the privacy mechanism:
- `fedavgm`: FedAvgM, the model moves by `server_lr` times the heavy-ball momentum (`server_momentum`) of the
  pseudo-gradient (previous model - average); `server_lr` 1 and momentum 0 is plain FedAvg;
- `fedadam`, `fedyogi`, `fedadagrad`: the adaptive optimizers of Reddi et al. 2021 ("Adaptive Federated
  Optimization"), each coordinate stepped by `server_lr` times the first moment (`server_momentum` is beta_1;
  FedAdagrad has none: the pseudo-gradient itself) over the root of the second (`server_beta2`, `server_tau`).
The optimizer acts on what the privacy mechanism released, so with DP it is post-processing.

Its state (momentum, or the two moments) is checkpointed beside the weights each round (edgefleet/results.py), so a
resumed run takes the same steps as one never stopped. Flower's adaptive optimizers correct their moments' bias with
the round number: the strategies pass the run's own round, numbered across resumes, never the resumed process's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgefleet.config import SimConfig, step_size

NAMES = ("fedavgm", "fedadam", "fedyogi", "fedadagrad")
# The checkpoint's names for the state (no weight name has a "/").
MOMENTUM, FIRST, SECOND = "momentum/", "m_t/", "v_t/"
STATE_PREFIXES = (MOMENTUM, FIRST, SECOND)


def server_lr(sim: SimConfig) -> float:
    return step_size(sim.server_optimizer, sim.server_lr)


def settings(sim: SimConfig) -> dict[str, float]:
    """The keyword arguments of the optimizer's Flower strategy (either API: they share the names)."""
    if sim.server_optimizer == "fedavgm":
        return {"server_learning_rate": server_lr(sim), "server_momentum": sim.server_momentum}
    # eta_l is the devices' learning rate, which Flower only logs; the devices get theirs in the job.
    adaptive = {"eta": server_lr(sim), "eta_l": 0.0, "tau": sim.server_tau}
    if sim.server_optimizer == "fedadagrad":  # Flower's FedAdagrad keeps no first moment (beta_1 = 0)
        return adaptive
    return {**adaptive, "beta_1": sim.server_momentum, "beta_2": sim.server_beta2}


def message_strategy(name: str) -> type:
    """The optimizer's strategy in Flower's Message API (the ServerApp's own rounds)."""
    from flwr.serverapp import strategy

    return {"fedavgm": strategy.FedAvgM, "fedadam": strategy.FedAdam, "fedyogi": strategy.FedYogi,
            "fedadagrad": strategy.FedAdagrad}[name]


def legacy_strategy(name: str) -> type:
    """The optimizer's strategy in Flower's legacy API (the SecAgg+ workflow's rounds)."""
    from flwr.server import strategy

    return {"fedavgm": strategy.FedAvgM, "fedadam": strategy.FedAdam, "fedyogi": strategy.FedYogi,
            "fedadagrad": strategy.FedAdagrad}[name]


def _named(prefix: str, value: Any) -> dict[str, np.ndarray]:
    items = value.items() if isinstance(value, dict) else enumerate(value or [])
    return {f"{prefix}{k}": np.asarray(v) for k, v in items}


def state_of(strategy: Any) -> dict[str, np.ndarray]:
    """The optimizer's state to checkpoint: FedAvgM's momentum, or the adaptive optimizers' two moments (lists in
    the legacy API, dicts by weight name in the Message API)."""
    return {**_named(MOMENTUM, getattr(strategy, "momentum_vector", None)),
            **_named(FIRST, getattr(strategy, "m_t", None)), **_named(SECOND, getattr(strategy, "v_t", None))}


def restore(strategy: Any, state: dict[str, np.ndarray], by_name: bool) -> None:
    """Put a checkpoint's state back (`by_name`: the Message API's dicts, else the legacy API's lists)."""
    for prefix, attr in ((MOMENTUM, "momentum_vector"), (FIRST, "m_t"), (SECOND, "v_t")):
        found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not found:
            continue
        if by_name and attr != "momentum_vector":
            setattr(strategy, attr, found)
        else:
            setattr(strategy, attr, [found[k] for k in sorted(found, key=int)])
