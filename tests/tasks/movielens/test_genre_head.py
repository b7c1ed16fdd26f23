"""The numpy genre head: its hand-written gradient equals torch autograd, its micro-F1 equals the torch side's, and
its held-out items are compression's."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgefleet.tasks.movielens import genre
from edgefleet.tasks.movielens.genre_head import (
    GENRE_KEYS,
    best_threshold,
    break_even_f1,
    held_out_items,
    loss_and_grads,
    micro_f1,
    probabilities,
)


def _setup(seed=0, n=7, hidden=12, genres=5):
    rng = np.random.default_rng(seed)
    params = {"genre.weight": rng.normal(size=(genres, hidden)).astype(np.float32),
              "genre.bias": rng.normal(size=genres).astype(np.float32)}
    pooled = (3 * rng.normal(size=(n, hidden))).astype(np.float32)  # logits far into both tails
    labels = rng.random((n, genres)) < 0.3
    return params, pooled, labels


def test_gradients_match_autograd():
    params, pooled, labels = _setup()
    loss, grads = loss_and_grads(params, pooled, labels)

    w = torch.tensor(params["genre.weight"], requires_grad=True)
    b = torch.tensor(params["genre.bias"], requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(F.linear(torch.tensor(pooled), w, b), torch.tensor(labels).float())
    ref.backward()

    assert loss == pytest.approx(ref.item(), rel=1e-5)
    assert set(grads) == set(GENRE_KEYS)
    np.testing.assert_allclose(grads["genre.weight"], w.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["genre.bias"], b.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_probabilities_micro_f1_and_threshold_match_the_torch_side():
    params, pooled, labels = _setup(1, n=40)
    probs = torch.sigmoid(F.linear(torch.tensor(pooled), torch.tensor(params["genre.weight"]),
                                   torch.tensor(params["genre.bias"])))
    mine = probabilities(params, pooled)
    np.testing.assert_allclose(mine, probs.numpy(), atol=1e-6)
    gold = torch.tensor(labels).float()
    for threshold in (0.2, 0.4, 0.5, 0.9):
        assert micro_f1(mine >= threshold, labels) == pytest.approx(genre.micro_f1(probs, gold, threshold))
    assert best_threshold(mine, labels) == pytest.approx(genre.best_threshold(probs, gold))


def test_micro_f1_by_hand():
    pred = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    gold = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    # tp = 2, fp = 1 (row 0, genre 2), fn = 1 (row 1, genre 2)
    assert micro_f1(pred, gold) == pytest.approx(4 / 6)
    assert micro_f1(np.zeros((2, 3), bool), np.zeros((2, 3), bool)) == 0.0


def test_break_even_f1_by_hand():
    logits = np.array([[3.0, 1.0, -1.0], [2.0, 0.5, -2.0]])
    gold = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    # 3 true pairs: the 3 highest logits are (0,0) true, (1,0) and (0,1) false
    assert break_even_f1(logits, gold) == pytest.approx(1 / 3)
    assert break_even_f1(np.where(gold, 1.0, 0.0), gold) == 1.0
    assert np.isnan(break_even_f1(logits, np.zeros_like(gold)))


def test_the_held_out_items_are_compressions(toy_catalogue):
    held = held_out_items(toy_catalogue.n_items, seed=3)
    task = genre.GenreTask.build(toy_catalogue, seed=3)
    assert held.tolist() == task.test_items.tolist() and len(held) == round(0.2 * 12)
    assert held.tolist() == sorted(held.tolist())
    assert not set(held.tolist()) & set(task.train_items.tolist())
    assert held_out_items(1682, 0).tolist() == held_out_items(1682, 0).tolist() != held_out_items(1682, 1).tolist()
