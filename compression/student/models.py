"""Compact students: a small BERT with factorized embeddings, and an XtremeDistil BiLSTM.

Both read token ids of the pruned vocabulary and return a mean-pooled text vector that the shared two-tower head
(edgefleet/tasks/movielens/teacher_head.py) turns into item vectors. The BERT student is written out layer by layer
(no transformers)
so that the numpy device runtime can mirror it operation for operation; GELU is the tanh form in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgefleet.config import StudentConfig


@dataclass
class EncoderOut:
    pooled: torch.Tensor  # (B, out_dim)
    attention: torch.Tensor | None  # (B, L, L) last layer's attention averaged over heads
    mask: torch.Tensor  # (B, L) tokens that survived input-token pruning


class Block(nn.Module):
    """Post-LN transformer layer (BERT's arrangement)."""

    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ff1 = nn.Linear(hidden, ffn)
        self.ff2 = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, length, hidden = x.shape
        size = hidden // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, size).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(size)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(x.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, length, hidden)
        x = self.ln1(x + self.o(ctx))
        x = self.ln2(x + self.ff2(F.gelu(self.ff1(x), approximate="tanh")))
        return x, probs


def keep_important(probs: torch.Tensor, mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """PoWER-BERT/LTP-style pruning: keep the `ratio` of each text's tokens that receive the most attention.

    Importance = attention received, averaged over heads and live query positions. [CLS] and [SEP] are ordinary
    tokens here: the pooled vector is a mean over whatever survives.
    """
    live = mask.float()
    received = (probs.mean(1) * live[:, :, None]).sum(1) / live.sum(1, keepdim=True)  # (B, L)
    received = received.masked_fill(~mask, float("-inf"))
    keep_n = torch.clamp(torch.ceil(live.sum(1) * ratio), min=1).long()
    rank = received.argsort(dim=1, descending=True).argsort(dim=1)
    return mask & (rank < keep_n[:, None])


class CompactBert(nn.Module):
    """vocab x E embeddings -> E x H projection (+ positions, LayerNorm) -> `layers` blocks -> mean pool."""

    def __init__(self, cfg: StudentConfig, vocab_size: int, max_len: int):
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.hidden
        self.word = nn.Embedding(vocab_size, cfg.embed_dim)
        self.embed_proj = nn.Linear(cfg.embed_dim, cfg.hidden, bias=False)
        self.pos = nn.Embedding(max_len, cfg.hidden)
        self.embed_ln = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.ffn) for _ in range(cfg.layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, keep_ratio: float | None = None) -> EncoderOut:
        mask = mask.bool()
        ratio = self.cfg.keep_ratio if keep_ratio is None else keep_ratio
        positions = torch.arange(ids.shape[1])
        x = self.embed_ln(self.embed_proj(self.word(ids)) + self.pos(positions)[None])
        probs = None
        for i, block in enumerate(self.blocks):
            x, probs = block(x, mask)
            if ratio < 1.0 and i + 1 == self.cfg.prune_after:
                mask = keep_important(probs, mask, ratio)
        live = mask.unsqueeze(-1).float()
        pooled = (x * live).sum(1) / live.sum(1).clamp(min=1.0)
        return EncoderOut(pooled, probs.mean(1) if probs is not None else None, mask)


class BiLSTMStudent(nn.Module):
    """XtremeDistil student: compressed teacher word embeddings -> one BiLSTM layer -> mean pool."""

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


ENCODERS = {"bert": CompactBert, "bilstm": BiLSTMStudent}


def build_encoder(cfg: StudentConfig, vocab_size: int, max_len: int) -> nn.Module:
    return ENCODERS[cfg.kind](cfg, vocab_size, max_len)
