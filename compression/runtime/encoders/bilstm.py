"""compression/student/bilstm.py BiLSTMStudent at batch 1, in numpy (PyTorch's gate order: input, forget, cell,
output)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from compression.runtime.encoders.base import F32, Encoder, gather_rows
from compression.runtime.quantize import QTensor

if TYPE_CHECKING:
    from compression.runtime.memory_model import ModelDims


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class LstmEncoder(Encoder):
    """Word embeddings -> one BiLSTM layer -> mean pool of both directions' outputs."""

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

    @staticmethod
    def width(student: dict) -> int:
        return 2 * int(student["lstm_hidden"])

    @staticmethod
    def resident_bytes(m: ModelDims) -> int:
        """Per direction: input and recurrent weights of the four gates, and their summed biases."""
        n = m.lstm_hidden
        return F32 * 2 * (m.embed * 4 * n + n * 4 * n + 4 * n)

    @staticmethod
    def encode_bytes(m: ModelDims, t: int) -> int:
        """The gathered embeddings, the input gates of both directions, their outputs, the concatenation."""
        n = m.lstm_hidden
        return F32 * (t * m.embed + 2 * t * 4 * n + 2 * t * n + t * 2 * n)
