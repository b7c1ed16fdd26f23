"""`edgefleet teacher`: train (or load) the teacher and the baselines, evaluate all on device-owned users."""

from __future__ import annotations

import time
from pathlib import Path

from compression.teacher.two_tower import MeanEmbeddingScorer, build_teacher
from edgefleet.config import Config
from edgefleet.progress import Reporter
from edgefleet.rundir import TEACHER_REPORT as REPORT
from edgefleet.rundir import prepare, write_json
from edgefleet.tasks import get_task
from edgefleet.tasks.movielens.baselines import BPRMF, ItemKNN, Popularity
from edgefleet.tasks.movielens.bundle import load_task
from edgefleet.tasks.movielens.protocol import evaluate


def run_teacher(cfg: Config, out: Path, reporter: Reporter) -> dict:
    out = prepare(out, REPORT)
    get_task("movielens").write_description(out)
    started = time.perf_counter()
    task = cfg.task
    with reporter.stage("load MovieLens-100K and split"):
        bundle = load_task(task)
        catalogue, split, valid, test = bundle.catalogue, bundle.split, bundle.valid, bundle.test
    teacher = build_teacher(cfg, catalogue, split, valid, reporter)
    with reporter.stage("evaluate teacher on device-owned users"):
        teacher_metrics = evaluate(teacher.scorer(), test)
    n_params = sum(p.numel() for p in teacher.model.parameters())
    baselines = {}
    with reporter.stage("baselines (popularity, ItemKNN, BPR-MF, zero-shot MiniLM)"):
        candidates = {
            "popularity": lambda: Popularity(split),
            "itemknn": lambda: ItemKNN(split, cfg.baselines.knn_shrink),
            "bpr_mf": lambda: BPRMF(split, cfg.baselines),
            "minilm_zero_shot": lambda: MeanEmbeddingScorer(teacher.zero_shot),
        }
        for name, make in candidates.items():
            t0 = time.perf_counter()
            baselines[name] = {**evaluate(make(), test), "seconds": round(time.perf_counter() - t0, 2)}
    report = {
        "teacher": {**teacher_metrics, "params": int(n_params), "model": "all-MiniLM-L6-v2 two-tower",
                    "cached": teacher.cached, "cache_dir": str(teacher.cache_dir), "train_log": teacher.log},
        "baselines": baselines,
        "protocol": {
            "split": "chronological leave-last-out per user (last = test, second-last = validation)",
            "feedback": "implicit (every rating is an interaction)",
            "negatives": task.num_negatives,
            "negatives_sampling": "uniform over items the user never interacted with, per (seed, stage, user)",
            "full_ranking": "all items except the user's history",
            "ties": "expected metric under a random order of tied candidates",
            "seed": task.seed,
            "k": task.k,
            "server_fraction": task.server_fraction,
            "server_users": int(len(split.server_users)),
            "device_users": int(len(split.device_users)),
            "train_data": "server-owned users' train interactions; validation on their second-last items",
            "evaluated_on": test.describe(),
            "users": int(split.n_users),
            "items": int(split.n_items),
            "interactions": int(len(catalogue.interactions)),
        },
        "stages": reporter.stages,
        "wall_s": round(time.perf_counter() - started, 2),
        "config": cfg.model_dump(mode="json"),
    }
    write_json(out / REPORT, report)
    return report
