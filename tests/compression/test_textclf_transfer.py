"""The XtremeDistil transfer set of a classifier: what goes in, what never does, and the teacher's targets for it."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertTokenizerFast

from compression.teacher.two_tower import ItemTokens
from compression.textclf.models import TextTeacher, predict
from compression.textclf.transfer import augment, read_unlabeled, teacher_outputs, transfer_texts
from edgefleet.errors import DataError

TRAIN = ["the striker scored twice in the final", "the chef baked a loaf of bread", "heavy rain hit the coast",
         "a cold wind covered the hills tonight"]


def test_training_texts_come_first_then_unlabelled_then_views_up_to_the_size():
    unlabeled = ["thick fog over the valley", "The chef baked a loaf of  bread", "snow returned to the city",
                 "our goalkeeper was injured"]
    held_out = ["SNOW returned to the city", "the coach lost badly"]
    made = transfer_texts(TRAIN, unlabeled, held_out, size=30, seed=0)
    texts = made.texts
    assert texts[:4] == TRAIN
    assert texts[4:6] == ["thick fog over the valley", "our goalkeeper was injured"]  # a repeat, a held-out text out
    keys = [" ".join(t.split()).casefold() for t in texts]
    assert len(set(keys)) == len(keys) == 30
    assert not {"snow returned to the city", "the coach lost badly"} & set(keys)
    r = made.report
    assert (r["texts"], r["train"], r["unlabeled_given"], r["unlabeled"], r["unlabeled_left_out"], r["views"]) == \
        (30, 4, 4, 2, 2, 24)
    sources = [t.split() for t in TRAIN + unlabeled]
    for view in texts[6:]:  # every view is a subsequence of the words of one source text
        assert any(_subsequence(view.split(), words) for words in sources), view
    assert transfer_texts(TRAIN, unlabeled, held_out, size=30, seed=0).texts == texts
    assert transfer_texts(TRAIN, unlabeled, held_out, size=30, seed=1).texts != texts


def _subsequence(part: list[str], words: list[str]) -> bool:
    it = iter(words)
    return all(w in it for w in part)


def test_unlabelled_texts_beyond_the_size_are_a_seeded_sample_and_training_texts_always_stay():
    unlabeled = [f"unlabelled text number {i}" for i in range(50)]
    made = transfer_texts(TRAIN, unlabeled, [], size=10, seed=3)
    assert made.texts[:4] == TRAIN and len(made.texts) == 10 and made.report["views"] == 0
    assert set(made.texts[4:]) < set(unlabeled)
    assert transfer_texts(TRAIN, [], [], size=2, seed=0).texts == TRAIN  # never fewer than the training texts


def test_augment_drops_words_or_keeps_a_contiguous_span():
    rng = np.random.default_rng(0)
    words = "one two three four five six seven eight nine ten".split()
    spans = drops = 0
    for _ in range(200):
        view = augment(" ".join(words), rng).split()
        assert view and _subsequence(view, words)
        start = words.index(view[0])
        if view == words[start:start + len(view)] and len(view) < len(words):
            spans += 1
        else:
            drops += 1
    assert spans > 50 and drops > 50
    assert augment("alone", rng) == "alone"


@pytest.mark.parametrize("name, content", [
    ("u.txt", "first text\n\n  second   text \nthird\n"),
    ("u.csv", "label,text\nx,first text\ny,second text\nz,third\n"),
    ("u.jsonl", '{"text": "first text"}\n"second text"\n{"text": "third", "label": 3}\n'),
    ("u.json", json.dumps([{"text": "first text"}, {"text": "second text"}, "third"])),
])
def test_unlabelled_texts_in_each_form(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    assert read_unlabeled(path) == ["first text", "second text", "third"]


def test_unlabelled_parquet_and_saved_dataset(tmp_path):
    import datasets

    pd.DataFrame({"text": ["a b", None, "c"]}).to_parquet(tmp_path / "u.parquet")
    assert read_unlabeled(tmp_path / "u.parquet") == ["a b", "c"]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["x"], "label": [0]}),
                          "unsupervised": datasets.Dataset.from_dict({"text": ["y", "z"]})}).save_to_disk(
        str(tmp_path / "saved"))
    assert read_unlabeled(tmp_path / "saved") == ["x", "y", "z"]


@pytest.mark.parametrize("name, content, reason", [
    ("u.csv", "sentence,label\na,b\n", "missing column 'text' (found: sentence, label)"),
    ("u.jsonl", '{"sentence": "a"}\n', "row 1 has no 'text' field"),
    ("u.jsonl", '{"text": 3}\n', "row 1: text must be a string, got 3"),
    ("u.txt", "\n  \n", "the file is empty"),
    ("u.csv", "text\n  \n", "no unlabelled texts in the file"),
])
def test_bad_unlabelled_file_is_one_line_naming_it(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_unlabeled(path)
    assert str(info.value) == f"{path}: {reason}"


def test_missing_unlabelled_file(tmp_path):
    with pytest.raises(DataError, match="unlabelled text file not found"):
        read_unlabeled(tmp_path / "nope.txt")


def test_teacher_outputs_take_the_known_rows_compute_the_rest_and_are_cached(tiny_bert, toy_vocab, tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(toy_vocab + [f"[unused{i}]" for i in range(40 - len(toy_vocab))]))
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    teacher = TextTeacher(tiny_bert, freeze_layers=1, n_classes=3).eval()
    texts = ["toy story", "star wars (1977)", "golden eye", "comedy drama action"]
    known = (torch.full((1, 3), 7.0), torch.full((1, 64), 7.0))  # the first text's, as the caller has them
    logits, pooled = teacher_outputs(teacher, tokenizer, texts, 16, tmp_path, known, chunk=2)
    tokens = ItemTokens.build(tokenizer, texts[1:], 16)
    want_logits, want_pooled = predict(teacher, teacher.lower(tokens), tokens.mask)
    assert torch.equal(logits[0], known[0][0]) and torch.equal(pooled[0], known[1][0])
    torch.testing.assert_close(logits[1:], want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled[1:], want_pooled, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        teacher.classifier.bias.add_(1.0)  # a second call reads the cache, not the model
    again = teacher_outputs(teacher, tokenizer, texts, 16, tmp_path, known)
    assert torch.equal(again[0], logits) and torch.equal(again[1], pooled)
