"""EI-BERT parameter integration: carry the fine-tuned teacher's weights into the student, projected.

A basis U (teacher hidden -> student hidden) comes from PCA of the teacher's token states over the catalogue.
Every student tensor is the teacher's, seen through U: embeddings by a truncated SVD of the kept rows, positions and
biases by U^T, attention by selecting whole teacher heads (head sizes match: 384/12 = 128/4 = 32), feed-forward by
selecting the teacher's most used neurons, LayerNorm gains by the diagonal of U^T diag(g) U. Student block i takes
teacher layer t_i, evenly spaced with the last block from the teacher's fine-tuned top layer; the recommendation
head (item projection, prior, recency, user map, scale) is the teacher's with its input projected by U.
`integrate_encoder` does the encoder alone, for students with another head (compression/textclf/job.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from compression.student.models import Block, CompactBert


@torch.no_grad()
def pca_basis(states: torch.Tensor, dim: int) -> torch.Tensor:
    """(hidden, dim) orthonormal top principal directions of token states (n, hidden)."""
    centered = states - states.mean(0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    return v[:dim].T.contiguous()


def _ln(target: nn.LayerNorm, source: nn.LayerNorm, u: torch.Tensor) -> None:
    target.weight.copy_((u * u * source.weight[:, None]).sum(0))
    target.bias.copy_(u.T @ source.bias)


def _pick(scores: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, n).indices).values


def _block(student: Block, layer: nn.Module, u: torch.Tensor) -> None:
    attn, out = layer.attention.self, layer.attention.output
    t_heads = attn.num_attention_heads
    size = attn.attention_head_size
    if student.q.out_features // student.heads != size:
        raise ValueError(f"student head size {student.q.out_features // student.heads} != teacher's {size}")
    wv = attn.value.weight.view(t_heads, size, -1)
    wo = out.dense.weight.view(-1, t_heads, size)
    importance = wv.norm(dim=(1, 2)) * wo.norm(dim=(0, 2))  # how much each head can move the residual stream
    heads = _pick(importance, student.heads)
    rows = (heads[:, None] * size + torch.arange(size)).reshape(-1)
    for mine, theirs in ((student.q, attn.query), (student.k, attn.key), (student.v, attn.value)):
        mine.weight.copy_(theirs.weight[rows] @ u)
        mine.bias.copy_(theirs.bias[rows])
    student.o.weight.copy_(u.T @ out.dense.weight[:, rows])
    student.o.bias.copy_(u.T @ out.dense.bias)
    _ln(student.ln1, out.LayerNorm, u)
    w1, w2 = layer.intermediate.dense, layer.output.dense
    neurons = _pick(w1.weight.norm(dim=1) * w2.weight.norm(dim=0), student.ff1.out_features)
    student.ff1.weight.copy_(w1.weight[neurons] @ u)
    student.ff1.bias.copy_(w1.bias[neurons])
    student.ff2.weight.copy_(u.T @ w2.weight[:, neurons])
    student.ff2.bias.copy_(u.T @ w2.bias)
    _ln(student.ln2, layer.output.LayerNorm, u)


def teacher_layers_for(n_student: int, n_teacher: int) -> list[int]:
    """Evenly spaced teacher layers ending at the fine-tuned top one: 2 of 6 -> [2, 5], 3 of 6 -> [1, 3, 5]."""
    return [int(np.floor((i + 1) * n_teacher / n_student + 0.5)) - 1 for i in range(n_student)]


@torch.no_grad()
def integrate_encoder(encoder: nn.Module, bert: nn.Module, kept_ids: np.ndarray, u: torch.Tensor) -> list[str]:
    """Initialise a student encoder (no head) from the teacher's embeddings and layers in place; returns what was
    carried over."""
    table = bert.embeddings.word_embeddings.weight[torch.from_numpy(kept_ids)]
    if isinstance(encoder, CompactBert):
        a, s, vt = torch.linalg.svd(table @ u, full_matrices=False)
        r = min(encoder.word.embedding_dim, len(s))  # a factor wider than the table's rank gets zero columns
        encoder.word.weight.zero_()
        encoder.embed_proj.weight.zero_()
        encoder.word.weight[:, :r] = a[:, :r] * s[:r]
        encoder.embed_proj.weight[:, :r] = vt[:r].T
        length = encoder.pos.num_embeddings
        emb = bert.embeddings
        positions = emb.position_embeddings.weight[:length] + emb.token_type_embeddings.weight[0]
        encoder.pos.weight.copy_(positions @ u)
        _ln(encoder.embed_ln, bert.embeddings.LayerNorm, u)
        layers = teacher_layers_for(len(encoder.blocks), len(bert.encoder.layer))
        for block, t in zip(encoder.blocks, layers):
            _block(block, bert.encoder.layer[t], u)
        return ["embeddings", "positions", *(f"block{i}<-teacher{t}" for i, t in enumerate(layers))]
    # BiLSTM: compressed teacher embeddings (XtremeDistil), the recurrent layer learns from scratch
    a, s, _ = torch.linalg.svd(table, full_matrices=False)
    r = min(encoder.word.embedding_dim, len(s))
    encoder.word.weight.zero_()
    encoder.word.weight[:, :r] = a[:, :r] * s[:r] / s[0]
    return ["embeddings(svd)"]


@torch.no_grad()
def integrate(encoder: nn.Module, student_head: nn.Module, hid_proj: nn.Linear, bert: nn.Module,
              teacher_head: nn.Module, kept_ids: np.ndarray, u: torch.Tensor) -> dict:
    """Initialise the student (encoder and recommendation head) from the teacher in place; returns what was
    carried over."""
    student_head.load_state_dict(teacher_head.state_dict() | {"item_head.weight": teacher_head.item_head.weight @ u})
    hid_proj.weight.copy_(u)
    hid_proj.bias.zero_()
    return {"carried": ["head", *integrate_encoder(encoder, bert, kept_ids, u)]}
