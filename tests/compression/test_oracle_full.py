"""oracle_full on the real MovieLens split with a small random student: it trains every weight, writes a loadable
artifact of the deployed format, keeps validation at least at the start, and never reads a validation or test item
beyond the server users' validation set."""

import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

import compression.oracle_full as oracle_full
from compression.distill.stages import StudentRec
from compression.oracle_full import next_item_examples, student_from_artifact, train_full_oracle
from compression.quant.export import exported_state, quantize_state
from compression.runtime import load_model
from compression.runtime.artifact import read_artifact, write_artifact
from compression.runtime.model import RUNTIME_KIND
from compression.runtime.tokenizer import SPECIALS
from compression.student import build_encoder
from edgefleet.config import StudentConfig, load_config
from edgefleet.progress import Reporter
from edgefleet.tasks.movielens.bundle import TaskBundle, every_user_valid, load_task
from edgefleet.tasks.movielens.protocol import evaluate


@pytest.fixture(scope="module")
def cfg():
    return load_config(preset="tiny")


@pytest.fixture(scope="module")
def task(cfg):
    return load_task(cfg.task)


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory, task):
    """A random INT8 student whose vocabulary spells every item text (frequent words whole, the rest by letter)."""
    texts = task.catalogue.item_texts()
    words = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    chars = sorted({c for t in texts for c in t.lower() if not c.isspace()})
    vocab = list(dict.fromkeys([*SPECIALS, *(w for w, _ in words.most_common(400)), *chars,
                                *(f"##{c}" for c in chars)]))
    torch.manual_seed(5)
    student_cfg = StudentConfig(embed_dim=16, hidden=32, layers=1, heads=1, ffn=64)
    student = StudentRec(build_encoder(student_cfg, len(vocab), 32), oracle_full.RecHead(32, 16, 10, 0.1),
                         teacher_hidden=8)
    config = {"runtime": RUNTIME_KIND, "student": student_cfg.model_dump(), "max_len": 32, "dim": 16,
              "history_len": 10, "bits": 8, "int4_group": 16, "genre_threshold": 0.5}
    path = tmp_path_factory.mktemp("start") / "model.eflt"
    write_artifact(path, config, vocab, quantize_state(exported_state(student), 8, 16), {"source": "test"})
    return path


class Untouchable:
    """Stands for data the oracle may not read: any use of it fails the run."""

    def __getattr__(self, name):
        raise AssertionError(f"oracle_full read held-out data ({name})")

    def __getitem__(self, key):
        raise AssertionError("oracle_full read held-out data")

    def __array__(self, *args, **kwargs):
        raise AssertionError("oracle_full read held-out data")

    def __len__(self):
        raise AssertionError("oracle_full read held-out data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cfg, task, small_artifact):
    """One short run where every user's test item, and the device users' test set, are poisoned: the oracle picks
    its epoch on every user's validation item (a set built beforehand, as the protocol builds it: its negatives
    avoid the user's test item) and reads no test item itself."""
    hidden = TaskBundle(task.catalogue, replace(task.split, test=Untouchable()), task.valid, Untouchable())
    every = every_user_valid(task)
    patch = pytest.MonkeyPatch()
    patch.setattr(oracle_full, "load_task", lambda _: hidden)
    patch.setattr(oracle_full, "every_user_valid", lambda _: every)
    try:
        out = tmp_path_factory.mktemp("oracle_full")
        path, log = train_full_oracle(small_artifact, cfg, out, Reporter(enabled=False), epochs=2, lr=3e-3,
                                      batch_size=2048, negatives=256, max_steps_per_epoch=8)
    finally:
        patch.undo()
    return out, path, log


def test_the_artifact_loads_in_the_device_runtime_with_the_deployed_format(small_artifact, trained):
    out, path, _ = trained
    assert path == out / "model.eflt"
    start, written = read_artifact(small_artifact), read_artifact(path)
    assert written.vocab == start.vocab
    assert {k: v for k, v in written.config.items() if k != "genre_threshold"} == \
           {k: v for k, v in start.config.items() if k != "genre_threshold"}
    assert [(n, t.kind, t.shape) for n, t in written.tensors.items()] == \
           [(n, t.kind, t.shape) for n, t in start.tensors.items()]
    model = load_model(written)
    items, prior = model.item_vectors(["Toy Story (1995) Animation Children's Comedy", "Heat (1995) Action Crime"])
    assert np.allclose(np.linalg.norm(items, axis=1), 1.0) and np.isfinite(prior).all()
    assert sorted(model.recommend(history=items[[0]], items=items, prior=prior, k=2).tolist()) == [0, 1]


def test_every_part_of_the_student_trained(small_artifact, trained):
    start, written = read_artifact(small_artifact).tensors, read_artifact(trained[1]).tensors
    for name in ("encoder.word.weight", "encoder.blocks.0.q.weight", "encoder.blocks.0.ff2.weight",
                 "head.item_head.weight", "head.user_head.weight", "head.recency", "genre.weight"):
        assert not np.array_equal(start[name].dequantize(), written[name].dequantize()), name


def test_the_chosen_epoch_is_the_best_on_validation_and_is_what_was_written(task, trained):
    _, path, log = trained
    assert [row["epoch"] for row in log] == [0, 1, 2]
    chosen = [row for row in log if row["chosen"]]
    assert len(chosen) == 1
    assert chosen[0]["valid"] == max(row["valid"] for row in log) >= log[0]["valid"]
    assert chosen[0]["epoch"] > 0  # a random start is easy to beat: the training did something
    artifact = read_artifact(path)
    assert artifact.meta["chosen_epoch"] == chosen[0]["epoch"]
    tokens = oracle_full.encode_texts(load_model(artifact).tokenizer, task.catalogue.item_texts())
    rescored = evaluate(student_from_artifact(artifact).scorer(tokens, 1.0), every_user_valid(task))["hr@10"]
    assert rescored == pytest.approx(chosen[0]["valid"])


def test_training_examples_are_every_users_train_items_and_nothing_held_out(task):
    split = task.split
    users, hist_ids, hist_mask, targets = next_item_examples(split, 10)
    assert set(users.tolist()) == set(range(split.n_users))  # server-owned and device-owned users alike
    assert len(targets) == sum(len(seq) - 1 for seq in split.train)
    for row in np.random.default_rng(0).choice(len(targets), 500, replace=False):
        u = users[row]
        used = set(hist_ids[row][hist_mask[row]].tolist()) | {int(targets[row])}
        assert used <= set(split.train[u].tolist())
        assert split.valid[u] not in used and split.test[u] not in used
