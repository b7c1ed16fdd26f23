"""What a task is to the rest of EdgeFleet: the interface every job asks instead of naming a task's metrics.

A task owns everything that depends on *what* the model does: loading and validating its data, which data the
server holds and which lives only on devices, the evaluation sets and metrics (their names, and which one is the
headline), the teacher's head and the on-device head (forward, loss, backward; what is shared and what stays
personal), and how a device's data is cut from the population. Compression, the Flower apps, the stress sweep,
reports and the dashboard stay task-agnostic by asking it.

Two levels, so that a task can be compressed before it can be federated:
- `Task`: data, metrics and their names (what `compress` and every report need).
- `FederatedTask`: also the fleet and the device's round (what `simulate` and `stress` need). Its device side
  (`DeviceSide`) runs in the worker processes and uses numpy only, like the rest of the phone's runtime.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from edgefleet.rundir import TASK, write_json

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class CentralSettings:
    """How a task's centralized oracle trains (`bench federation`, the `[federation]` oracle settings)."""

    epochs: int  # passes over every device's training examples; the best on validation is kept
    batch_size: int
    negatives: int  # uniform negatives per step, shared by the batch (tasks that rank)
    lr: float  # Adam
    seed: int
    checks: int = 1  # validations per epoch, evenly spaced; the best of all of them is kept


@dataclass(frozen=True)
class Metric:
    """One figure a task reports: its key in result files and what people call it."""

    key: str  # e.g. "hr@10": the column of round rows and the key of summaries and reports
    label: str  # e.g. "HR@10": what reports and the dashboard print
    round_key: str | None = None  # device metrics only: the round row's column holding their mean over devices


class Task(abc.ABC):
    """A task's data and metrics. Subclasses set the class attributes and implement `load`."""

    name: ClassVar[str]
    title: ClassVar[str]
    runtime: ClassVar[str]  # the artifact's `runtime` kind: which device runtime serves this task's models
    metrics: ClassVar[tuple[Metric, ...]]  # global metrics; the first is the headline
    # What one device measures on its own data; the first is the device's own view of the headline.
    device_metrics: ClassVar[tuple[Metric, ...]] = ()

    @property
    def headline(self) -> Metric:
        return self.metrics[0]

    def label(self, key: str) -> str:
        """The printed name of a metric key (the key itself when the task does not list it)."""
        return next((m.label for m in (*self.metrics, *self.device_metrics) if m.key == key), key)

    def describe(self) -> dict:
        """The run directory's task.json: what readers (the dashboard, reports) call each figure."""
        return {"name": self.name, "title": self.title, "headline": self.headline.key,
                "metrics": [_plain(m) for m in self.metrics],
                "device_metrics": [_plain(m) for m in self.device_metrics]}

    def write_description(self, run_dir: Path) -> None:
        write_json(Path(run_dir) / TASK, self.describe())

    @abc.abstractmethod
    def load(self, cfg: Any) -> Any:
        """The task's data (validated, split into what the server and the devices own, evaluation sets built)."""


class DeviceSide(abc.ABC):
    """A federated task's part of one device's round, inside the device's memory cap (numpy only).

    The generic round (client/device.py) samples dropouts, walks the fallback ladder or the adaptive variants
    under the cap, clocks the work and encodes the update; it asks this object for the task's part.
    """

    shared_keys: ClassVar[tuple[str, ...]]  # the weights devices train together and send back

    @abc.abstractmethod
    def personal_size(self, shared: Params) -> int:
        """Length of the personal vector a device keeps in its own storage (0: none)."""

    @abc.abstractmethod
    def local_data(self, fleet: Any, device: int, n_texts: int, negatives: int, rng: np.random.Generator) -> Any:
        """What the device holds this round; `.texts` are the indices of the texts it encodes."""

    @abc.abstractmethod
    def shapes(self, local: Any, tokens: int, batch: int, batch_div: int, personal: bool,
               residual: int = 0, state: int = 2) -> Any:
        """The device's dimensions for the memory model (compression/runtime/memory_model.py); `residual`: the
        width of the item vectors trained with the heads (MovieLens `sim.item_residual`; 0: none); `state`: the
        optimizer's state in copies of the trained weights (edgefleet/tasks/optim.py: Adam 2, SGD 0)."""

    @abc.abstractmethod
    def work(self, shared: Params, personal: np.ndarray, encoded: np.ndarray, local: Any, train: bool,
             job: Any, batch_div: int, model: Mapping[str, Any],
             rng: np.random.Generator) -> tuple[dict, Params | None, np.ndarray]:
        """Inference (and training when `train`) on the encoded texts: (measurements, new shared weights or None,
        new personal vector). `model` is the deployed artifact's config (e.g. its history window or tagging
        threshold). The measurements hold `infer_s`, `train_s`, `loss`, `examples` and one value per device metric
        of the task."""

    def reply(self, shared: Params, new: Params, out: dict) -> Params:
        """The new shared weights as the server receives them, from what `work` returned: as they are, unless the
        work trained only part of a weight (MovieLens: its own items' rows of the item residual)."""
        return new


class FederatedTask(Task):
    """A task that can be deployed to a fleet: its fleet data, its device side, its global evaluation."""

    device: ClassVar[DeviceSide]
    # The device's learning rates when sim.lr / sim.personal_lr are unset (`lr` Adam's, `sgd_lr` SGD's): a head over
    # 10-100 texts wants other steps than another task's.
    local_training: ClassVar[dict[str, float]]
    # The oracle's epochs and Adam rate when federation.oracle_epochs / oracle_lr are unset: it must be trained to
    # its best on validation, or federation is measured against a ceiling it can pass.
    oracle_training: ClassVar[dict[str, float]]
    # The device's optimizer when sim.local_optimizer is unset (edgefleet/tasks/optim.py).
    local_optimizer: ClassVar[str]

    @abc.abstractmethod
    def shared_params(self, tensors: Mapping[str, Any]) -> Params:
        """The shared weights as deployed, from the artifact's tensors."""

    def trained_params(self, tensors: Mapping[str, Any], sim: Any, fleet: Any) -> Params:
        """What devices train and send back under the settings `sim`, before the first round: the deployed shared
        weights, and what the settings add to them (MovieLens `sim.item_residual`)."""
        return self.shared_params(tensors)

    def check_artifact(self, config: Mapping[str, Any], data: Any) -> None:
        """Refuse (one DataError line) a model that cannot serve this data, e.g. trained on other labels."""

    @abc.abstractmethod
    def prepare_fleet(self, data: Any, sim: Any, fleet_dir: Path) -> None:
        """Cut every device's data from the population's owners and write what workers read into `fleet_dir`."""

    @abc.abstractmethod
    def load_fleet(self, fleet_dir: Path) -> tuple[Any, list[str]]:
        """(the fleet's data, the texts devices encode), as a worker process reads them once."""

    @abc.abstractmethod
    def write_shard(self, fleet_dir: Path, device: int, shard_dir: Path) -> None:
        """Write what one device holds, and nothing of any other device, into `shard_dir` in the format of
        `load_fleet`, as a fleet of that one device (its row 0): its own data, and the public texts it encodes."""

    @abc.abstractmethod
    def evaluator(self, model: Any, texts: list[str], data: Any) -> Callable[[Params], dict]:
        """The server's global evaluation of shared weights: a dict with one value per metric key. It also has
        `per_row(params, key)`: the headline's value per test row, whose mean is the headline (paired intervals
        of the federation bench resample these rows)."""

    @abc.abstractmethod
    def centralized(self, model: Any, fleet_dir: Path, data: Any, shared: Params, settings: CentralSettings,
                    log: Callable[[str], None]) -> tuple[Params, list[dict]]:
        """The oracle of federation: the shared weights trained on one machine over the training data the devices
        of the fleet in `fleet_dir` hold, the checkpoint picked on validation data (never a test row); returns them
        and one row per check."""

    @abc.abstractmethod
    def baselines(self, cfg: Any, data: Any, fleet_dir: Path) -> dict[str, dict[str, float]]:
        """Classical models trained centrally on the training data the fleet's devices hold, scored on the test rows
        as the evaluator scores: {name: {metric key: value}}."""


def _plain(metric: Metric) -> dict:
    return {k: v for k, v in asdict(metric).items() if v is not None}
