"""What training asks of a student encoder, whichever architecture it is.

An encoder reads token ids of the pruned vocabulary and returns a mean-pooled text vector of width `out_dim` that a
task's head turns into its outputs (edgefleet/tasks/movielens/teacher_head.py for recommendation). It also knows how
to take the fine-tuned teacher's weights (EI-BERT parameter integration, compression/student/integrate.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EncoderOut:
    pooled: torch.Tensor  # (B, out_dim)
    attention: torch.Tensor | None  # (B, L, L) last layer's attention averaged over heads
    mask: torch.Tensor  # (B, L) tokens that survived input-token pruning


class StudentEncoder(nn.Module, ABC):
    """A student encoder; its device twin is the class of the same name in compression/runtime/encoders/."""

    out_dim: int
    prunes_tokens = False  # whether `keep_ratio` below 1 drops tokens (PoWER-BERT/LTP input-token pruning)

    @abstractmethod
    def forward(self, ids: torch.Tensor, mask: torch.Tensor, keep_ratio: float | None = None) -> EncoderOut:
        """ids, mask: (B, L); `keep_ratio` overrides the configured one for encoders that prune tokens."""

    @abstractmethod
    def carry_teacher(self, bert: nn.Module, table: torch.Tensor, u: torch.Tensor) -> list[str]:
        """Initialise from the teacher in place, through the basis `u` (teacher hidden, out_dim); `table` holds the
        teacher's word embeddings of the kept tokens. Returns what was carried over."""
