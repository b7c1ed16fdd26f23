"""Genre tagging: micro-F1 by hand, the threshold search, and the seeded item split."""

import pytest
import torch

from edgefleet.tasks.movielens.genre import GenreTask, best_threshold, micro_f1


def test_micro_f1_by_hand():
    probs = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.8, 0.4]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    # threshold 0.5: predicted {0,2} and {1}; tp = 2 (0 and 1), fp = 1 (item 0 genre 2), fn = 1 (item 1 genre 2)
    assert micro_f1(probs, labels, 0.5) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert micro_f1(probs, labels, 0.35) == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))


def test_best_threshold_finds_the_separating_value():
    probs = torch.tensor([[0.3, 0.1], [0.25, 0.05]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = best_threshold(probs, labels)
    assert 0.1 < t <= 0.25 and micro_f1(probs, labels, t) == 1.0


def test_genre_split_is_a_seeded_partition(toy_catalogue):
    a = GenreTask.build(toy_catalogue, seed=3)
    b = GenreTask.build(toy_catalogue, seed=3)
    assert len(a.test_items) == round(0.2 * 12)
    assert torch.equal(a.test_items, b.test_items)
    assert sorted(torch.cat([a.train_items, a.test_items]).tolist()) == list(range(12))
    assert a.labels.shape == (12, 19)
