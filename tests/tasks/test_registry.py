"""The task registry and what every task tells the rest of EdgeFleet."""

import json

import pytest

from edgefleet.errors import ConfigError
from edgefleet.rundir import TASK
from edgefleet.tasks import TASKS, federated_task, get_task
from edgefleet.tasks.base import FederatedTask, Task


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_names_its_metrics(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    keys = [m.key for m in (*task.metrics, *task.device_metrics)]
    assert len(keys) == len(set(keys)) and task.headline is task.metrics[0]
    assert all(m.round_key for m in task.device_metrics)


def test_the_movielens_task_describes_itself_for_readers(tmp_path):
    task = get_task("movielens")
    task.write_description(tmp_path)
    written = json.loads((tmp_path / TASK).read_text())
    assert written == {
        "name": "movielens", "title": "MovieLens-100K recommendation", "headline": "hr@10",
        "metrics": [{"key": "hr@10", "label": "HR@10"}, {"key": "ndcg@10", "label": "NDCG@10"},
                    {"key": "mrr", "label": "MRR"}, {"key": "genre_f1", "label": "genre micro-F1"}],
        "device_metrics": [{"key": "hit", "label": "HR@10 on the device", "round_key": "device_hr@10"},
                           {"key": "ndcg", "label": "NDCG@10 on the device", "round_key": "device_ndcg@10"},
                           {"key": "tag_f1", "label": "genre break-even F1 on the device",
                            "round_key": "device_genre_f1"}]}
    assert task.label("ndcg@10") == "NDCG@10" and task.label("loss") == "loss"


def test_a_task_serves_the_runtime_its_artifacts_name():
    from compression.runtime.model import RUNTIME_KIND

    assert get_task("movielens").runtime == RUNTIME_KIND


def test_unknown_tasks_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown task 'speech'.*movielens"):
        get_task("speech")
    assert all(isinstance(federated_task(name), FederatedTask) for name in TASKS)


def test_the_textclf_task_loads_the_configured_files(tmp_path):
    from edgefleet.config import TaskConfig

    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\n")
    (tmp_path / "valid.csv").write_text("text,label\nfine film,pos\n")
    data = get_task("textclf").load(TaskConfig(name="textclf", train=tmp_path / "train.csv",
                                               valid=tmp_path / "valid.csv"))
    assert data.labels == ["neg", "pos"] and data.valid_y.tolist() == [1]
    with pytest.raises(ConfigError, match="needs task.train"):
        get_task("textclf").load(TaskConfig(name="textclf"))
