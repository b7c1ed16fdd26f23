"""Ranking metrics against hand-computed values."""

import math

import numpy as np
import pytest

from edgefleet.tasks.movielens.metrics import expected_metrics, rank_counts


def test_rank_counts_strict_and_ties():
    pos = np.array([0.5, 0.5])
    cand = np.array([[0.9, 0.5, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    g, e = rank_counts(pos, cand)
    assert g.tolist() == [1, 0]
    assert e.tolist() == [2, 0]


def test_rank_counts_respects_validity_mask():
    g, e = rank_counts(np.array([0.5]), np.array([[0.9, 0.8, 0.5]]), np.array([[True, False, False]]))
    assert (g.tolist(), e.tolist()) == ([1], [0])


@pytest.mark.parametrize("rank, hr, ndcg, mrr", [
    (0, 1.0, 1.0, 1.0),
    (1, 1.0, 1 / math.log2(3), 1 / 2),
    (9, 1.0, 1 / math.log2(11), 1 / 10),
    (10, 0.0, 0.0, 1 / 11),
    (57, 0.0, 0.0, 1 / 58),
])
def test_untied_ranks(rank, hr, ndcg, mrr):
    m = expected_metrics(np.array([rank]), np.array([0]), k=10)
    assert m["hr@10"][0] == pytest.approx(hr)
    assert m["ndcg@10"][0] == pytest.approx(ndcg)
    assert m["mrr"][0] == pytest.approx(mrr)


def test_ties_give_the_expectation_over_tied_positions():
    # Positive tied with 3 others after 8 strictly better: rank 8, 9, 10 or 11, each with probability 1/4.
    m = expected_metrics(np.array([8]), np.array([3]), k=10)
    assert m["hr@10"][0] == pytest.approx(2 / 4)
    assert m["ndcg@10"][0] == pytest.approx((1 / math.log2(10) + 1 / math.log2(11)) / 4)
    assert m["mrr"][0] == pytest.approx((1 / 9 + 1 / 10 + 1 / 11 + 1 / 12) / 4)


def test_everything_tied_is_random_guessing():
    # 1 positive + 99 negatives all tied: HR@10 of a random ranking is 10/100.
    m = expected_metrics(np.array([0]), np.array([99]), k=10)
    assert m["hr@10"][0] == pytest.approx(0.10)
    assert m["mrr"][0] == pytest.approx(sum(1 / r for r in range(1, 101)) / 100)


def test_other_k():
    m = expected_metrics(np.array([0, 4, 5]), np.array([0, 0, 0]), k=5)
    assert m["hr@5"].tolist() == [1.0, 1.0, 0.0]
