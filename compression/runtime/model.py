"""The on-device runtime: numpy + HF tokenizers, no torch, no transformers.

It loads a verified artifact (compression/runtime/artifact.py), rebuilds the WordPiece tokenizer from the stored
vocabulary, and runs the encoder the config's `student.kind` names (compression/runtime/encoders/, each the mirror of
its training twin in compression/student/, operation for operation). The word-embedding table, the largest tensor,
stays quantized in memory and only the rows a text uses are dequantized; the other weights are dequantized once at
load.
"""

from __future__ import annotations

import abc
import time
import tracemalloc
from pathlib import Path
from typing import Sequence

import numpy as np

from compression.runtime.artifact import Artifact, ArtifactError, read_artifact
from compression.runtime.encoders import encoder_class
from compression.runtime.tokenizer import build_wordpiece
from edgefleet.tasks.movielens.device_head import SHARED_KEYS, item_table, right_aligned, scores, user_vectors

RUNTIME_KIND = "two-tower-rec"


class TextModel(abc.ABC):
    """What every runtime model does: rebuild the tokenizer from the artifact's vocabulary and encode texts with the
    encoder its config names. Subclasses add their task's heads."""

    kind: str  # the artifact config's `runtime` this class serves

    def __init__(self, artifact: Artifact):
        cfg = artifact.config
        if cfg.get("runtime") != self.kind:
            raise ArtifactError(f"artifact is for runtime {cfg.get('runtime')!r}, this runtime runs {self.kind!r}")
        self.config = cfg
        self.tokenizer = build_wordpiece(artifact.vocab, int(cfg["max_len"]))
        t = artifact.tensors
        w = {name: q.dequantize() for name, q in t.items() if name != "encoder.word.weight"}
        try:
            encoder = encoder_class(cfg["student"]["kind"])
        except ValueError as e:
            raise ArtifactError(f"artifact's student.kind: {e}") from None
        self.encoder = encoder(cfg["student"], t["encoder.word.weight"], w)
        self.heads(w)  # `w` itself is not kept: what is resident is what the encoder and the heads hold

    @abc.abstractmethod
    def heads(self, weights: dict[str, np.ndarray]) -> None:
        """Take the task's heads from the dequantized weights."""

    def encode_ids(self, ids: Sequence[int]) -> np.ndarray:
        """Pooled text vector for one tokenised text."""
        return self.encoder.encode_ids(np.asarray(ids, dtype=np.int64))

    def encode(self, text: str) -> np.ndarray:
        return self.encode_ids(self.tokenizer.encode(text).ids)

    @classmethod
    def load(cls, path: str | Path):
        return cls(read_artifact(path))


class DeviceModel(TextModel):
    """Encode item texts, build a user from history item vectors, score and rank candidates."""

    kind = RUNTIME_KIND

    def heads(self, w: dict[str, np.ndarray]) -> None:
        cfg = self.config
        self.head = {k: np.ascontiguousarray(w[k], dtype=np.float32) for k in SHARED_KEYS}
        self.history_len = len(self.head["head.recency"])
        self.genre_w, self.genre_b = np.ascontiguousarray(w["genre.weight"].T), w["genre.bias"]
        self.genres = list(cfg.get("genres", []))

    def item_vector(self, text: str) -> tuple[np.ndarray, float]:
        """(normalised item vector, prior) for one item text."""
        items, prior = item_table(self.head, self.encode_ids(self.tokenizer.encode(text).ids)[None])
        return items[0], float(prior[0])

    def genre_probs(self, title: str) -> np.ndarray:
        """Probability of each genre (`self.genres`) from a title alone: the second NLU head."""
        logits = self.encode_ids(self.tokenizer.encode(title).ids) @ self.genre_w + self.genre_b
        return 1.0 / (1.0 + np.exp(-logits))

    def item_vectors(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.item_vector(t) for t in texts]
        return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], dtype=np.float32)

    def user_vector(self, history: np.ndarray) -> np.ndarray:
        """From the item vectors of the user's history, oldest first."""
        ctx, mask = right_aligned([np.arange(len(history))], self.history_len)
        return user_vectors(self.head, history, ctx, mask)[0]

    def scores(self, user: np.ndarray, items: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return scores(self.head, user, items, prior)

    def recommend(self, history: np.ndarray, items: np.ndarray, prior: np.ndarray, k: int = 10,
                  exclude: Sequence[int] = ()) -> np.ndarray:
        """Indices of the top-k candidates for the user (those in `exclude` never appear)."""
        s = self.scores(self.user_vector(history), items, prior)
        s[list(exclude)] = -np.inf
        top = np.argpartition(-s, min(k, len(s) - 1))[:k]
        return top[np.argsort(-s[top], kind="stable")]


def measure_inference(model: DeviceModel, texts: Sequence[str], history: np.ndarray, items: np.ndarray,
                      prior: np.ndarray, repeats: int = 3) -> dict:
    """Batch-1 latency of encoding an item text, and peak memory of one on-device inference beyond the loaded model.

    One inference = encode a new item text, build the user from the history, score every candidate, take the top 10.
    Memory is what numpy and Python allocate during it (tracemalloc), over the baseline held by the loaded model.
    """
    times = []
    for _ in range(repeats):
        for text in texts:
            start = time.perf_counter()
            model.item_vector(text)
            times.append(time.perf_counter() - start)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        model.item_vector(texts[0])
        model.recommend(history, items, prior)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ms = np.array(times) * 1e3
    return {"latency_ms_b1": float(np.median(ms)), "latency_ms_b1_p95": float(np.percentile(ms, 95)),
            "peak_mem_bytes": int(peak - base), "texts": len(texts), "repeats": repeats}
