"""Global evaluation of the shared classifier head on the held-out test texts, which no device holds and no epoch
or round setting was chosen on. The frozen encoder's vectors are computed once; each round only the head changes."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgefleet.tasks.base import Params


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean over the classes present in `y` or `pred` of 2 TP / (2 TP + FP + FN)."""
    scores = []
    for c in range(n_classes):
        tp = int(np.sum((pred == c) & (y == c)))
        fp, fn = int(np.sum((pred == c) & (y != c))), int(np.sum((pred != c) & (y == c)))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


class ClassifierEvaluator:
    def __init__(self, model: Any, texts: Sequence[str], y: np.ndarray, n_classes: int):
        """`model`: the device runtime's model of the deployed artifact (compression/runtime/classifier.py)."""
        self.pooled = np.stack([model.encode(t) for t in texts]).astype(np.float32)
        self.y, self.n_classes = np.asarray(y), n_classes

    def __call__(self, params: Params) -> dict:
        pred = self._predict(params)
        return {"accuracy": float(np.mean(pred == self.y)), "macro_f1": macro_f1(self.y, pred, self.n_classes),
                "rows": int(len(self.y))}

    def per_row(self, params: Params, key: str) -> np.ndarray:
        """Accuracy per test text (1 right, 0 wrong); macro-F1 is not a mean over rows and has no per-row value."""
        if key != "accuracy":
            raise ValueError(f"{key} is not a mean over test rows")
        return (self._predict(params) == self.y).astype(np.float64)

    def _predict(self, params: Params) -> np.ndarray:
        return np.argmax(self.pooled @ params["classifier.weight"].T + params["classifier.bias"], axis=1)
