"""Ranking metrics (HR@K, NDCG@K, MRR) from the rank of the held-out item, exact under score ties.

A model that gives the held-out item the same score as g other candidates is neither credited with the best
nor blamed with the worst of those places: each metric is its expectation under a uniformly random order of
the tied candidates. This matters for count-based baselines, where many items tie at zero.
"""

from __future__ import annotations

import numpy as np


def rank_counts(pos_scores: np.ndarray, cand_scores: np.ndarray, valid: np.ndarray | None = None):
    """Per row: how many candidates score strictly higher than the positive, and how many tie with it."""
    pos = pos_scores[:, None]
    keep = np.ones_like(cand_scores, dtype=bool) if valid is None else valid
    greater = ((cand_scores > pos) & keep).sum(axis=1)
    equal = ((cand_scores == pos) & keep).sum(axis=1)
    return greater, equal


def expected_metrics(greater: np.ndarray, equal: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per-row expected HR@k, NDCG@k and reciprocal rank when the positive lands uniformly in [g, g + e]."""
    greater = np.asarray(greater, dtype=np.int64)
    equal = np.asarray(equal, dtype=np.int64)
    span = equal + 1
    last = greater + equal  # worst 0-based rank
    hits = np.clip(np.minimum(last, k - 1) - greater + 1, 0, None)
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])  # gains[j] = sum_{r<j}
    lo = np.minimum(greater, k)
    hi = np.minimum(last + 1, k)
    ndcg = (gains[hi] - gains[lo]) / span
    top = int(last.max(initial=0)) + 2
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top))])  # harmonic[n] = H(n)
    mrr = (harmonic[last + 1] - harmonic[greater]) / span
    return {f"hr@{k}": hits / span, f"ndcg@{k}": ndcg, "mrr": mrr}


def summarize(per_row: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.mean(values)) for name, values in per_row.items()}
