"""The on-device text classifier: the compact encoder's pooled vector through a linear head (numpy only).

Artifacts written by `edgefleet compress --train ...` (compression/textclf/) say `"runtime": "text-classifier"` and
list the labels; the head is `classifier.weight` (classes, hidden) and `classifier.bias`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from compression.runtime.model import TextModel

RUNTIME_KIND = "text-classifier"
HEAD_KEYS = ("classifier.weight", "classifier.bias")


class ClassifierModel(TextModel):
    kind = RUNTIME_KIND

    def heads(self, weights: dict[str, np.ndarray]) -> None:
        self.head = {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in HEAD_KEYS}
        self.labels = list(self.config["labels"])

    def logits(self, pooled: np.ndarray) -> np.ndarray:
        """(n, classes) from pooled vectors (n, hidden)."""
        return pooled @ self.head["classifier.weight"].T + self.head["classifier.bias"]

    def predict(self, texts: Sequence[str]) -> list:
        """The label of each text, as the user wrote it in the training data."""
        pooled = np.stack([self.encode(t) for t in texts])
        return [self.labels[i] for i in np.argmax(self.logits(pooled), axis=1)]
