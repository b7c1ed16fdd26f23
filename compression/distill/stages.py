"""Student training: representation matching on the transfer set, then task distillation (cross or plain KD).

Cross-distillation (EI-BERT) = parameter integration at init (compression/student/integrate.py) + dynamic interplay:
each
step the teacher also trains, at a small learning rate, on its task loss plus agreement with the (detached) student's
scores, while the student learns at a larger rate from the task, the teacher's scores (temperature-softened KL), its
pooled hidden state (through a training-only projection) and its last-layer attention map. Plain KD keeps the
teacher frozen and uses task + score KD only. Both run the same number of steps, so the ablation is at equal budget.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compression.teacher.minilm import attention_probs, run_layers
from compression.teacher.two_tower import ItemTokens, Teacher, TwoTowerTeacher
from edgefleet.config import DistillConfig
from edgefleet.progress import Reporter
from edgefleet.tasks.movielens.data import GENRES, Catalogue
from edgefleet.tasks.movielens.genre import GenreTask
from edgefleet.tasks.movielens.protocol import EvalSet, evaluate
from edgefleet.tasks.movielens.split import Split
from edgefleet.tasks.movielens.teacher_head import Batch, RecHead, RecScorer, TaskSampler, task_loss


class StudentRec(nn.Module):
    """Student encoder + two-tower head; `hid_proj` maps to the teacher's hidden size for training only."""

    def __init__(self, encoder: nn.Module, head: RecHead, teacher_hidden: int, n_genres: int = len(GENRES)):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.genre = nn.Linear(encoder.out_dim, n_genres)
        self.hid_proj = nn.Linear(encoder.out_dim, teacher_hidden)

    @torch.no_grad()
    def pooled_catalogue(self, tokens: ItemTokens, keep_ratio: float | None = None, batch: int = 512) -> torch.Tensor:
        was = self.training
        self.eval()
        out = torch.cat([self.encoder(tokens.input_ids[s:s + batch], tokens.mask[s:s + batch], keep_ratio).pooled
                         for s in range(0, len(tokens.input_ids), batch)])
        self.train(was)
        return out

    @torch.no_grad()
    def genre_probs(self, titles: ItemTokens) -> torch.Tensor:
        return torch.sigmoid(self.genre(self.pooled_catalogue(titles, 1.0)))

    def scorer(self, tokens: ItemTokens, keep_ratio: float | None = None) -> RecScorer:
        with torch.no_grad():
            items, prior = self.head.item_vectors(self.pooled_catalogue(tokens, keep_ratio))
        return RecScorer(self.head, items, prior)


def transfer_texts(catalogue: Catalogue, size: int, seed: int) -> list[str]:
    """Unlabelled in-domain text the server can make from its catalogue: item texts and their partial views."""
    rng = np.random.default_rng([seed, 0x7A5F])
    texts = dict.fromkeys(catalogue.item_texts())
    n = catalogue.n_items
    while len(texts) < size:
        i = int(rng.integers(n))
        title, year = catalogue.titles[i], catalogue.years[i]
        genres = [GENRES[g] for g in np.flatnonzero(catalogue.genres[i])]
        words = catalogue.item_text(i).split()
        view = int(rng.integers(6))
        if view == 0:
            text = title
        elif view == 1:
            text = f"{title} ({year})"
        elif view == 2:
            text = f"{title} {' '.join(genres)}"
        elif view == 3:
            kept = [w for w in words if rng.random() > 0.2] or words[:1]
            text = " ".join(kept)
        elif view == 4:
            pick = rng.choice(len(GENRES) - 1, size=int(rng.integers(1, 4)), replace=False) + 1
            text = f"({year}) " + " ".join(GENRES[g] for g in sorted(pick))
        else:
            j = int(rng.integers(n))
            text = f"{title} {catalogue.titles[j]}"
        texts.setdefault(text)
    return list(texts)[:size]


@dataclass
class TeacherTargets:
    """Frozen teacher outputs the student matches: pooled states, item vectors, attention maps."""

    pooled: torch.Tensor  # (n_items, hidden)
    items: torch.Tensor
    prior: torch.Tensor
    attention: torch.Tensor  # (n_items, L, L) last layer, head-averaged
    aligned: torch.Tensor  # (n_items,) bool: student tokens == teacher tokens, so attention maps compare


@torch.no_grad()
def teacher_targets(teacher: Teacher, student_tokens: ItemTokens, kept_ids: np.ndarray) -> TeacherTargets:
    model = teacher.model
    model.eval()
    pooled = model.pooled_catalogue(teacher.lower, teacher.tokens.mask)
    items, prior = model.head.item_vectors(pooled)
    mask = teacher.tokens.mask
    last = len(model.bert.encoder.layer) - 1
    maps = []
    for s in range(0, len(mask), 256):
        hidden = run_layers(model.bert, teacher.lower[s:s + 256], mask[s:s + 256], model.split_at, last)
        maps.append(attention_probs(model.bert.encoder.layer[last], hidden, mask[s:s + 256]).mean(1))
    width = min(student_tokens.input_ids.shape[1], teacher.tokens.input_ids.shape[1])
    mapped = torch.from_numpy(kept_ids)[student_tokens.input_ids[:, :width]] * student_tokens.mask[:, :width]
    aligned = (mapped == teacher.tokens.input_ids[:, :width] * mask[:, :width]).all(1)
    aligned &= student_tokens.mask.sum(1) == mask.sum(1)
    return TeacherTargets(pooled, items, prior, torch.cat(maps), aligned)


@torch.no_grad()
def teacher_pooled_texts(model: TwoTowerTeacher, tokens: ItemTokens) -> torch.Tensor:
    """Teacher pooled states for arbitrary texts (the transfer set)."""
    model.eval()
    return model.pooled_catalogue(model.lower(tokens), tokens.mask)


def pretrain(student: StudentRec, tokens: ItemTokens, targets: torch.Tensor, teacher_head: RecHead,
             cfg: DistillConfig, reporter: Reporter, label: str = "student pre-training") -> list[dict]:
    """Stage 1 (XtremeDistil) / student pre-training: match the teacher's pooled state and item vector."""
    if cfg.pretrain_epochs == 0:
        return []
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        target_items, _ = teacher_head.item_vectors(targets)
    batch = 128
    steps = -(-len(targets) // batch)
    log = []
    student.train()
    for epoch in range(cfg.pretrain_epochs):
        order = torch.randperm(len(targets), generator=gen)
        total = 0.0
        with reporter.stage(f"{label} {epoch + 1}/{cfg.pretrain_epochs}", total=steps) as advance:
            for s in range(0, len(order), batch):
                idx = order[s:s + batch]
                width = int(tokens.mask[idx].sum(1).max())
                out = student.encoder(tokens.input_ids[idx, :width], tokens.mask[idx, :width], 1.0)
                items, _ = student.head.item_vectors(out.pooled)
                loss = F.mse_loss(student.hid_proj(out.pooled), targets[idx])
                loss = loss + (1 - (items * target_items[idx]).sum(-1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
                advance(loss=loss.item())
        log.append({"epoch": epoch + 1, "loss": total / steps})
    return log


@dataclass(frozen=True)
class Weights:
    task: float
    kd: float
    hidden: float = 0.0
    attn: float = 0.0
    genre: float = 0.0


@dataclass(frozen=True)
class GenreInputs:
    """The multi-task genre head's data: student title tokens, labels, and the teacher probe's probabilities."""

    task: GenreTask
    titles: ItemTokens
    teacher_probs: torch.Tensor


def _genre_loss(student: StudentRec, genre: GenreInputs, gen: torch.Generator, batch: int = 64) -> torch.Tensor:
    train = genre.task.train_items
    idx = train[torch.randint(len(train), (batch,), generator=gen)]
    ids, mask = genre.titles.input_ids[idx], genre.titles.mask[idx]
    width = int(mask.sum(1).max())
    logits = student.genre(student.encoder(ids[:, :width], mask[:, :width], 1.0).pooled)
    labels = F.binary_cross_entropy_with_logits(logits, genre.task.labels[idx])
    return 0.5 * labels + 0.5 * F.binary_cross_entropy_with_logits(logits, genre.teacher_probs[idx])


def softened_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, t: float,
                known: torch.Tensor | None = None) -> torch.Tensor:
    """T^2 KL(teacher || student) at temperature t over each row's candidates; `known` ones (the user's own items)
    are left out. The T^2 keeps gradients comparable across temperatures."""
    if known is not None:
        teacher_logits = teacher_logits.masked_fill(known, -1e4)
        student_logits = student_logits.masked_fill(known, -1e4)
    log_t = F.log_softmax(teacher_logits / t, dim=-1)
    log_s = F.log_softmax(student_logits / t, dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * t * t


def _attention_kl(targets: TeacherTargets, cand: torch.Tensor, student_attn: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    rows = targets.aligned[cand]
    if not rows.any():
        return student_attn.sum() * 0.0
    width = min(student_attn.shape[-1], targets.attention.shape[-1])
    t = targets.attention[cand][rows][:, :width, :width]
    s = student_attn[rows][:, :width, :width]
    live = mask[rows][:, :width].float()
    kl = (t * (torch.log(t + 1e-9) - torch.log(s + 1e-9))).sum(-1)  # per query
    return (kl * live).sum() / live.sum()


class TaskStage:
    """Epochs of task distillation; `interplay` makes the teacher train alongside (dynamic interplay)."""

    def __init__(self, student: StudentRec, teacher: Teacher, s_tokens: ItemTokens, targets: TeacherTargets,
                 split: Split, valid: EvalSet, cfg: DistillConfig, reporter: Reporter, interplay: bool,
                 genre: GenreInputs | None = None):
        self.student, self.teacher, self.s_tokens, self.targets = student, teacher, s_tokens, targets
        self.valid, self.cfg, self.reporter, self.interplay = valid, cfg, reporter, interplay
        self.genre = genre
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.sampler = TaskSampler(split, student.head.history_len, cfg.batch_size, cfg.negatives, cfg.seed)
        self.t_opt = None
        if interplay:
            trainable = [p for p in teacher.model.parameters() if p.requires_grad]
            self.t_opt = torch.optim.AdamW(trainable, lr=cfg.teacher_lr)

    def _teacher_logits(self, batch: Batch, t_bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher scores and pooled states for the batch; with gradients only under interplay."""
        model, head = self.teacher.model, self.teacher.model.head
        if not self.interplay:
            users = head.user_vectors(self.targets.items[batch.hist_ids], batch.hist_mask)
            return (head.logits(users, self.targets.items[batch.cand], self.targets.prior[batch.cand]).detach(),
                    self.targets.pooled[batch.cand])
        pooled = model.upper(self.teacher.lower[batch.cand], self.teacher.tokens.mask[batch.cand])
        items, prior = head.item_vectors(pooled)
        hist = F.normalize(head.item_head(t_bank[batch.hist_ids]), dim=-1)
        return head.logits(head.user_vectors(hist, batch.hist_mask), items, prior), pooled

    def run(self, epochs: int, weights: Weights, trainable: list[nn.Parameter], name: str,
            unfreeze: list[list[nn.Parameter]] | None = None) -> list[dict]:
        """Train for `epochs`, keeping the best validation epoch; `unfreeze[e]` adds parameters at epoch e."""
        student, head, cfg = self.student, self.student.head, self.cfg
        steps = self.sampler.steps(cfg.max_steps_per_epoch)
        params = list(trainable)
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        log, best, best_state = [], -1.0, None
        for epoch in range(epochs):
            if unfreeze and epoch < len(unfreeze) and unfreeze[epoch]:
                opt.add_param_group({"params": unfreeze[epoch], "lr": cfg.lr})
            t_bank = (self.teacher.model.pooled_catalogue(self.teacher.lower, self.teacher.tokens.mask)
                      if self.interplay else None)
            totals = np.zeros(3)
            with self.reporter.stage(f"{name} epoch {epoch + 1}/{epochs}", total=steps) as advance:
                for step, batch in enumerate(self.sampler.epoch(steps)):
                    if step % 20 == 0:  # the history side reads a bank of item states, refreshed as the student moves
                        s_bank = student.pooled_catalogue(self.s_tokens, 1.0)
                    student.train()
                    if self.interplay:
                        self.teacher.model.train()
                    ids, mask = self.s_tokens.input_ids[batch.cand], self.s_tokens.mask[batch.cand]
                    width = int(mask.sum(1).max())
                    out = student.encoder(ids[:, :width], mask[:, :width], 1.0)
                    items, prior = head.item_vectors(out.pooled)
                    hist = F.normalize(head.item_head(s_bank[batch.hist_ids]), dim=-1)
                    s_logits = head.logits(head.user_vectors(hist, batch.hist_mask), items, prior)
                    t_logits, t_pooled = self._teacher_logits(batch, t_bank)
                    loss = weights.task * task_loss(s_logits, batch)
                    loss = loss + weights.kd * softened_kl(t_logits.detach(), s_logits, cfg.temperature, batch.known)
                    if weights.hidden:
                        loss = loss + weights.hidden * F.mse_loss(student.hid_proj(out.pooled), t_pooled.detach())
                    if weights.attn and out.attention is not None:
                        loss = loss + weights.attn * _attention_kl(self.targets, batch.cand, out.attention,
                                                                   mask[:, :width].bool())
                    if weights.genre and self.genre is not None:
                        loss = loss + weights.genre * _genre_loss(student, self.genre, self.gen)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    t_loss = torch.zeros(())
                    if self.interplay:
                        t_loss = task_loss(t_logits, batch) + cfg.w_agree * softened_kl(
                            s_logits.detach(), t_logits, cfg.temperature, batch.known)
                        self.t_opt.zero_grad()
                        t_loss.backward()
                        self.t_opt.step()
                    totals += [loss.item(), t_loss.item(), 1]
                    advance(loss=loss.item())
            metrics = evaluate(student.scorer(self.s_tokens, 1.0), self.valid)
            key = f"hr@{self.valid.k}"
            log.append({"stage": name, "epoch": epoch + 1, "loss": totals[0] / totals[2],
                        "teacher_loss": totals[1] / totals[2] if self.interplay else None, "valid": metrics})
            self.reporter.log(f"  {name} epoch {epoch + 1}: loss {totals[0] / totals[2]:.4f}  "
                              f"valid {key} {metrics[key]:.4f}")
            if metrics[key] > best:
                best, best_state = metrics[key], copy.deepcopy(student.state_dict())
        student.load_state_dict(best_state)
        student.eval()
        return log
