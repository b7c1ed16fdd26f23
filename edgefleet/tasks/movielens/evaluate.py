"""Global evaluation of the shared heads, on the server: recommendation over every device-owned user's held-out
test item, genre tagging over the catalogue's held-out items.

The device encoder is frozen, so the catalogue is encoded once with the device runtime and each round only the
heads change. Recommendation is the protocol of edgefleet/tasks/movielens/protocol.py on each user's whole history
(train + validation), exactly what `edgefleet compress` reports for the student: round 0 here reproduces its figure.
Genre tagging is scored as compression scores it: micro-F1 on the titles of the items no genre head trains on
(genre_head.py `held_out_items`), at the threshold chosen on the other items' titles (public catalogue labels), so
round 0 reproduces compression's figure too. The threshold is chosen again each round: the head recalibrates as
devices train it, and a threshold fixed at deployment would score that drift rather than the tagging (with the tiny
preset's head, F1 at the deployed threshold falls while the held-out loss falls too).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgefleet.tasks.movielens.device_head import Params, item_table, right_aligned, scores, user_vectors
from edgefleet.tasks.movielens.genre_head import best_threshold, micro_f1, probabilities
from edgefleet.tasks.movielens.protocol import EvalSet, evaluate, per_row


def encode_all(model: Any, texts: Sequence[str]) -> np.ndarray:
    """The frozen device encoder's pooled vector of every text (item texts, then titles)."""
    return np.stack([model.encode_ids(model.tokenizer.encode(t).ids) for t in texts]).astype(np.float32)


class HeadScorer:
    """The protocol's Scorer for the shared head over fixed pooled item encodings."""

    def __init__(self, params: Params, pooled: np.ndarray, history_len: int):
        self.params, self.history_len = params, history_len
        self.items, self.prior = item_table(params, pooled)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        ctx, mask = right_aligned(list(histories), self.history_len)
        return scores(self.params, user_vectors(self.params, self.items, ctx, mask), self.items, self.prior)


class GlobalEvaluator:
    def __init__(self, model: Any, texts: Sequence[str], test: EvalSet, genres: np.ndarray, held_out: np.ndarray):
        """`model`: the device runtime's model of the deployed artifact (compression/runtime/model.py); `texts`: the
        fleet's, item texts then titles (fleet.py); `genres`: (n_items, genres) labels; `held_out`: the genre
        evaluation items."""
        n = len(genres)
        pooled = encode_all(model, texts)
        self.pooled, self.titles = pooled[:n], pooled[n:]
        self.genres, self.held_out = genres, held_out
        self.chosen_on = np.setdiff1d(np.arange(n), held_out)
        self.history_len = int(model.config["history_len"])
        self.test = test

    def __call__(self, params: Params) -> dict:
        ranking = evaluate(HeadScorer(params, self.pooled, self.history_len), self.test)
        probs = probabilities(params, self.titles)
        threshold = best_threshold(probs[self.chosen_on], self.genres[self.chosen_on])
        f1 = micro_f1(probs[self.held_out] >= threshold, self.genres[self.held_out])
        return {**ranking, "genre_f1": f1, "genre_threshold": threshold}

    def per_row(self, params: Params, key: str) -> np.ndarray:
        """A ranking metric (`hr@10`, `ndcg@10`, `mrr`) per test user; its mean is `self(params)[key]`."""
        return per_row(HeadScorer(params, self.pooled, self.history_len), self.test)[0][key]
