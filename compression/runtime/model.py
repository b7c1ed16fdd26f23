"""The on-device runtime: numpy + HF tokenizers, no torch, no transformers.

It loads a verified artifact (compression/runtime/artifact.py), rebuilds the WordPiece tokenizer from the stored
vocabulary,
and mirrors compression/student/models.py's encoders (CompactBert or the XtremeDistil BiLSTM, by the config's
student.kind) operation for operation. The word-embedding table, the largest tensor, stays quantized in memory and
only the rows a text uses are dequantized; the other weights are dequantized once at load. Input-token pruning, when
the artifact's config asks for it, really drops tokens here (batch 1).
"""

from __future__ import annotations

import math
import time
import tracemalloc
from pathlib import Path
from typing import Sequence

import numpy as np

from compression.runtime.artifact import Artifact, ArtifactError, read_artifact
from compression.runtime.quantize import QTensor
from compression.runtime.tokenizer import build_wordpiece
from edgefleet.tasks.movielens.device_head import SHARED_KEYS, item_table, right_aligned, scores, user_vectors

RUNTIME_KIND = "two-tower-rec"


def gather_rows(q: QTensor, ids: np.ndarray) -> np.ndarray:
    """Dequantize only the requested rows of a row-quantized table."""
    if q.kind == "int8":  # the common case, without building an intermediate tensor
        return q.data[ids] * q.scale[ids]
    scale = None if q.scale is None else q.scale[ids]
    return QTensor(q.kind, (len(ids),) + q.shape[1:], q.data[ids], scale, q.group).dequantize()


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-12) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # x * x * x, not x**3: numpy's float32 power is about 70 times slower at these sizes.
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class BertEncoder:
    """compression/student/models.py CompactBert at batch 1."""

    def __init__(self, student: dict, word: QTensor, w: dict[str, np.ndarray]):
        self.heads = int(student["heads"])
        self.keep_ratio = float(student["keep_ratio"])
        self.prune_after = int(student["prune_after"])
        self.word = word
        self.proj_t = np.ascontiguousarray(w["encoder.embed_proj.weight"].T)
        self.pos = w["encoder.pos.weight"]
        self.embed_ln = (w["encoder.embed_ln.weight"], w["encoder.embed_ln.bias"])
        self.blocks = []
        for i in range(int(student["layers"])):
            p = f"encoder.blocks.{i}."
            lin = {n: (np.ascontiguousarray(w[p + n + ".weight"].T), w[p + n + ".bias"]) for n in ("o", "ff1", "ff2")}
            # Q, K and V as one matmul: three small products cost three times the call overhead at batch 1.
            lin["qkv"] = (np.ascontiguousarray(np.concatenate([w[p + n + ".weight"].T for n in "qkv"], axis=1)),
                          np.concatenate([w[p + n + ".bias"] for n in "qkv"]))
            lin["ln1"] = (w[p + "ln1.weight"], w[p + "ln1.bias"])
            lin["ln2"] = (w[p + "ln2.weight"], w[p + "ln2.bias"])
            self.blocks.append(lin)

    def _block(self, x: np.ndarray, lin: dict) -> tuple[np.ndarray, np.ndarray]:
        length, hidden = x.shape
        size = hidden // self.heads
        qkv = (x @ lin["qkv"][0] + lin["qkv"][1]).reshape(length, 3, self.heads, size).transpose(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]
        probs = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(size))
        ctx = (probs @ v).transpose(1, 0, 2).reshape(length, hidden)
        x = _layer_norm(x + ctx @ lin["o"][0] + lin["o"][1], *lin["ln1"])
        ff = _gelu(x @ lin["ff1"][0] + lin["ff1"][1]) @ lin["ff2"][0] + lin["ff2"][1]
        return _layer_norm(x + ff, *lin["ln2"]), probs

    def encode_ids(self, ids: np.ndarray) -> np.ndarray:
        x = gather_rows(self.word, ids) @ self.proj_t + self.pos[: len(ids)]
        x = _layer_norm(x, *self.embed_ln)
        for i, lin in enumerate(self.blocks):
            x, probs = self._block(x, lin)
            if self.keep_ratio < 1.0 and i + 1 == self.prune_after:
                received = probs.mean(0).mean(0)
                keep_n = max(1, math.ceil(len(x) * self.keep_ratio))
                x = x[np.sort(np.argsort(-received, kind="stable")[:keep_n])]
        return x.mean(0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class LstmEncoder:
    """compression/student/models.py BiLSTMStudent at batch 1 (PyTorch's gate order: input, forget, cell, output)."""

    def __init__(self, student: dict, word: QTensor, w: dict[str, np.ndarray]):
        self.word = word
        self.size = int(student["lstm_hidden"])
        self.directions = []
        for suffix in ("", "_reverse"):
            p = "encoder.lstm."
            self.directions.append((np.ascontiguousarray(w[f"{p}weight_ih_l0{suffix}"].T),
                                    np.ascontiguousarray(w[f"{p}weight_hh_l0{suffix}"].T),
                                    w[f"{p}bias_ih_l0{suffix}"] + w[f"{p}bias_hh_l0{suffix}"]))

    def _run(self, gates_in: np.ndarray, w_hh: np.ndarray) -> np.ndarray:
        n = self.size
        h = np.zeros(n, dtype=np.float32)
        c = np.zeros(n, dtype=np.float32)
        out = np.empty((len(gates_in), n), dtype=np.float32)
        for t, g in enumerate(gates_in):
            g = g + h @ w_hh
            c = _sigmoid(g[n:2 * n]) * c + _sigmoid(g[:n]) * np.tanh(g[2 * n:3 * n])
            h = _sigmoid(g[3 * n:]) * np.tanh(c)
            out[t] = h
        return out

    def encode_ids(self, ids: np.ndarray) -> np.ndarray:
        x = gather_rows(self.word, ids)
        (wf, hf, bf), (wb, hb, bb) = self.directions
        forward = self._run(x @ wf + bf, hf)
        backward = self._run((x @ wb + bb)[::-1], hb)[::-1]
        return np.concatenate([forward, backward], axis=1).mean(0)


ENCODERS = {"bert": BertEncoder, "bilstm": LstmEncoder}


class DeviceModel:
    """Encode item texts, build a user from history item vectors, score and rank candidates."""

    def __init__(self, artifact: Artifact):
        cfg = artifact.config
        if cfg.get("runtime") != RUNTIME_KIND:
            raise ArtifactError(f"artifact is for runtime {cfg.get('runtime')!r}, this runtime runs {RUNTIME_KIND!r}")
        self.config = cfg
        self.tokenizer = build_wordpiece(artifact.vocab, int(cfg["max_len"]))
        t = artifact.tensors
        w = {name: q.dequantize() for name, q in t.items() if name != "encoder.word.weight"}
        kind = cfg["student"]["kind"]
        if kind not in ENCODERS:
            raise ArtifactError(f"artifact's student.kind {kind!r} is not one of {', '.join(ENCODERS)}")
        self.encoder = ENCODERS[kind](cfg["student"], t["encoder.word.weight"], w)
        self.head = {k: np.ascontiguousarray(w[k], dtype=np.float32) for k in SHARED_KEYS}
        self.history_len = len(self.head["head.recency"])
        self.genre_w, self.genre_b = np.ascontiguousarray(w["genre.weight"].T), w["genre.bias"]
        self.genres = list(cfg.get("genres", []))

    @classmethod
    def load(cls, path: str | Path) -> "DeviceModel":
        return cls(read_artifact(path))

    def encode_ids(self, ids: Sequence[int]) -> np.ndarray:
        """Pooled text vector for one tokenised text."""
        return self.encoder.encode_ids(np.asarray(ids, dtype=np.int64))

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
