"""EI-BERT parameter integration: carry the fine-tuned teacher's weights into the student, projected.

A basis U (teacher hidden -> student hidden) comes from PCA of the teacher's token states over the catalogue.
Every student tensor is the teacher's, seen through U: positions and biases by U^T, LayerNorm gains by the diagonal
of U^T diag(g) U; what else each encoder takes is its own `carry_teacher` (compression/student/bert.py: embeddings
by a truncated SVD, whole teacher heads, the most used neurons). The recommendation head (item projection, prior,
recency, user map, scale) is the teacher's with its input projected by U. `integrate_encoder` does the encoder
alone, for students with another head (compression/textclf/job.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from compression.student.base import StudentEncoder


@torch.no_grad()
def pca_basis(states: torch.Tensor, dim: int) -> torch.Tensor:
    """(hidden, dim) orthonormal top principal directions of token states (n, hidden)."""
    centered = states - states.mean(0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    return v[:dim].T.contiguous()


def project_layer_norm(target: nn.LayerNorm, source: nn.LayerNorm, u: torch.Tensor) -> None:
    target.weight.copy_((u * u * source.weight[:, None]).sum(0))
    target.bias.copy_(u.T @ source.bias)


def teacher_layers_for(n_student: int, n_teacher: int) -> list[int]:
    """Evenly spaced teacher layers ending at the fine-tuned top one: 2 of 6 -> [2, 5], 3 of 6 -> [1, 3, 5]."""
    return [int(np.floor((i + 1) * n_teacher / n_student + 0.5)) - 1 for i in range(n_student)]


@torch.no_grad()
def integrate_encoder(encoder: StudentEncoder, bert: nn.Module, kept_ids: np.ndarray, u: torch.Tensor) -> list[str]:
    """Initialise a student encoder (no head) from the teacher's embeddings and layers in place; returns what was
    carried over."""
    table = bert.embeddings.word_embeddings.weight[torch.from_numpy(kept_ids)]
    return encoder.carry_teacher(bert, table, u)


@torch.no_grad()
def integrate(encoder: StudentEncoder, student_head: nn.Module, hid_proj: nn.Linear, bert: nn.Module,
              teacher_head: nn.Module, kept_ids: np.ndarray, u: torch.Tensor) -> dict:
    """Initialise the student (encoder and recommendation head) from the teacher in place; returns what was
    carried over."""
    student_head.load_state_dict(teacher_head.state_dict() | {"item_head.weight": teacher_head.item_head.weight @ u})
    hid_proj.weight.copy_(u)
    hid_proj.bias.zero_()
    return {"carried": ["head", *integrate_encoder(encoder, bert, kept_ids, u)]}
