"""The task's splits from files, a split column or a seeded carve; drops said in one line; errors in one line."""

import json
import warnings

import numpy as np
import pytest

from edgefleet.config import TaskConfig
from edgefleet.errors import ConfigError, DataError
from edgefleet.tasks.textclf.data import DataWarning, load_configured, load_text_task, report_lines


def write(path, rows: list[tuple], header: str = "text,label"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def quiet_load(*args, **kwargs):
    """load_text_task, where any DataWarning fails the test."""
    with warnings.catch_warnings(action="error", category=DataWarning):
        return load_text_task(*args, **kwargs)


def error_of(*args, kind=DataError, **kwargs) -> str:
    with pytest.raises(kind) as info:
        load_text_task(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_the_split_column_places_each_row(tmp_path):
    path = write(tmp_path / "all.csv", [("a", "x", "train"), ("b", "y", "train"), ("c", "x", "validation"),
                                        ("d", "y", "test"), ("e", "x", "valid")], "text,label,split")
    task = quiet_load(path)
    assert (task.train_texts, task.valid_texts, task.test_texts) == (["a", "b"], ["c", "e"], ["d"])
    assert task.valid_y.tolist() == [0, 0] and task.test_y.tolist() == [1]
    assert task.report["source"] == {"train": f"{path}, split train", "valid": f"{path}, split valid",
                                     "test": f"{path}, split test"}
    assert task.train_users is None


def test_a_seeded_stratified_carve_when_nothing_is_given(tmp_path):
    rows = [(f"x{i}", "x") for i in range(8)] + [(f"y{i}", "y") for i in range(4)]
    path = write(tmp_path / "t.csv", rows)
    task = quiet_load(path, valid_fraction=0.25, test_fraction=0.25, seed=0)
    assert task.report["rows"] == {"train": 6, "valid": 3, "test": 3}
    assert np.bincount(task.test_y).tolist() == [2, 1] and np.bincount(task.valid_y).tolist() == [2, 1]
    assert len({*task.train_texts, *task.valid_texts, *task.test_texts}) == 12
    assert task.report["source"]["test"] == f"25% of {path}, stratified by label (seed 0)"
    again, other = quiet_load(path, valid_fraction=0.25, test_fraction=0.25, seed=0), \
        quiet_load(path, valid_fraction=0.25, test_fraction=0.25, seed=1)
    assert again.test_texts == task.test_texts and other.test_texts != task.test_texts


def test_a_given_validation_file_is_kept_and_test_rows_are_carved_from_training(tmp_path):
    train = write(tmp_path / "t.csv", [(f"x{i}", "x") for i in range(5)] + [(f"y{i}", "y") for i in range(5)])
    valid = write(tmp_path / "v.csv", [("vx", "x"), ("vy", "y")])
    task = quiet_load(train, valid, valid_fraction=0.3, test_fraction=0.2)
    assert task.valid_texts == ["vx", "vy"] and len(task.test_texts) == 2 and len(task.train_texts) == 8
    assert task.report["source"]["valid"] == str(valid)
    assert not set(task.test_texts) & set(task.train_texts)


def test_without_any_validation_rows_is_a_config_error(tmp_path):
    path = write(tmp_path / "t.csv", [("a", "x"), ("b", "y")])
    assert error_of(path, kind=ConfigError) == (f"{path}: no validation rows: give task.valid, a split column, or "
                                                "task.valid_fraction above 0")


def test_repeated_texts_are_dropped_with_a_count_and_the_clashing_labels(tmp_path):
    train = write(tmp_path / "t.csv", [("Good  film", "pos"), ("good film", "pos"), ("GOOD FILM", "neg"),
                                       ("bad", "neg")])
    valid = write(tmp_path / "v.csv", [("fine", "pos")])
    with pytest.warns(DataWarning) as caught:
        task = load_text_task(train, valid)
    assert task.train_texts == ["Good  film", "bad"] and task.train_y.tolist() == [1, 0]
    assert [str(w.message) for w in caught] == [
        f"{train}: dropped 2 train rows repeating an earlier text (1 with another label than the first's, "
        "which is kept)"]
    assert task.report["dropped"] == [{"file": str(train), "split": "train", "reason": "duplicate text", "rows": 2}]
    assert task.report["warnings"] == [str(caught[0].message)]


def test_test_texts_seen_in_training_are_dropped_and_validation_overlap_is_said(tmp_path):
    train = write(tmp_path / "t.csv", [("a", "x"), ("b", "y"), ("c", "x")])
    valid = write(tmp_path / "v.csv", [("a", "x"), ("d", "y")])
    test = write(tmp_path / "s.csv", [("b", "y"), ("d", "y"), ("e", "x")])
    with pytest.warns(DataWarning) as caught:
        task = load_text_task(train, valid, test)
    assert task.test_texts == ["e"] and task.valid_texts == ["a", "d"]
    assert [str(w.message) for w in caught] == [
        f"{test}: dropped 2 test rows whose text also occurs in training or validation",
        f"{valid}: 1 validation text also occurs in training: the epochs it picks will favour memorising"]
    assert error_of(train, valid, write(tmp_path / "s2.csv", [("A", "x")])) == (
        f"{tmp_path / 's2.csv'}: no test rows left: every one also occurs in training or validation")


def test_labels_unseen_in_training_name_the_row(tmp_path):
    train = write(tmp_path / "t.csv", [("a", "x"), ("b", "y")])
    valid = write(tmp_path / "v.csv", [("c", "x")])
    test = write(tmp_path / "s.csv", [("d", "y"), ("e", "z")])
    assert error_of(train, valid, test) == f"{test}: row 2: label 'z' does not occur in the training file {train}"
    both = write(tmp_path / "all.csv", [("a", "x", "train"), ("b", "y", "train"), ("c", "x", "valid"),
                                        ("d", "q", "test")], "text,label,split")
    assert error_of(both) == f"{both}: row 4: label 'q' does not occur in its training rows"


def test_one_class_left_after_the_drops(tmp_path):
    train = write(tmp_path / "t.csv", [("a", "x"), ("", "y"), ("b", "x")])
    with pytest.warns(DataWarning, match="dropped 1 row with an empty text"):
        message = error_of(train, write(tmp_path / "v.csv", [("c", "x")]))
    assert message == f"{train}: only one class ('x') in the labels: a classifier needs at least two"


def test_splits_come_from_one_place(tmp_path):
    split = write(tmp_path / "all.csv", [("a", "x", "train"), ("b", "y", "train"), ("c", "x", "valid")],
                  "text,label,split")
    valid = write(tmp_path / "v.csv", [("d", "x")])
    assert error_of(split, valid) == (f"{valid}: the valid rows come from both this file and the splits of {split}: "
                                      "give one")
    train = write(tmp_path / "t.csv", [("a", "x"), ("b", "y")])
    assert error_of(train, split) == (f"{split}: only the training data may say each row's split (task.train); drop "
                                      "the split column or give this file as task.train")
    only_valid = write(tmp_path / "ov.csv", [("a", "x", "valid")], "text,label,split")
    assert error_of(only_valid) == f"{only_valid}: no training rows (its splits name none as train)"


def test_owners_per_row_and_a_row_without_one(tmp_path):
    train = write(tmp_path / "t.csv", [("a", "x", "u1"), ("b", "y", "u2"), ("c", "x", "u1")], "text,label,user")
    valid = write(tmp_path / "v.csv", [("d", "x")])
    task = quiet_load(train, valid)
    assert task.train_users == ["u1", "u2", "u1"] and task.valid_users is None and task.report["users"] == 2
    partial = write(tmp_path / "p.csv", [("a", "x", "u1"), ("b", "y", "")], "text,label,user")
    assert error_of(partial, valid) == (f"{partial}: row 2 has no user, where other rows have one: give every row "
                                        "its owner, or none")


def test_the_config_section_drives_the_loader_and_the_test_rows_leave_the_digest_alone(tmp_path):
    rows = [(f"x{i}", "x") for i in range(10)] + [(f"y{i}", "y") for i in range(10)]
    path = write(tmp_path / "t.csv", rows)
    cfg = TaskConfig(name="textclf", train=path, valid_fraction=0.2, test_fraction=0.1, seed=4)
    task = load_configured(cfg)
    assert task.report["rows"] == {"train": 14, "valid": 4, "test": 2}
    same = load_text_task(path, valid_fraction=0.2, test_fraction=0.1, seed=4)
    assert same.test_texts == task.test_texts and same.digest() == task.digest()
    assert report_lines(task.report) == [f"train       14 rows  from {path}",
                                         f"valid        4 rows  from 20% of {path}, stratified by label (seed 4)",
                                         f"test         2 rows  from 10% of {path}, stratified by label (seed 4)",
                                         "2 classes"]
    json.dumps(task.report)  # goes into reports as it is
    with pytest.raises(ConfigError, match="needs task.train"):
        load_configured(TaskConfig(name="textclf"))
    with pytest.raises(ValueError, match="must leave training rows"):
        TaskConfig(name="textclf", valid_fraction=0.5, test_fraction=0.5)
