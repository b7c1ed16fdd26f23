"""`edgefleet stress`: the bisection, the memory model against the real cap, the adaptive choice, the report, and
bad input. The fleet simulations of the policies and the load run are exercised by `--preset quick` itself."""

import json
from dataclasses import replace

import numpy as np
import pytest

from client.device import INFERENCE, LADDER, choose, run_device, shapes_of, training_plan
from client.worker import Worker
from compression.runtime.artifact import read_artifact
from compression.runtime.memory_model import predict
from edgefleet.cli import main
from edgefleet.config import VariantConfig, load_config
from edgefleet.progress import Reporter
from edgefleet.tasks import federated_task
from simulation.stress import REPORT, Probe, min_budget, probe_job, reference_device, run_stress
from simulation.variants import deploy_variants

MB = 2**20


def shared_of(run):
    """The deployed model's shared weights, as the ServerApp sends them (both heads)."""
    return federated_task("movielens").shared_params(read_artifact(run / "model.eflt").tensors)


def probe(run, batch=8, quantile=0.5, residual=False, optimizer="adam"):
    w = Worker(run)
    cfg = load_config(overrides=[f"sim.batch_size={batch}", "sim.negatives=16",
                                 f"sim.item_residual={str(residual).lower()}", f'sim.local_optimizer="{optimizer}"'])
    job = probe_job(cfg, reference_device(w, quantile))
    shared = federated_task("movielens").trained_params(read_artifact(run / "model.eflt").tensors, cfg.sim, w.fleet)
    return Probe("small", w, job, shared, 20.0)


@pytest.mark.parametrize("workload", ["inference", "training"])
def test_the_bisection_finds_a_budget_that_fits_and_one_step_below_that_fails(small_fleet, workload):
    p = probe(small_fleet)
    resolution = 8 * 1024
    points, result = min_budget(p, workload, [int(0.25 * MB), int(0.5 * MB), 1 * MB, 4 * MB], resolution)
    hi, lo = result["min_budget_bytes"], result["fails_at_bytes"]
    assert hi is not None and 0 < hi - lo <= resolution
    assert {pt["budget_bytes"]: pt["fits"] for pt in points}[hi] is True
    # Measured again, independently of the search: the minimum fits and one step below it does not.
    assert p.run(workload, hi, "check")["fits"]
    below = p.run(workload, hi - resolution, "check")
    assert below["oom"] and not below["fits"]
    assert any(pt["search"] == "bisect" for pt in points)


@pytest.mark.parametrize("batch", [32, 4])
@pytest.mark.parametrize("quantile", [0.0, 0.7])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_predicted_memory_is_within_15_percent_of_the_measured_peak(small_fleet, batch, quantile, residual,
                                                                    optimizer):
    p = probe(small_fleet, batch, quantile, residual, optimizer)
    for workload in ("inference", "training"):
        point = p.run(workload, 64 * MB, "check")
        assert point["fits"]
        assert point["predicted_bytes"] == p.predicted(workload)
        assert abs(point["predicted_bytes"] - point["measured_peak_bytes"]) <= 0.15 * point["measured_peak_bytes"]
        # The work beyond the model, on its own, too: the model's resident bytes cannot hide a miss.
        work = point["predicted_bytes"] - point["model_bytes"]
        assert abs(work - point["work_peak_bytes"]) <= 0.15 * point["work_peak_bytes"], workload


def test_training_the_item_vectors_costs_the_rows_of_the_devices_items(small_fleet):
    """With sim.item_residual a device holds the rows of its table's items, not the whole table: more memory than
    the heads alone, by the rows' share."""
    heads, both = probe(small_fleet, 8, 0.7), probe(small_fleet, 8, 0.7, residual=True)
    table = both.shared["head.item_residual"].nbytes
    for workload in ("inference", "training"):
        extra = both.run(workload, 64 * MB, "x")["measured_peak_bytes"] - \
            heads.run(workload, 64 * MB, "x")["measured_peak_bytes"]
        assert 0 < extra < 5 * table, workload  # gathered rows, their copy, moments and gradients: not 5 tables


def test_sgd_on_the_device_saves_the_moments_of_adam(small_fleet):
    """sim.local_optimizer sgd keeps no state: training needs the two moments (each the size of the trained heads)
    less, measured and predicted; inference is the same."""
    adam, sgd = probe(small_fleet, 8, 0.7), probe(small_fleet, 8, 0.7, optimizer="sgd")
    heads = sum(v.nbytes for v in adam.shared.values())
    assert adam.predicted("training") - sgd.predicted("training") == 2 * heads
    assert adam.predicted("inference") == sgd.predicted("inference")
    saved = adam.run("training", 64 * MB, "x")["measured_peak_bytes"] - \
        sgd.run("training", 64 * MB, "x")["measured_peak_bytes"]
    assert 1.5 * heads < saved < 2.5 * heads


def test_a_smaller_batch_needs_less_memory_and_training_more_than_inference(small_fleet):
    big, small = probe(small_fleet, 32, 0.7), probe(small_fleet, 4, 0.7)
    assert small.predicted("training") < big.predicted("training")
    assert big.predicted("inference") < big.predicted("training")
    assert small.run("training", 64 * MB, "x")["measured_peak_bytes"] < \
        big.run("training", 64 * MB, "x")["measured_peak_bytes"]


@pytest.fixture(scope="module")
def adaptive_run(small_fleet, tmp_path_factory):
    """The fleet with the adaptive policy's deployment: three variants, the first the model as it is."""
    run = tmp_path_factory.mktemp("adaptive")
    for part in ("fleet", "model.eflt", "sim_config.json"):
        (run / part).symlink_to(small_fleet / part)
    ladder = (VariantConfig(name="int8"), VariantConfig(name="int8-b4", batch_size=4),
              VariantConfig(name="int4-v20-b2", bits=4, vocab=20, batch_size=2))
    deploy_variants(run / "model.eflt", run, ladder)
    return run


def test_the_adaptive_policy_picks_the_richest_variant_that_fits(adaptive_run):
    w = Worker(adaptive_run)
    assert [d.name for d in w.deployments] == ["int8", "int8-b4", "int4-v20-b2"]
    assert w.deployments[2].model_bytes < w.deployments[0].model_bytes
    device = reference_device(w, 0.7)
    n_neg = 8
    local = w.task.device.local_data(w.fleet, device, len(w.texts), n_neg, np.random.default_rng(0))
    assert (local.n_eval, local.n_hist, local.n_neg) == (1 + w.fleet.negatives.shape[1],
                                                         len(w.fleet.device_items(device)) + 1, n_neg)
    job = probe_job(load_config(overrides=[f"sim.negatives={n_neg}"]), device)

    def need(i, plan):
        dep = w.deployments[i]
        return predict(dep.dims, shapes_of(w, job, dep, plan, local), plan.train)

    trains = [training_plan(job, d.batch_size) for d in w.deployments]
    assert [p.batch_div for p in trains] == [1, 8, 16]  # micro-batches of 4 and 2 out of the batch of 32
    train = [need(i, trains[i]) for i in range(3)]
    infer = [need(i, INFERENCE) for i in range(3)]
    assert train[0] > train[1] > train[2] > max(infer)
    assert infer[0] == infer[1] > infer[2]  # the batch is training's only: the same model infers the same
    for budget, want in [(train[0], (0, True)), (train[0] - 1, (1, True)), (train[1] - 1, (2, True)),
                         (train[2] - 1, (0, False)), (infer[0] - 1, (2, False))]:
        attempts = choose(w, replace(job, budget_bytes=budget), local)
        assert (attempts[0][0], attempts[0][1].train) == want, budget
        # If the real cap disagrees, the device steps down the leaner variants, then infers.
        start = want[0] if want[1] else 3
        assert attempts[:3 - start] == [(i, trains[i]) for i in range(start, 3)]
        assert attempts[-1] == (2, INFERENCE)
    # Nothing is predicted to fit: inference on the leanest only, the real cap decides.
    assert choose(w, replace(job, budget_bytes=infer[2] - 1), local) == [(2, INFERENCE)]
    # With a margin, a device keeps that much room over the prediction.
    w.fit_margin = 0.1
    assert choose(w, replace(job, budget_bytes=train[0]), local)[0] == (1, trains[1])
    assert choose(w, replace(job, budget_bytes=int(train[0] * 1.1) + 1), local)[0] == (0, LADDER[0])
    w.fit_margin = 0.0
    # In a real round under the real cap: the device reports the variant it ran and fits in its budget.
    shared = shared_of(adaptive_run)
    report = run_device(w, replace(job, budget_bytes=train[1] + 64 * 1024), shared)
    assert report.outcome == "ok" and report.variant == 1 and report.plan == "micro-batch" and report.attempts == 1
    assert report.peak_bytes <= report.allowance_bytes == train[1] + 64 * 1024 - w.deployments[1].model_bytes


def test_the_report_holds_points_minimum_budgets_and_errors(small_model, tmp_path):
    cfg = load_config(preset="quick", overrides=[
        f'sim.model="{small_model}"', "stress.fleet=false", "stress.devices=30", "stress.cohort=10",
        "stress.budgets_mb=[0.25, 0.5, 1, 2]", "stress.resolution_kb=64", "stress.history_quantile=0.2",
        'stress.variants=[{name="int8"}, {name="int4", bits=4}, {name="b2", batch_size=2}]'])
    report = run_stress(cfg, tmp_path / "s", Reporter(enabled=False))
    saved = json.loads((tmp_path / "s" / REPORT).read_text())
    assert saved["min_budget_bytes"] == report["min_budget_bytes"]
    keys = {"variant", "workload", "budget_bytes", "measured_peak_bytes", "predicted_bytes", "fits", "oom"}
    assert saved["points"] and all(keys <= set(p) for p in saved["points"])
    assert {p["variant"] for p in saved["points"]} == {"int8", "int4", "b2"}
    for name, per in saved["min_budget_bytes"].items():
        assert set(per) == {"inference", "training"}
        assert per["inference"]["min_budget_bytes"] <= per["training"]["min_budget_bytes"]
        for workload, err in saved["prediction_error"][name].items():
            assert abs(err) <= 0.15, (name, workload)
    assert saved["min_budget_bytes"]["b2"]["training"]["min_budget_bytes"] < \
        saved["min_budget_bytes"]["int8"]["training"]["min_budget_bytes"]
    sizes = {v["name"]: v["model_bytes"] for v in saved["variants"]}
    assert sizes["int4"] < sizes["int8"] == sizes["b2"]
    assert all(p["fits"] != p["oom"] for p in saved["points"])
    assert np.all([p["budget_bytes"] > 0 for p in saved["points"]])


@pytest.mark.parametrize("override, message", [
    ("stress.budgets_mb=[0, 4]", "stress.budgets_mb must be positive and increasing"),
    ("stress.budgets_mb=[8, 4]", "stress.budgets_mb must be positive and increasing"),
    ("stress.budgets_mb=[]", "stress.budgets_mb must be positive and increasing"),
    ("stress.budgets_mb=\"lots\"", "stress.budgets_mb"),
    ("stress.resolution_kb=0", "stress.resolution_kb"),
    ('stress.variants=[{name="a"}, {name="a"}]', "distinct names"),
    ('stress.variants=[{name="x", bits=3}]', "stress.variants"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, capsys, override, message):
    code = main(["--quiet", "stress", "--preset", "quick", "--set", override, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_a_finished_stress_run_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / REPORT).write_text("{}")
    assert main(["--quiet", "stress", "--preset", "quick", "--out", str(out)]) == 2
    assert "finished" in capsys.readouterr().err and (out / REPORT).read_text() == "{}"


def test_a_device_whose_pick_does_not_fit_steps_down_the_variants(adaptive_run):
    w = Worker(adaptive_run)
    shared = shared_of(adaptive_run)
    device = reference_device(w, 0.7)
    job = probe_job(load_config(overrides=["sim.negatives=8"]), device)
    roomy = run_device(w, replace(job, budget_bytes=64 * MB), shared)
    assert roomy.variant == 0 and roomy.attempts == 1
    lean = w.deployments[2]
    budget = lean.model_bytes + run_device(w, replace(job, budget_bytes=64 * MB), shared,
                                           plans=(LADDER[0],)).peak_bytes  # what variant 0's training needs
    w.fit_margin = -0.9  # a prediction ten times too optimistic: every variant looks like it fits
    report = run_device(w, replace(job, budget_bytes=budget), shared)
    assert report.attempts >= 2 and report.variant > 0 and report.outcome == "ok" and report.plan == "micro-batch"
    assert report.peak_bytes <= report.allowance_bytes
