"""On-device recommendation on MovieLens-100K: the first task (docs/tasks.md).

Items are known only by their text; a device builds its user from the items it holds; score = similarity. The
server owns the catalogue and an opt-in fraction of users; every other user's history lives only on devices, and
every headline figure is theirs. Devices also tag genres from titles alone (genre_head.py) and train that head with
the recommendation head: both are the shared weights.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edgefleet.rundir import FLEET_DATA, ITEMS, share_file
from edgefleet.tasks.base import CentralSettings, FederatedTask, Metric, Params
from edgefleet.tasks.movielens.baselines import BPRMF, ItemKNN, Popularity
from edgefleet.tasks.movielens.bundle import TaskBundle, every_user_valid, load_task
from edgefleet.tasks.movielens.central import train_central
from edgefleet.tasks.movielens.device import RecommendationDevice
from edgefleet.tasks.movielens.device_head import shared_params, with_item_residual
from edgefleet.tasks.movielens.evaluate import GlobalEvaluator, HeadScorer, encode_all
from edgefleet.tasks.movielens.fleet import FleetData, load_texts, save_texts
from edgefleet.tasks.movielens.genre_head import genre_params, held_out_items
from edgefleet.tasks.movielens.protocol import evaluate
from edgefleet.tasks.movielens.shards import assign_devices


class MovieLens(FederatedTask):
    name = "movielens"
    title = "MovieLens-100K recommendation"
    runtime = "two-tower-rec"
    metrics = (Metric("hr@10", "HR@10"), Metric("ndcg@10", "NDCG@10"), Metric("mrr", "MRR"),
               Metric("genre_f1", "genre micro-F1"))
    device_metrics = (Metric("hit", "HR@10 on the device", "device_hr@10"),
                      Metric("ndcg", "NDCG@10 on the device", "device_ndcg@10"),
                      Metric("tag_f1", "genre break-even F1 on the device", "device_genre_f1"))
    device = RecommendationDevice()
    # The device's Adam step: chosen with server momentum 0.9 in an in-process study of 100-200 rounds at 1,000
    # devices, cohort 100, on the server-owned users' validation items (docs/simulation.md, Federation that learns).
    # sgd: in the in-process study on 10,000 devices (docs/privacy.md) 0.3 learned faster than 0.1 and than adam at
    # 1e-3; 1.0 lost half the validation HR@10 in one round.
    local_training = {"lr": 1e-3, "sgd_lr": 0.3, "personal_lr": 0.5}
    oracle_training = {"epochs": 6, "lr": 1e-3}
    # Adam: the 1,000-device bench's headline figures (three seeds, 300 rounds) were measured with it. SGD 0.3 learned
    # as fast there in the in-process study (docs/privacy.md) and is the DP pair's (federation.dp_local_optimizer).
    local_optimizer = "adam"

    def load(self, cfg: Any) -> TaskBundle:
        return load_task(cfg)

    def shared_params(self, tensors: Mapping[str, Any]) -> Params:
        return {**shared_params(tensors), **genre_params(tensors)}

    def trained_params(self, tensors: Mapping[str, Any], sim: Any, fleet: Any) -> Params:
        """The heads, and with `sim.item_residual` a zero vector per catalogue item (device_head.py
        `ITEM_RESIDUAL`), which devices train row by row."""
        shared = self.shared_params(tensors)
        return with_item_residual(shared, fleet.n_items) if sim.item_residual else shared

    def prepare_fleet(self, data: TaskBundle, sim: Any, fleet_dir: Path) -> None:
        negatives, cat = data.test.negatives.shape[1], data.catalogue
        fleet = assign_devices(data.split, sim.devices, sim.seed, negatives, sim.min_items)
        held_out = held_out_items(cat.n_items, data.split.seed)  # the task's seed: compression's held-out items
        replace(fleet, genres=cat.genres, genre_held_out=held_out).save(fleet_dir / FLEET_DATA)
        save_texts(fleet_dir, cat.item_texts(), list(cat.titles))

    def load_fleet(self, fleet_dir: Path) -> tuple[FleetData, list[str]]:
        return FleetData.load(fleet_dir / FLEET_DATA), load_texts(fleet_dir)

    def write_shard(self, fleet_dir: Path, device: int, shard_dir: Path) -> None:
        FleetData.load(fleet_dir / FLEET_DATA).of_device(device).save(shard_dir / FLEET_DATA)
        # The catalogue's text is public and the same on every device: a hard link, where the filesystem allows.
        share_file(fleet_dir / ITEMS, shard_dir / ITEMS)

    def centralized(self, model: Any, fleet_dir: Path, data: TaskBundle, shared: Params, settings: CentralSettings,
                    log: Callable[[str], None]) -> tuple[Params, list[dict]]:
        """The oracle of federation (central.py): the shared heads trained on one machine over every device-owned
        user's train items (what the devices hold, whatever their number), the checkpoint picked on every user's
        validation item (bundle.py `every_user_valid`), never a test item."""
        cat = data.catalogue
        pooled = encode_all(model, load_texts(fleet_dir))
        items, titles = pooled[:cat.n_items], pooled[cat.n_items:]
        history_len = int(model.config["history_len"])
        every = every_user_valid(data)

        def validate(p: Params) -> float:
            return evaluate(HeadScorer(p, items, history_len), every)[self.headline.key]

        return train_central(shared, items, titles, data.split, cat.genres,
                             held_out_items(cat.n_items, data.split.seed), history_len, validate, settings, log)

    def baselines(self, cfg: Any, data: TaskBundle, fleet_dir: Path) -> dict[str, dict[str, float]]:
        """Popularity, ItemKNN and BPR-MF trained on every user's train items (baselines.py)."""
        split = data.split
        everyone = np.arange(split.n_users)
        models = {"popularity": lambda: Popularity(split, everyone),
                  "itemknn": lambda: ItemKNN(split, cfg.baselines.knn_shrink, everyone),
                  "bpr_mf": lambda: BPRMF(split, cfg.baselines, everyone)}
        return {name: {k: float(v) for k, v in evaluate(build(), data.test).items() if isinstance(v, float)}
                for name, build in models.items()}

    def evaluator(self, model: Any, texts: list[str], data: TaskBundle) -> GlobalEvaluator:
        cat = data.catalogue
        return GlobalEvaluator(model, texts, data.test, cat.genres, held_out_items(cat.n_items, data.split.seed))
