"""The text-classification teacher and student of compression/textclf/job.py, and how to run and connect them.

The teacher is MiniLM with its bottom `freeze_layers` frozen (their output is computed once per text and reused),
mean pooling and a linear head. The student is a compact encoder (compression/student/) and a linear head,
initialised from the fine-tuned teacher by parameter integration (compression/student/integrate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compression.student import build_encoder
from compression.student.integrate import integrate_encoder, pca_basis
from compression.teacher.minilm import length_buckets, lower_states, mean_pool, run_layers
from compression.teacher.two_tower import ItemTokens
from compression.vocab.prune import PrunedVocab
from edgefleet.config import Config, StudentConfig
from edgefleet.errors import DataError
from edgefleet.tasks.textclf.evaluate import macro_f1


class TextTeacher(nn.Module):
    """MiniLM with its bottom `freeze_layers` frozen, mean pooling and a linear classifier."""

    def __init__(self, bert: nn.Module, freeze_layers: int, n_classes: int):
        super().__init__()
        self.bert, self.split_at = bert, freeze_layers
        self.classifier = nn.Linear(bert.config.hidden_size, n_classes)
        frozen = [bert.embeddings, *bert.encoder.layer[:freeze_layers], bert.pooler or nn.Identity()]
        for p in nn.ModuleList(frozen).parameters():
            p.requires_grad_(False)

    def lower(self, tokens: ItemTokens) -> torch.Tensor:
        """Frozen hidden states entering layer `split_at` for every text: (n, L, hidden), zero-padded."""
        return lower_states(self.bert, tokens.input_ids, tokens.mask, self.split_at)

    def states(self, lower: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Top-layer token states, cut to the batch's longest text."""
        w = int(mask.sum(1).max())
        return run_layers(self.bert, lower[:, :w], mask[:, :w], self.split_at, len(self.bert.encoder.layer))

    def forward(self, lower: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.states(lower, mask)
        pooled = mean_pool(states, mask[:, :states.shape[1]])
        return self.classifier(pooled), pooled


class TextStudent(nn.Module):
    """Student encoder + linear classifier; `hid_proj` maps to the teacher's hidden size for training only."""

    def __init__(self, encoder: nn.Module, n_classes: int, teacher_hidden: int):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.out_dim, n_classes)
        self.hid_proj = nn.Linear(encoder.out_dim, teacher_hidden)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = int(mask.sum(1).max())
        pooled = self.encoder(ids[:, :w], mask[:, :w]).pooled
        return self.classifier(pooled), pooled


@dataclass(frozen=True)
class Encoded:
    """One split as both models read it: teacher frozen-layer states, and student tokens once the vocab exists."""

    y: torch.Tensor
    lower: torch.Tensor
    mask: torch.Tensor
    student: ItemTokens | None = None


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and pooled states of every row in eval mode, run in length buckets (exact: rows never interact)."""
    was = model.training
    model.eval()
    order = length_buckets(mask, 256)
    outs = [model(inputs[idx], mask[idx]) for idx in order]
    model.train(was)
    inverse = torch.argsort(torch.cat(order))
    return torch.cat([o[0] for o in outs])[inverse], torch.cat([o[1] for o in outs])[inverse]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def t_accuracy(teacher: TextTeacher, split: Encoded) -> float:
    return accuracy(predict(teacher, split.lower, split.mask)[0], split.y)


def s_accuracy(student: TextStudent, split: Encoded) -> float:
    return accuracy(predict(student, split.student.input_ids, split.student.mask)[0], split.y)


def batches(n: int, size: int, max_steps: int | None, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch of shuffled row indices, at most `max_steps` batches."""
    return list(torch.split(torch.randperm(n, generator=gen), size))[:max_steps]


def scores(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, n_classes: int) -> dict:
    """The task's metrics of one model's logits on one split: accuracy and macro-F1 (the task's own function)."""
    pred, y = np.asarray(logits).argmax(1), np.asarray(y)
    return {"accuracy": float(np.mean(pred == y)), "macro_f1": macro_f1(y, pred, n_classes)}


@torch.no_grad()
def basis_states(teacher: TextTeacher, train: Encoded, seed: int, rows: int = 2000) -> torch.Tensor:
    """Top-layer token states and pooled states of a seeded sample of training texts: what the PCA basis of
    parameter integration is taken from."""
    teacher.eval()
    pick = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(seed))[:rows]
    states = []
    for idx in torch.split(pick, 128):
        h = teacher.states(train.lower[idx], train.mask[idx])
        live = train.mask[idx, :h.shape[1]]
        states += [h[live.bool()], mean_pool(h, live)]
    return torch.cat(states)


@torch.no_grad()
def make_student(cfg: Config, student_cfg: StudentConfig, teacher: TextTeacher, states: torch.Tensor,
                 vocab: PrunedVocab, train_path: Path, integrated: bool) -> tuple[TextStudent, list[str]]:
    """A student of `student_cfg`; `integrated`: the teacher carried into it through a PCA basis of its token
    states (EI-BERT parameter integration), else a seeded random start (the plain-KD ablation)."""
    torch.manual_seed(cfg.distill.seed)
    encoder = build_encoder(student_cfg, len(vocab.tokens), cfg.teacher.max_len)
    student = TextStudent(encoder, teacher.classifier.out_features, teacher.bert.config.hidden_size)
    if not integrated:
        return student, []
    if len(states) <= encoder.out_dim:
        raise DataError(f"{train_path}: {len(states)} tokens are too few to integrate a student of width "
                        f"{encoder.out_dim}: give more training rows")
    u = pca_basis(states, encoder.out_dim)
    carried = integrate_encoder(encoder, teacher.bert, vocab.teacher_ids, u)
    student.hid_proj.weight.copy_(u)
    student.hid_proj.bias.zero_()
    carry_head(student, teacher)
    return student, ["classifier", *carried]


@torch.no_grad()
def carry_head(student: TextStudent, teacher: TextTeacher) -> None:
    """The teacher's classifier read through the student's projection into the teacher's space: once the student's
    pooled state matches the teacher's through `hid_proj`, its logits match the teacher's."""
    w, b = teacher.classifier.weight, teacher.classifier.bias
    student.classifier.weight.copy_(w @ student.hid_proj.weight)
    student.classifier.bias.copy_(b + w @ student.hid_proj.bias)
