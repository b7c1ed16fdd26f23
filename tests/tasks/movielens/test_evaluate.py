"""The server's global evaluation: ranking over the item texts only, genre micro-F1 over the held-out titles at the
threshold chosen on the other titles."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edgefleet.tasks.movielens.device_head import SHARED_KEYS
from edgefleet.tasks.movielens.evaluate import GlobalEvaluator, HeadScorer
from edgefleet.tasks.movielens.genre_head import best_threshold, held_out_items, micro_f1, probabilities
from edgefleet.tasks.movielens.protocol import EvalSet, evaluate
from edgefleet.tasks.movielens.split import make_split
from edgefleet.tasks.movielens.teacher_head import RecHead

HIDDEN = 6


class FakeModel:
    """A runtime model whose encoder maps each text to a fixed random vector, and which records what it encoded."""

    def __init__(self, texts):
        self.config = {"history_len": 4}
        self.vectors = np.random.default_rng(0).normal(size=(len(texts), HIDDEN)).astype(np.float32)
        self.index = {t: i for i, t in enumerate(texts)}
        self.encoded = []
        self.tokenizer = SimpleNamespace(encode=lambda t: SimpleNamespace(ids=[self.index[t]]))

    def encode_ids(self, ids):
        self.encoded.append(ids[0])
        return self.vectors[ids[0]]


def test_ranking_reads_item_texts_and_genres_the_held_out_titles(toy_catalogue):
    cat = toy_catalogue
    n = cat.n_items
    texts = cat.item_texts() + list(cat.titles)
    model = FakeModel(texts)
    split = make_split(cat, 0.2, seed=0)
    test = EvalSet.build(split, split.device_users, "test", 5, 0, 10)
    held = held_out_items(n, seed=0)
    torch.manual_seed(0)
    state = RecHead(HIDDEN, 4, 4, 0.1).state_dict()
    rng = np.random.default_rng(1)
    params = {k: np.atleast_1d(state[k.removeprefix("head.")].numpy()).astype(np.float32) for k in SHARED_KEYS}
    params.update({"genre.weight": rng.normal(size=(19, HIDDEN)).astype(np.float32),
                   "genre.bias": rng.normal(size=19).astype(np.float32)})

    evaluator = GlobalEvaluator(model, texts, test, cat.genres, held)
    got = evaluator(params)

    assert sorted(model.encoded) == list(range(2 * n))  # each text once, at the start
    ranking = evaluate(HeadScorer(params, model.vectors[:n], 4), test)
    assert got["hr@10"] == ranking["hr@10"] and got["mrr"] == ranking["mrr"]
    # Per user, for paired intervals: one value per test user, whose mean is the figure.
    for key in ("hr@10", "ndcg@10", "mrr"):
        rows = evaluator.per_row(params, key)
        assert rows.shape == (len(test.users),) and rows.mean() == pytest.approx(got[key])
    probs = probabilities(params, model.vectors[n:])
    rest = np.setdiff1d(np.arange(n), held)
    assert got["genre_threshold"] == best_threshold(probs[rest], cat.genres[rest])
    assert got["genre_f1"] == micro_f1(probs[held] >= got["genre_threshold"], cat.genres[held])
    # The held-out labels score the threshold, never choose it.
    flipped = cat.genres.copy()
    flipped[held] = ~flipped[held]
    again = GlobalEvaluator(model, texts, test, flipped, held)(params)
    assert again["genre_threshold"] == got["genre_threshold"] and again["genre_f1"] != got["genre_f1"]
