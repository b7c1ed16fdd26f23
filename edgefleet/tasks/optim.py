"""The optimizers a device runs on a task's shared weights (numpy, like the rest of the on-device code):
`sim.local_optimizer` picks one."""

from __future__ import annotations

import numpy as np

from edgefleet.tasks.base import FederatedTask, Params


class Adam:
    """Adam over the shared head, its moments on the device for one round (they cost 2x the head's memory)."""

    state_copies = 2  # the moments: arrays the size of the trained weights, held for the round

    def __init__(self, params: Params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            params[k] -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


class SGD:
    """Plain gradient steps: no state, and an update that keeps the gradient's size and direction. Adam's first
    step is lr x sign(gradient) whatever the gradient, so a device with a handful of examples (one step a round)
    sends a sign vector of fixed norm; averaged over a cohort that is a majority vote, not a gradient. SGD's updates
    average to the cohort's gradient, which is what FedAvg with a server optimizer (Reddi et al. 2021) and DP-FedAvg's
    clipping to the update norms' quantile (McMahan et al. 2018) assume."""

    state_copies = 0

    def __init__(self, params: Params, lr: float):
        self.lr = lr

    def step(self, params: Params, grads: Params) -> None:
        for k, g in grads.items():
            params[k] -= self.lr * g


LOCAL_OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def local_optimizer(name: str, params: Params, lr: float) -> Adam | SGD:
    """The device's optimizer `name` (sim.local_optimizer) over `params`."""
    return LOCAL_OPTIMIZERS[name](params, lr)


def optimizer_name(configured: str | None, task: FederatedTask) -> str:
    """The optimizer a run's devices use: `sim.local_optimizer` when set, else the task's own."""
    return configured or task.local_optimizer


def task_lr(local_training: dict[str, float], name: str) -> float:
    """A task's own learning rate for the optimizer `name` (FederatedTask.local_training: `lr` is Adam's)."""
    return local_training["lr" if name == "adam" else f"{name}_lr"]


def state_copies(name: str) -> int:
    """Arrays the size of the trained weights the optimizer holds through the round (for the memory models)."""
    return LOCAL_OPTIMIZERS[name].state_copies
