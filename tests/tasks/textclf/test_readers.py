"""Every form a user's rows come in reads to the same rows; owners and splits are read; bad input is one line."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgefleet.errors import DataError
from edgefleet.tasks.textclf.readers import read_rows

RECORDS = [{"text": "good, really", "label": "pos", "user": "u1", "split": "train"},
           {"text": "bad", "label": "neg", "user": "u2", "split": "validation"},
           {"text": "fine", "label": "pos", "user": "u1", "split": "test"}]


def write_all_forms(tmp_path) -> list:
    csv = tmp_path / "t.csv"
    csv.write_text("text,label,user,split\n" + "".join(f'"{r["text"]}",{r["label"]},{r["user"]},{r["split"]}\n'
                                                     for r in RECORDS))
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    array = tmp_path / "t.json"
    array.write_text(json.dumps(RECORDS, indent=1))
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), parquet)
    return [csv, jsonl, array, parquet]


def test_csv_jsonl_json_array_and_parquet_read_the_same_rows(tmp_path):
    for path in write_all_forms(tmp_path):
        rows = read_rows(path)
        assert rows.texts == ["good, really", "bad", "fine"], path
        assert rows.keys == ["pos", "neg", "pos"]
        assert rows.users == ["u1", "u2", "u1"]
        assert rows.splits == ["train", "valid", "test"]
        assert rows.locs == ["row 1", "row 2", "row 3"]


def test_device_column_is_the_owner_and_integer_owners_become_strings(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [1, 2, 1], "device": [7, None, 9]}), path)
    rows = read_rows(path)
    assert rows.users == ["7", None, "9"] and rows.keys == ["1", "2", "1"] and rows.splits == [None] * 3


def test_empty_and_missing_texts_are_dropped_and_counted(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": null, "label": 1}\n{"text": " ", "label": 1}\n'
                    '{"text": "b", "label": 1}\n')
    rows = read_rows(path)
    assert rows.texts == ["a", "b"] and rows.locs == ["row 1", "row 4"] and rows.dropped_empty == 2


def test_a_saved_dataset_dict_gives_its_splits_and_class_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    saved = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}, features=features),
        "validation": datasets.Dataset.from_dict({"text": ["fine"], "label": [1]}, features=features),
        "unsupervised": datasets.Dataset.from_dict({"text": ["?"], "label": [0]}, features=features),
    })
    saved.save_to_disk(str(tmp_path / "ds"))
    rows = read_rows(tmp_path / "ds")
    assert rows.texts == ["good", "bad", "fine"] and rows.keys == ["pos", "neg", "pos"]
    assert rows.splits == ["train", "train", "valid"] and rows.locs[2] == "validation row 1"
    assert rows.skipped_splits == ("unsupervised",)
    single = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [3, 4], "user": ["a", "b"]})
    single.save_to_disk(str(tmp_path / "one"))
    one = read_rows(tmp_path / "one")
    assert one.keys == ["3", "4"] and one.users == ["a", "b"] and one.splits == [None, None]


def error_of(path) -> str:
    with pytest.raises(DataError) as info:
        read_rows(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_folder_that_is_no_saved_dataset(tmp_path):
    assert error_of(tmp_path) == (f"{tmp_path}: a folder, but not a dataset saved with save_to_disk "
                                  "(no dataset_dict.json or state.json)")


def test_a_damaged_saved_dataset(tmp_path):
    (tmp_path / "state.json").write_text("{")
    assert error_of(tmp_path).startswith(f"{tmp_path}: cannot read the saved dataset: ")


def test_parquet_problems(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert error_of(bad).startswith(f"{bad}: cannot parse as Parquet: ")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"sentence": ["a"], "label": [1]}), path)
    assert error_of(path) == f"{path}: missing column 'text' (found: sentence, label)"


@pytest.mark.parametrize("name, text, message", [
    ("t.csv", "text,label,user,device\na,1,x,y\n", "both a 'user' and a 'device' column: keep one (the row's owner)"),
    ("t.jsonl", '{"text": "a", "label": 1, "user": 1, "device": 2}\n',
     "row 1 has both a 'user' and a 'device' field: keep one (the row's owner)"),
    ("t.csv", "text,label,split\na,1,train\nb,2,holdout\n",
     'row 2: split "holdout" is not one of train, valid, validation, test'),
    ("t.jsonl", '{"text": "a", "label": 1, "user": [1]}\n', "row 1: user must be a string or an integer, got [1]"),
])
def test_owner_and_split_problems_name_the_row(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    assert error_of(path) == f"{path}: {message}"


def test_a_file_of_empty_texts_only(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n ,a\n,b\n")
    assert error_of(path) == f"{path}: no rows left: every one of its 2 rows has an empty text"
