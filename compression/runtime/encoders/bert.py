"""compression/student/bert.py CompactBert at batch 1, in numpy.

Input-token pruning, when the artifact's config asks for it, really drops tokens here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from compression.runtime.encoders.base import F32, Encoder, gather_rows
from compression.runtime.quantize import QTensor

if TYPE_CHECKING:
    from compression.runtime.memory_model import ModelDims


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


class BertEncoder(Encoder):
    """Factorized embeddings (+ positions, LayerNorm) -> post-LN blocks -> mean pool over the surviving tokens."""

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

    @staticmethod
    def width(student: dict) -> int:
        return int(student["hidden"])

    @staticmethod
    def resident_bytes(m: ModelDims) -> int:
        """Embedding projection, positions, embedding LayerNorm; per layer Q, K, V, O, the FFN and two LayerNorms."""
        h = m.hidden
        return F32 * (m.embed * h + m.max_len * h + 2 * h + m.layers * (4 * h * h + 4 * h + 2 * h * m.ffn + m.ffn + h
                                                                          + 4 * h))

    @staticmethod
    def encode_bytes(m: ModelDims, t: int) -> int:
        """Hidden H, FFN F, A heads: the worst layer holds its input and output (2TH), the fused QKV output (3TH,
        kept alive by the q/k/v views), the attention probabilities (A T^2), the attention context (TH), the residual
        sum and LayerNorm temporaries (TH), and the GELU chain at its widest: its input, `0.5 x`, and two live
        intermediates (4TF). Input-token pruning acts after the first `prune_after` layers, so the first layer, at
        full length, sets the peak."""
        return F32 * (7 * t * m.hidden + m.heads * t * t + 4 * t * m.ffn)
