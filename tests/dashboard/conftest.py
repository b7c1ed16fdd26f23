"""Run directories in the formats the simulation, compression and stress jobs write, built from their own code.

task.json is written here from the dicts below (the form Task.describe() writes) rather than by the jobs, so these
fixtures do not depend on how a job picks its task. The text-classification run is written by hand: that task
cannot run on a fleet yet, and the run stands for what one will write, to show that no page assumes MovieLens.
"""

import json

import numpy as np
import pandas as pd
import pytest

from client.device import DeviceReport
from edgefleet.config import Config
from edgefleet.results import Results
from edgefleet.rundir import FEDERATION_REPORT, SIM_CONFIG, SUMMARY, TASK, YARDSTICK
from edgefleet.tasks.base import Metric
from server.recorder import round_row
from simulation.run import summarize

TIERS = ["ram-2gb", "ram-4gb", "ram-6gb"]
MOVIELENS = {"name": "movielens", "title": "MovieLens-100K recommendation", "headline": "hr@10",
             "metrics": [{"key": "hr@10", "label": "HR@10"}, {"key": "ndcg@10", "label": "NDCG@10"},
                         {"key": "mrr", "label": "MRR"}],
             "device_metrics": [{"key": "hit", "label": "HR@10 on the device", "round_key": "device_hr@10"},
                                {"key": "ndcg", "label": "NDCG@10 on the device", "round_key": "device_ndcg@10"}]}
TEXTCLF = {"name": "textclf", "title": "Text classification", "headline": "accuracy",
           "metrics": [{"key": "accuracy", "label": "Accuracy"}, {"key": "macro_f1", "label": "Macro-F1"}],
           "device_metrics": [{"key": "correct", "label": "Accuracy on the device", "round_key": "device_accuracy"}]}


def write_task(path, task=MOVIELENS):
    (path / TASK).write_text(json.dumps(task))


def device_metrics(task=MOVIELENS) -> list[Metric]:
    return [Metric(**m) for m in task["device_metrics"]]


def recommendation(d: int) -> dict:
    return {"hit": float(d % 2), "ndcg": 0.3 * (d % 2)}


def device_rows(r: int, rng, measure=recommendation) -> pd.DataFrame:
    rows = []
    for d in range(12):
        outcome = ["ok", "ok", "ok", "oom", "dropout", "straggler"][d % 6]
        rep = DeviceReport(outcome, plan="full" if d % 2 else "small-batch", peak_bytes=int(rng.integers(1e5, 3e6)),
                           allowance_bytes=3_000_000, host_infer_ms=50.0, host_train_ms=5.0, infer_ms=120.0 + d,
                           train_ms=10.0 + d, comm_ms=300.0, virtual_ms=430.0 + d, bytes_down=396_496,
                           bytes_up=396_496 if outcome == "ok" else 0, examples=9, loss=1.5, measured=measure(d),
                           error="an allocation failed under the memory cap" if outcome == "oom" else "")
        rows.append({"round": r, "device": d, **rep.metrics(), "tier": TIERS[d % 3],
                     "budget_bytes": 5_200_000, "cpu_factor": 2.0})
    return pd.DataFrame(rows)


def write_sim(path, rounds=2, finish=True, private=False, task=MOVIELENS):
    cfg = Config.model_validate({"sim": {"devices": 50, "rounds": 3, "cohort": 12},
                                 "privacy": {"noise": 1.0, "clip": 0.1, "adaptive": True} if private else {}})
    path.mkdir(parents=True)
    (path / SIM_CONFIG).write_text(cfg.model_dump_json())
    if task is not None:
        write_task(path, task)
    res = Results(path)
    res.ensure()
    res.write_start({"hr@10": 0.55, "ndcg@10": 0.29, "mrr": 0.24, "genre_f1": 0.40, "full": {"hr@10": 0.08}})
    rng = np.random.default_rng(0)
    for r in range(1, rounds + 1):
        devices = device_rows(r, rng)
        metrics = {"hr@10": 0.55 + 0.01 * r, "ndcg@10": 0.29 + 0.005 * r, "mrr": 0.24, "genre_f1": 0.40 + 0.01 * r,
                   "full": {"hr@10": 0.09}}
        row = round_row(r, devices, 40, 2.5, metrics, 1.0, device_metrics())
        if private:  # what server/strategy.py adds to a DP round
            row.update(epsilon=0.4 * r, delta=0.02, dp_noise=1.0, sampling_rate=0.3, noise_std=0.1 / 12 * r,
                       clip_norm=0.1 * r, next_clip_norm=0.1 * (r + 1), unclipped_fraction=0.5, contributed=7)
        res.commit_round(r, devices, row, {"w": np.zeros(2)})
    (path / "fleet").mkdir()
    pd.DataFrame({"tier": TIERS * 4}).to_parquet(path / "fleet" / "population.parquet")
    if finish:
        res.finish({"rounds": rounds})
        (path / SUMMARY).write_text(json.dumps(summarize(cfg, res, 10.0, 12.0, 2_000_000_000)))
    return path


def write_text_sim(path, rounds=2):
    """A finished text-classification simulation: its own metrics in round rows, device rows and summary."""
    cfg = Config.model_validate({"sim": {"devices": 50, "rounds": rounds, "cohort": 12}})
    path.mkdir(parents=True)
    (path / SIM_CONFIG).write_text(cfg.model_dump_json())
    write_task(path, TEXTCLF)
    res = Results(path)
    res.ensure()
    res.write_start({"accuracy": 0.70, "macro_f1": 0.60})
    rng = np.random.default_rng(0)
    for r in range(1, rounds + 1):
        devices = device_rows(r, rng, lambda d: {"correct": float(d % 3 != 0)})
        metrics = {"accuracy": 0.70 + 0.02 * r, "macro_f1": 0.60 + 0.02 * r}
        res.commit_round(r, devices, round_row(r, devices, 40, 2.5, metrics, 1.0, device_metrics(TEXTCLF)),
                         {"w": np.zeros(2)})
    (path / "fleet").mkdir()
    pd.DataFrame({"tier": TIERS * 4}).to_parquet(path / "fleet" / "population.parquet")
    res.finish({"rounds": rounds})
    (path / SUMMARY).write_text(json.dumps({"devices": 50, "rounds": rounds, "cohort": 12, "accuracy": 0.74,
                                            "accuracy_start": 0.70, "accuracy_delta": 0.04, "epsilon": None}))
    return path


# What `bench federation` writes into each of its runs: the deployed model and the oracles on the device users.
YARDSTICK_FIGURES = {"start": {"hr@10": 0.55, "ndcg@10": 0.29, "mrr": 0.24, "genre_f1": 0.40},
                     "oracle": {"hr@10": 0.61, "ndcg@10": 0.33, "mrr": 0.27, "genre_f1": 0.44},
                     "oracle_item_residual": {"hr@10": 0.70, "ndcg@10": 0.40, "mrr": 0.34, "genre_f1": 0.45},
                     "oracle_full": {"hr@10": 0.64, "ndcg@10": 0.35, "mrr": 0.30, "genre_f1": 0.46}}


def write_bench(path, names=("fedavg-seed0", "fedavg-seed1"), yardstick=YARDSTICK_FIGURES):
    """A `bench federation` directory: its report and task at the top, its simulations under runs/, each with the
    bench's yardstick."""
    path.mkdir(parents=True)
    write_task(path)
    (path / FEDERATION_REPORT).write_text(json.dumps({"task": "movielens", "headline": "hr@10", **yardstick,
                                                      "runs": []}))
    for name in names:
        write_sim(path / "runs" / name)
        (path / "runs" / name / YARDSTICK).write_text(json.dumps(yardstick))
    return path


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    write_sim(root / "sim-a")
    write_sim(root / "sim-dp", private=True, task=None)  # written before jobs wrote task.json
    write_text_sim(root / "sim-text")
    write_sim(root / "sim-live", rounds=1, finish=False)  # the newest: what the dashboard selects first
    curve = root / "bench-privacy-a"
    curve.mkdir()
    write_task(curve)
    (curve / "privacy_report.json").write_text(json.dumps({
        "non_private": {"hr@10": 0.57},
        "points": [{"label": f"dp-z{z}", "noise": z, "epsilon": e, "hr@10": h, "ndcg@10": h / 2}
                   for z, e, h in ((0.5, 9.1, 0.56), (1.0, 2.2, 0.55), (2.0, 0.6, 0.52))]}))
    comp = root / "compress-a"
    comp.mkdir()
    write_task(comp)
    (comp / "compression_report.json").write_text(json.dumps({
        "artifact_bytes": 755188, "artifact_path": "model.eflt",
        "teacher": {"hr@10": 0.51, "ndcg@10": 0.27, "latency_ms_b1": 12.0, "params": 22877876},
        "student": {"hr@10": 0.55, "ndcg@10": 0.30, "latency_ms_b1": 0.45, "params": 688711, "peak_mem_bytes": 141804},
        "retention": {"hr@10": 1.08, "ndcg@10": 1.10, "speedup_b1": 26.4},
        "size_breakdown": {"embeddings": 203128, "encoder": 415744, "heads": 105452, "vocabulary": 22551},
        "quantization": {"int8": {"hr@10": 0.55, "ndcg@10": 0.30, "weight_bytes": 700000},
                         "int4": {"hr@10": 0.549, "ndcg@10": 0.29, "weight_bytes": 400000}},
        "stages": [{"name": "teacher", "seconds": 10.0}, {"name": "distill", "seconds": 30.0}]}))
    stress = root / "stress-a"
    stress.mkdir()
    (stress / "stress_report.json").write_text(json.dumps({
        "points": [{"variant": "int8", "workload": "inference", "budget_bytes": b, "measured_peak_bytes": 2_400_000,
                    "predicted_bytes": 2_300_000, "fits": b > 2_400_000, "oom": b <= 2_400_000}
                   for b in (2e6, 4e6, 8e6)],
        "min_budget_bytes": {"int8": {"inference": {"min_budget_bytes": 2_450_000, "predicted_bytes": 2_300_000},
                                      "training": {"min_budget_bytes": 8_250_000, "predicted_bytes": 8_280_000}},
                             "int4": {"inference": {"min_budget_bytes": 2_380_000, "predicted_bytes": 2_290_000},
                                      "training": {"min_budget_bytes": None, "predicted_bytes": 8_200_000}}},
        "prediction_error": {"int8": {"inference": -0.04, "training": 0.004}, "int4": {"inference": -0.03,
                                                                                        "training": None}},
        "policies": {"runs": {"fixed": {"participation_rate": 0.34, "oom_rate": 0.55, "hr@10": 0.564},
                              "adaptive": {"participation_rate": 0.85, "oom_rate": 0.01, "hr@10": 0.566,
                                           "variants_chosen": {"int8": 30}}}},
        "load": {"devices": 1000, "budget_scale": 0.5, "survived": True,
                 "ooms": [{"round": 1, "device": 7, "tier": "ram-2gb", "workload": "inference", "error": "x"}]}}))
    bad = root / "sim-corrupt"
    bad.mkdir()
    (bad / SUMMARY).write_text("{ not json")
    return root
