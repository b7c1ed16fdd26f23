"""`compress --train/--valid`: every bad input is one DataError line naming the file; one real end-to-end run (the
WordNet one is in test_textclf_wordnet.py)."""

import json
import math
import time

import numpy as np
import pytest
import torch

from compression.distill.stages import softened_kl
from compression.teacher.two_tower import ItemTokens
from compression.textclf.models import TextTeacher, predict
from edgefleet.errors import DataError
from edgefleet.tasks.textclf.data import DataWarning, load_text_task, read_rows


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def valid_csv(tmp_path):
    return write(tmp_path / "valid.csv", "text,label\nnice day,pos\nawful day,neg\n")


def error_of(train, valid) -> str:
    with pytest.raises(DataError) as info:
        load_text_task(train, valid)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_csv_and_jsonl_give_the_same_task_with_sorted_string_labels(tmp_path):
    csv = write(tmp_path / "t.csv", 'text,label\n"good, really",pos\nbad,neg\nfine,neutral\n')
    rows = [{"text": "good, really", "label": "pos"}, {"text": "bad", "label": "neg"},
            {"text": "fine", "label": "neutral"}]
    jsonl = write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b = load_text_task(csv, csv), load_text_task(jsonl, jsonl)
    assert a.labels == ["neg", "neutral", "pos"]
    assert a.train_texts == ["good, really", "bad", "fine"]
    assert a.train_y.tolist() == [2, 0, 1]
    assert a.digest() == b.digest()


def test_integer_labels_sort_numerically_and_match_across_formats(tmp_path):
    train = write(tmp_path / "t.csv", "label,text\n10,a\n2,b\n10,c\n")
    valid = write(tmp_path / "v.jsonl", '{"text": "d", "label": 2}\n{"text": "e", "label": "10"}\n')
    task = load_text_task(train, valid)
    assert task.labels == [2, 10]
    assert task.train_y.tolist() == [1, 0, 1]
    assert task.valid_y.tolist() == [0, 1]
    assert task.valid_y.dtype == np.int64


def test_json_extension_reads_json_lines(tmp_path):
    path = write(tmp_path / "t.json", '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    assert read_rows(path).keys == ["0", "1"]


def test_missing_file(tmp_path, valid_csv):
    assert error_of(tmp_path / "nope.csv", valid_csv) == f"{tmp_path / 'nope.csv'}: data file not found"


def test_unknown_extension(tmp_path, valid_csv):
    path = write(tmp_path / "t.txt", "text,label\na,b\n")
    message = error_of(path, valid_csv)
    assert message.startswith(f"{path}: unsupported file type '.txt'") and ".csv" in message


@pytest.mark.parametrize("name, text, reason", [
    ("t.csv", 'text,label\n"never closed,pos\nb,neg\n', "cannot parse as CSV"),
    ("t.csv", "text,label\na,pos,extra\n", "row 1 has 3 fields, the header 2"),
    ("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label}\n', "cannot parse line 2 as JSON"),
    ("t.jsonl", '["a", 1]\n', "row 1 is not a JSON object"),
])
def test_unparsable_file(tmp_path, valid_csv, name, text, reason):
    path = write(tmp_path / name, text)
    message = error_of(path, valid_csv)
    assert message.startswith(f"{path}: ") and reason in message


def test_not_utf8(tmp_path, valid_csv):
    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\n\xff\xfe,pos\n")
    assert "not UTF-8" in error_of(path, valid_csv)


@pytest.mark.parametrize("column, text", [
    ("text", "sentence,label\na,pos\nb,neg\n"),
    ("label", "text,class\na,pos\nb,neg\n"),
])
def test_missing_column_in_csv_names_it(tmp_path, valid_csv, column, text):
    path = write(tmp_path / "t.csv", text)
    assert error_of(path, valid_csv).startswith(f"{path}: missing column '{column}'")


@pytest.mark.parametrize("column, line", [("text", '{"label": 1}'), ("label", '{"text": "b"}')])
def test_missing_column_in_jsonl_names_it_and_the_row(tmp_path, valid_csv, column, line):
    path = write(tmp_path / "t.jsonl", '{"text": "a", "label": 0}\n' + line + "\n")
    assert error_of(path, valid_csv) == f"{path}: missing column '{column}' in row 2"


@pytest.mark.parametrize("name, text", [("t.csv", ""), ("t.jsonl", ""), ("t.jsonl", "\n  \n")])
def test_empty_file(tmp_path, valid_csv, name, text):
    path = write(tmp_path / name, text)
    assert error_of(path, valid_csv) == f"{path}: the file is empty"


def test_header_without_rows(tmp_path, valid_csv):
    path = write(tmp_path / "t.csv", "text,label\n")
    assert error_of(path, valid_csv) == f"{path}: no rows (only a header)"


@pytest.mark.parametrize("name, text", [
    ("t.csv", "text,label\na,pos\n   ,neg\nb,neg\n"),
    ("t.jsonl", '{"text": "a", "label": "pos"}\n{"text": "", "label": "neg"}\n{"text": "b", "label": "neg"}\n'),
])
def test_empty_text_is_dropped_with_one_warning_line(tmp_path, valid_csv, name, text):
    path = write(tmp_path / name, text)
    with pytest.warns(DataWarning) as caught:
        task = load_text_task(path, valid_csv)
    assert task.train_texts == ["a", "b"]
    assert [str(w.message) for w in caught] == [f"{path}: dropped 1 row with an empty text"]


@pytest.mark.parametrize("line, reason", [
    ('{"text": 3, "label": 1}', "row 2: text must be a string, got 3"),
    ('{"text": "b", "label": null}', "row 2: label must be a string or an integer, got null"),
    ('{"text": "b", "label": " "}', "row 2 has an empty label"),
])
def test_bad_jsonl_values(tmp_path, valid_csv, line, reason):
    path = write(tmp_path / "t.jsonl", '{"text": "a", "label": 0}\n' + line + "\n")
    assert error_of(path, valid_csv) == f"{path}: {reason}"


def test_one_class_in_train(tmp_path, valid_csv):
    path = write(tmp_path / "t.csv", "text,label\na,pos\nb,pos\n")
    message = error_of(path, valid_csv)
    assert message.startswith(f"{path}: only one class ('pos')")


def test_valid_label_unseen_in_train(tmp_path):
    train = write(tmp_path / "t.csv", "text,label\na,pos\nb,neg\n")
    valid = write(tmp_path / "v.csv", "text,label\nc,neg\nd,meh\n")
    assert error_of(train, valid) == f"{valid}: row 2: label 'meh' does not occur in the training file {train}"


def test_valid_file_is_checked_too(tmp_path):
    train = write(tmp_path / "t.csv", "text,label\na,pos\nb,neg\n")
    assert error_of(train, tmp_path / "v.jsonl") == f"{tmp_path / 'v.jsonl'}: data file not found"


def test_softened_kl_by_hand():
    target, same = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.0, 0.0]])
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)  # KL([1/4, 3/4] || [1/2, 1/2])
    assert softened_kl(target, same, 1.0).item() == pytest.approx(expected, rel=1e-5)
    assert softened_kl(target * 2, same, 2.0).item() == pytest.approx(4 * expected, rel=1e-5)
    assert softened_kl(target, target, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_teacher_freezes_its_bottom_layers_and_predict_keeps_row_order(tiny_bert):
    teacher = TextTeacher(tiny_bert, freeze_layers=1, n_classes=3)
    trainable = {n.split(".")[1] if n.startswith("bert.") else n for n, p in teacher.named_parameters()
                 if p.requires_grad}
    assert trainable == {"encoder", "classifier.weight", "classifier.bias"}
    assert not any(p.requires_grad for p in tiny_bert.encoder.layer[0].parameters())
    teacher.eval()
    torch.manual_seed(1)
    lengths = [3, 9, 5, 9, 2]
    ids = torch.randint(5, 40, (5, 9))
    mask = (torch.arange(9)[None] < torch.tensor(lengths)[:, None]).long()
    lower = teacher.lower(ItemTokens(ids, mask))
    logits, pooled = predict(teacher, lower, mask)
    with torch.no_grad():
        for r, n in enumerate(lengths):  # each row alone, unpadded
            one_logits, one_pooled = teacher(lower[r:r + 1, :n], mask[r:r + 1, :n])
            assert torch.allclose(pooled[r], one_pooled[0], atol=1e-5)
            assert torch.allclose(logits[r], one_logits[0], atol=1e-5)


# A small real-language task: sentences about sports, cooking and weather, made from templates.
TOPICS = {
    "sports": (["The striker", "Our goalkeeper", "The home team", "The coach", "A young sprinter", "The captain"],
               ["scored twice in", "trained hard before", "was injured during", "celebrated after",
                "lost badly in", "was praised for"],
               ["the final match", "the league game", "the marathon", "the cup semifinal", "the penalty shootout"]),
    "cooking": (["The chef", "My grandmother", "The baker", "Our cook", "A student", "The restaurant"],
                ["slowly simmered", "carefully seasoned", "baked", "chopped the onions for", "burned",
                 "served"],
                ["the tomato soup", "a loaf of bread", "the garlic pasta", "the roast chicken", "the chocolate cake"]),
    "weather": (["Heavy rain", "A cold wind", "Thick fog", "The storm", "Bright sunshine", "Light snow"],
                ["is expected over", "covered", "will move across", "slowly cleared from", "hit",
                 "returned to"],
                ["the coast tonight", "the northern hills", "the valley this morning", "the city by noon",
                 "the mountains tomorrow"]),
}


def topic_rows(n_per_class: int, offset: int) -> list[dict]:
    """Deterministic sentences; `offset` walks the template grid so train and valid differ."""
    rows = []
    for label, (subjects, verbs, objects) in TOPICS.items():
        for i in range(offset, offset + n_per_class):
            s, v, o = subjects[i % 6], verbs[(i // 6) % 6], objects[(i * 7 + i // 36) % 5]
            rows.append({"text": f"{s} {v} {o}.", "label": label})
    return rows


@pytest.mark.slow
def test_compress_own_text_task_end_to_end(tmp_path, capsys):
    from compression.runtime.artifact import read_artifact
    from edgefleet.cli import main

    train, valid = tmp_path / "train.csv", tmp_path / "valid.jsonl"
    train.write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in topic_rows(67, 0)))
    valid.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(20, 100)))
    out = tmp_path / "run"
    started = time.perf_counter()
    code = main(["--quiet", "compress", "--preset", "tiny", "--train", str(train), "--valid", str(valid),
                 "--out", str(out), "--set", f'artifacts_dir="{tmp_path / "artifacts"}"'])
    seconds = time.perf_counter() - started
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "compression_report.json").read_text())
    for key in ("artifact_bytes", "artifact_path", "teacher", "student", "retention", "size_breakdown", "labels",
                "rows", "stages", "config"):
        assert key in report
    assert report["labels"] == ["cooking", "sports", "weather"]
    assert report["rows"] == {"train": 181, "valid": 60, "test": 20}  # test: task.test_fraction of the 201
    t, s = report["teacher"]["accuracy"], report["student"]["accuracy"]
    assert 0.0 <= s <= 1.0 and 0.0 <= t <= 1.0
    assert t > 0.6  # chance is 1/3
    assert report["retention"]["accuracy"] == pytest.approx(s / t) and report["retention"]["accuracy"] > 0
    assert report["student"]["params"] < report["teacher"]["params"] / 20
    assert sum(report["size_breakdown"].values()) == report["artifact_bytes"]
    assert any(st["name"].startswith("cross distillation") for st in report["stages"])
    artifact = read_artifact(out / "model.eflt")
    assert artifact.nbytes == report["artifact_bytes"]
    assert artifact.config["runtime"] == "text-classifier"
    assert artifact.config["labels"] == report["labels"]
    assert "classifier.weight" in artifact.tensors and not any(n.startswith("hid_proj") for n in artifact.tensors)
    assert "retention" in printed
    print(f"\ne2e {seconds:.1f} s: teacher {t:.4f}, student {s:.4f}, retention {report['retention']['accuracy']:.3f}, "
          f"artifact {report['artifact_bytes']:,} B")
