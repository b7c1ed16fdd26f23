"""Reading a run's task: its task.json, the task of the model it deployed, or (older runs) the MovieLens task."""

import json

from dashboard import data
from edgefleet.results import FINISHED
from edgefleet.rundir import COMPRESSION_REPORT, MODEL, RESULTS, SIM_CONFIG, TASK, YARDSTICK
from tests.dashboard.conftest import MOVIELENS, TEXTCLF, write_task


def test_the_fallback_is_what_the_movielens_task_writes():
    assert data.Task.from_json(MOVIELENS) == data.LEGACY_TASK


def test_labels_of_metrics_their_full_ranking_and_device_columns():
    task = data.Task.from_json(TEXTCLF)
    assert task.headline_label == "Accuracy" and task.device_headline.round_key == "device_accuracy"
    assert [task.label(k) for k in ("macro_f1", "full_accuracy", "device_accuracy", "correct", "loss")] == \
        ["Macro-F1", "Accuracy (full ranking)", "Accuracy on the device", "Accuracy on the device", "loss"]


def test_a_run_takes_its_own_task_then_its_models_then_the_legacy_one(tmp_path):
    compress = tmp_path / "compress-t"
    compress.mkdir()
    write_task(compress, TEXTCLF)
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / SIM_CONFIG).write_text(json.dumps({"sim": {"model": str(compress / "model.eflt")}}))
    assert data.load_run(sim, tmp_path).task.name == "textclf"
    write_task(sim, MOVIELENS)
    assert data.load_run(sim, tmp_path).task == data.LEGACY_TASK
    (sim / TASK).unlink()
    (sim / SIM_CONFIG).write_text(json.dumps({"sim": {}}))
    assert data.load_run(sim, tmp_path).task is data.LEGACY_TASK


def test_a_task_json_that_is_no_task_is_a_problem_not_a_traceback(tmp_path):
    (tmp_path / SIM_CONFIG).write_text(json.dumps({"sim": {}}))
    write_task(tmp_path, {**TEXTCLF, "headline": "f1"})
    run = data.load_run(tmp_path, tmp_path)
    assert run.status == "corrupt" and run.task is data.LEGACY_TASK
    assert run.problems == ["task.json does not describe a task (ValueError: headline 'f1' is not one of its metrics)"]


def test_a_yardstick_is_its_figures_less_the_null_entries_or_a_reason(tmp_path):
    assert data.yardstick(tmp_path) == (None, None)
    (tmp_path / YARDSTICK).write_text(json.dumps({"start": {"hr@10": 0.39, "mrr": None}, "oracle": {"hr@10": 1},
                                                  "oracle_full": None, "epochs": 3}))
    assert data.yardstick(tmp_path) == ({"start": {"hr@10": 0.39}, "oracle": {"hr@10": 1.0}}, None)
    (tmp_path / YARDSTICK).write_text(json.dumps({"start": {"hr@10": "high"}}))
    assert data.yardstick(tmp_path) == (None, "yardstick.json is not a yardstick ('start' is not a table of metric "
                                              "values)")
    (tmp_path / YARDSTICK).write_text("[1, 2]")
    assert data.yardstick(tmp_path) == (None, "yardstick.json is not a JSON object")


def test_a_simulation_of_a_compressed_model_is_running_until_it_finishes(tmp_path):
    """The compression report beside the model a simulation deploys (any model the Launch page offers) is read as the
    run's, but does not make the run finished: the browser showed a simulation at round 5 of 12 as finished on the
    Compare page, and a run that reads finished is not followed live."""
    compress = tmp_path / "compress-t"
    compress.mkdir()
    (compress / COMPRESSION_REPORT).write_text(json.dumps({"artifact_bytes": 10}))
    sim = tmp_path / "sim"
    (sim / RESULTS).mkdir(parents=True)
    (sim / SIM_CONFIG).write_text(json.dumps({"sim": {"model": str(compress / MODEL)}}))
    run = data.load_run(sim, tmp_path)
    assert run.status == "running" and run.reports["compression"] == {"artifact_bytes": 10}
    (sim / RESULTS / FINISHED).write_text("{}")
    assert data.load_run(sim, tmp_path).status == "finished"
    assert data.load_run(compress, tmp_path).status == "finished"  # a compression run is finished by its report
