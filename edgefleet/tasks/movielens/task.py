"""On-device recommendation on MovieLens-100K: the first task (docs/tasks.md).

Items are known only by their text; a device builds its user from the items it holds; score = similarity. The
server owns the catalogue and an opt-in fraction of users; every other user's history lives only on devices, and
every headline figure is theirs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from edgefleet.rundir import FLEET_DATA, ITEMS
from edgefleet.tasks.base import FederatedTask, Metric, Params
from edgefleet.tasks.movielens.bundle import TaskBundle, load_task
from edgefleet.tasks.movielens.device import RecommendationDevice
from edgefleet.tasks.movielens.device_head import shared_params
from edgefleet.tasks.movielens.evaluate import GlobalEvaluator
from edgefleet.tasks.movielens.fleet import FleetData, load_item_texts
from edgefleet.tasks.movielens.shards import assign_devices


class MovieLens(FederatedTask):
    name = "movielens"
    title = "MovieLens-100K recommendation"
    runtime = "two-tower-rec"
    metrics = (Metric("hr@10", "HR@10"), Metric("ndcg@10", "NDCG@10"), Metric("mrr", "MRR"))
    device_metrics = (Metric("hit", "HR@10 on the device", "device_hr@10"),
                      Metric("ndcg", "NDCG@10 on the device", "device_ndcg@10"))
    device = RecommendationDevice()
    # Chosen on the device users' validation items (docs/simulation.md).
    local_training = {"lr": 2e-4, "personal_lr": 0.5}

    def load(self, cfg: Any) -> TaskBundle:
        return load_task(cfg)

    def shared_params(self, tensors: Mapping[str, Any]) -> Params:
        return shared_params(tensors)

    def prepare_fleet(self, data: TaskBundle, sim: Any, fleet_dir: Path) -> None:
        negatives = data.test.negatives.shape[1]
        assign_devices(data.split, sim.devices, sim.seed, negatives, sim.min_items).save(fleet_dir / FLEET_DATA)
        (fleet_dir / ITEMS).write_text(json.dumps(data.catalogue.item_texts()))

    def load_fleet(self, fleet_dir: Path) -> tuple[FleetData, list[str]]:
        return FleetData.load(fleet_dir / FLEET_DATA), load_item_texts(fleet_dir)

    def evaluator(self, model: Any, texts: list[str], data: TaskBundle) -> GlobalEvaluator:
        return GlobalEvaluator(model, texts, data.test)
