"""Global evaluation of the shared head, on the server, over every device-owned user's held-out test item.

The device encoder is frozen, so the catalogue is encoded once with the device runtime and each round only the
head changes. This is the protocol of edgefleet/tasks/movielens/protocol.py on each user's whole history
(train + validation), exactly what `edgefleet compress` reports for the student: round 0 here reproduces its figure.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgefleet.tasks.movielens.device_head import Params, item_table, right_aligned, scores, user_vectors
from edgefleet.tasks.movielens.protocol import EvalSet, evaluate


class HeadScorer:
    """The protocol's Scorer for the shared head over fixed pooled item encodings."""

    def __init__(self, params: Params, pooled: np.ndarray, history_len: int):
        self.params, self.history_len = params, history_len
        self.items, self.prior = item_table(params, pooled)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        ctx, mask = right_aligned(list(histories), self.history_len)
        return scores(self.params, user_vectors(self.params, self.items, ctx, mask), self.items, self.prior)


class GlobalEvaluator:
    def __init__(self, model: Any, texts: Sequence[str], test: EvalSet):
        """`model`: the device runtime's model of the deployed artifact (compression/runtime/model.py)."""
        self.pooled = np.stack([model.encode_ids(model.tokenizer.encode(t).ids) for t in texts]).astype(np.float32)
        self.history_len = int(model.config["history_len"])
        self.test = test

    def __call__(self, params: Params) -> dict:
        return evaluate(HeadScorer(params, self.pooled, self.history_len), self.test)
