"""The XtremeDistil student: compressed teacher word embeddings -> one BiLSTM layer -> mean pool.

Its device twin is compression/runtime/encoders/bilstm.py.
"""

from __future__ import annotations

import torch
from torch import nn

from compression.student.base import EncoderOut, StudentEncoder
from edgefleet.config import StudentConfig


class BiLSTMStudent(StudentEncoder):
    """vocab x E embeddings -> BiLSTM of `lstm_hidden` per direction -> mean pool (width 2 * lstm_hidden)."""

    def __init__(self, cfg: StudentConfig, vocab_size: int, max_len: int):
        super().__init__()
        del max_len  # an LSTM needs no position table
        self.cfg = cfg
        self.out_dim = 2 * cfg.lstm_hidden
        self.word = nn.Embedding(vocab_size, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, keep_ratio: float | None = None) -> EncoderOut:
        mask = mask.bool()
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.word(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        live = mask.unsqueeze(-1).float()
        return EncoderOut((out * live).sum(1) / live.sum(1).clamp(min=1.0), None, mask)

    @torch.no_grad()
    def carry_teacher(self, bert: nn.Module, table: torch.Tensor, u: torch.Tensor) -> list[str]:
        """Compressed teacher embeddings (XtremeDistil): the recurrent layer learns from scratch."""
        a, s, _ = torch.linalg.svd(table, full_matrices=False)
        r = min(self.word.embedding_dim, len(s))
        self.word.weight.zero_()
        self.word.weight[:, :r] = a[:, :r] * s[:r] / s[0]
        return ["embeddings(svd)"]
