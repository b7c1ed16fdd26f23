"""What the device runtime asks of a student encoder, and the one operation every encoder shares.

An encoder is built from an artifact's tensors and its config's `student` section; it encodes one text (batch 1)
into the pooled vector the task's head reads. Its class also states the encoder's share of the analytic memory
model (compression/runtime/memory_model.py): the float32 weights it keeps beyond the word table, and what one
encode allocates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from compression.runtime.quantize import QTensor

if TYPE_CHECKING:
    from compression.runtime.memory_model import ModelDims

F32 = 4


def gather_rows(q: QTensor, ids: np.ndarray) -> np.ndarray:
    """Dequantize only the requested rows of a row-quantized table."""
    if q.kind == "int8":  # the common case, without building an intermediate tensor
        return q.data[ids] * q.scale[ids]
    scale = None if q.scale is None else q.scale[ids]
    return QTensor(q.kind, (len(ids),) + q.shape[1:], q.data[ids], scale, q.group).dequantize()


class Encoder(ABC):
    """A student encoder at batch 1. The word table `word` stays quantized; `w` holds every other tensor of the
    artifact, dequantized, by its training-side name (`encoder.` prefix)."""

    @abstractmethod
    def __init__(self, student: dict, word: QTensor, w: dict[str, np.ndarray]): ...

    @abstractmethod
    def encode_ids(self, ids: np.ndarray) -> np.ndarray:
        """The pooled text vector of one tokenised text."""

    @staticmethod
    @abstractmethod
    def width(student: dict) -> int:
        """Width of the pooled text vector, from the config's `student` section."""

    @staticmethod
    @abstractmethod
    def resident_bytes(m: ModelDims) -> int:
        """The loaded encoder's float32 weights beyond the word table."""

    @staticmethod
    @abstractmethod
    def encode_bytes(m: ModelDims, t: int) -> int:
        """Transient of one encode of a `t`-token text (1 <= t <= max_len)."""
