"""CompactBert: a small BERT with factorized embeddings, and how it takes the teacher's weights.

Written out layer by layer (no transformers) so that the numpy device runtime (compression/runtime/encoders/bert.py)
can mirror it operation for operation; GELU is the tanh form in both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from compression.student.base import EncoderOut, StudentEncoder
from compression.student.integrate import project_layer_norm, teacher_layers_for
from edgefleet.config import StudentConfig


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

    @torch.no_grad()
    def carry_layer(self, layer: nn.Module, u: torch.Tensor) -> None:
        """Take a teacher layer through `u`: whole heads by how much they can move the residual stream, the
        feed-forward's most used neurons (head sizes must match: 384/12 = 128/4 = 32)."""
        attn, out = layer.attention.self, layer.attention.output
        t_heads = attn.num_attention_heads
        size = attn.attention_head_size
        if self.q.out_features // self.heads != size:
            raise ValueError(f"student head size {self.q.out_features // self.heads} != teacher's {size}")
        wv = attn.value.weight.view(t_heads, size, -1)
        wo = out.dense.weight.view(-1, t_heads, size)
        importance = wv.norm(dim=(1, 2)) * wo.norm(dim=(0, 2))
        heads = _pick(importance, self.heads)
        rows = (heads[:, None] * size + torch.arange(size)).reshape(-1)
        for mine, theirs in ((self.q, attn.query), (self.k, attn.key), (self.v, attn.value)):
            mine.weight.copy_(theirs.weight[rows] @ u)
            mine.bias.copy_(theirs.bias[rows])
        self.o.weight.copy_(u.T @ out.dense.weight[:, rows])
        self.o.bias.copy_(u.T @ out.dense.bias)
        project_layer_norm(self.ln1, out.LayerNorm, u)
        w1, w2 = layer.intermediate.dense, layer.output.dense
        neurons = _pick(w1.weight.norm(dim=1) * w2.weight.norm(dim=0), self.ff1.out_features)
        self.ff1.weight.copy_(w1.weight[neurons] @ u)
        self.ff1.bias.copy_(w1.bias[neurons])
        self.ff2.weight.copy_(u.T @ w2.weight[:, neurons])
        self.ff2.bias.copy_(u.T @ w2.bias)
        project_layer_norm(self.ln2, layer.output.LayerNorm, u)


def _pick(scores: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, n).indices).values


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


class CompactBert(StudentEncoder):
    """vocab x E embeddings -> E x H projection (+ positions, LayerNorm) -> `layers` blocks -> mean pool."""

    prunes_tokens = True

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

    @torch.no_grad()
    def carry_teacher(self, bert: nn.Module, table: torch.Tensor, u: torch.Tensor) -> list[str]:
        """Embeddings by a truncated SVD of the kept rows seen through `u`, positions through `u`; block i takes
        teacher layer t_i, evenly spaced with the last block from the teacher's fine-tuned top layer."""
        a, s, vt = torch.linalg.svd(table @ u, full_matrices=False)
        r = min(self.word.embedding_dim, len(s))  # a factor wider than the table's rank gets zero columns
        self.word.weight.zero_()
        self.embed_proj.weight.zero_()
        self.word.weight[:, :r] = a[:, :r] * s[:r]
        self.embed_proj.weight[:, :r] = vt[:r].T
        emb = bert.embeddings
        positions = emb.position_embeddings.weight[:self.pos.num_embeddings] + emb.token_type_embeddings.weight[0]
        self.pos.weight.copy_(positions @ u)
        project_layer_norm(self.embed_ln, emb.LayerNorm, u)
        layers = teacher_layers_for(len(self.blocks), len(bert.encoder.layer))
        for block, t in zip(self.blocks, layers):
            block.carry_layer(bert.encoder.layer[t], u)
        return ["embeddings", "positions", *(f"block{i}<-teacher{t}" for i, t in enumerate(layers))]
