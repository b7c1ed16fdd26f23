"""How a classifier student learns from the teacher, by `distill.method`; every stage keeps its best epoch by
validation accuracy, its start included.

1. Representation matching (every method, `distill.pretrain_epochs` passes over the transfer set, each at most
   `max_steps_per_epoch` batches): the student's pooled state, through the training-only projection `hid_proj`,
   matches the teacher's (MSE). The student's head is the teacher's read through that projection
   (models.carry_head), so its validation accuracy means something.
2. The task, the same number of steps for every method (`distill.epochs` epochs of a pass over the training rows,
   at most `max_steps_per_epoch`), so that the ablation is at equal budget:
   - `cross`: cross-distillation: cross-entropy + temperature-softened KL to the teacher's logits + pooled-state
     matching, while the teacher keeps training on cross-entropy + agreement with the student (dynamic interplay);
   - `kd`: plain knowledge distillation: cross-entropy + softened KL to the frozen teacher;
   - `xtremedistil`: softened KL to the teacher's logits on transfer-set batches with gradual unfreezing (the head,
     then the encoder's body, then its word embeddings, each from an evenly spaced epoch), then a last epoch
     fine-tuned on the labels alone.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from compression.distill.stages import softened_kl
from compression.textclf.models import Encoded, TextStudent, TextTeacher, batches, carry_head, s_accuracy
from compression.textclf.transfer import TransferSet
from edgefleet.config import DistillConfig
from edgefleet.progress import Reporter


def keep_best_epochs(name: str, epochs: int, steps: Callable[[], list], step: Callable[[torch.Tensor], float],
                     accuracy: Callable[[], float], snapshot: Callable[[], dict], rep: Reporter,
                     start_epoch: Callable[[int], None] | None = None) -> tuple[list, dict]:
    """Run `epochs` of `step` over each epoch's batches, scoring `accuracy` after each; returns the log and the
    snapshot of the best epoch, the start (epoch 0) included. `start_epoch(e)` runs before epoch e's batches."""
    best, best_state = accuracy(), snapshot()
    log = [{"epoch": 0, "valid_accuracy": best}]
    for epoch in range(epochs):
        if start_epoch is not None:
            start_epoch(epoch)
        batch_ids = steps()
        total = 0.0
        with rep.stage(f"{name} epoch {epoch + 1}/{epochs}", total=len(batch_ids)) as advance:
            for idx in batch_ids:
                loss = step(idx)
                total += loss
                advance(loss=loss)
        acc = accuracy()
        log.append({"epoch": epoch + 1, "loss": total / len(batch_ids), "valid_accuracy": acc})
        rep.log(f"  {name} epoch {epoch + 1}: loss {total / len(batch_ids):.4f}  valid accuracy {acc:.4f}")
        if acc > best:
            best, best_state = acc, snapshot()
    return log, best_state


def unfreeze_epochs(groups: int, epochs: int) -> list[int]:
    """The epoch from which each of `groups` parameter groups trains (gradual unfreezing): evenly spaced over the
    epochs, the first group from the start."""
    return [i * epochs // groups for i in range(groups)]


class Distiller:
    """Trains students of one run: the teacher, the splits and the transfer set are shared by every variant."""

    def __init__(self, cfg: DistillConfig, teacher: TextTeacher, train: Encoded, valid: Encoded,
                 transfer: TransferSet, rep: Reporter):
        self.cfg, self.teacher, self.transfer, self.rep = cfg, teacher, transfer, rep
        self.train, self.valid = train, valid
        self.train_logits = transfer.logits[:len(train.y)]  # the transfer set starts with the training texts
        self.steps = len(self._train_batches(torch.Generator().manual_seed(cfg.seed)))  # a task epoch
        self.represent_steps = min(-(-len(transfer.logits) // cfg.batch_size),  # a representation epoch
                                   cfg.max_steps_per_epoch or len(transfer.logits))

    def _train_batches(self, gen: torch.Generator) -> list[torch.Tensor]:
        return batches(len(self.train.y), self.cfg.batch_size, self.cfg.max_steps_per_epoch, gen)

    def _transfer_batches(self, gen: torch.Generator) -> Callable[[], list[torch.Tensor]]:
        """`self.steps` batches of transfer rows per call, walking on through seeded passes over the set."""
        queue: list[torch.Tensor] = []

        def draw() -> list[torch.Tensor]:
            while len(queue) < self.steps:
                queue.extend(torch.split(torch.randperm(len(self.transfer.logits), generator=gen),
                                         self.cfg.batch_size))
            out = queue[:self.steps]
            del queue[:self.steps]
            return out
        return draw

    def _epochs(self, student: TextStudent, name: str, epochs: int, steps: Callable[[], list], per_epoch: int,
                loss: Callable[[torch.Tensor], torch.Tensor], params: list[nn.Parameter], lr: float,
                start_epoch: Callable[[int], None] | None = None, after_step: Callable[[], None] | None = None,
                ) -> list[dict]:
        """AdamW over `params` with a learning rate falling linearly to zero over the stage's `epochs * per_epoch`
        steps (late epochs settle instead of jumping about), keeping the best epoch."""
        opt = torch.optim.AdamW(params, lr=lr)
        total = epochs * per_epoch
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / total))

        def step(idx: torch.Tensor) -> float:
            student.train()
            value = loss(idx)
            opt.zero_grad()
            value.backward()
            opt.step()
            schedule.step()
            if after_step is not None:
                after_step()
            return value.item()

        log, best = keep_best_epochs(name, epochs, steps, step, lambda: s_accuracy(student, self.valid),
                                     lambda: copy.deepcopy(student.state_dict()), self.rep, start_epoch)
        student.load_state_dict(best)
        student.eval()
        return log

    def _student_out(self, student: TextStudent, tokens, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return student(tokens.input_ids[idx], tokens.mask[idx])

    def represent(self, student: TextStudent, name: str) -> list[dict]:
        """Stage 1: the teacher's pooled state on the transfer set, the head tied to the projection."""
        if not self.cfg.pretrain_epochs:
            return []
        t, gen = self.transfer, torch.Generator().manual_seed(self.cfg.seed)
        carry_head(student, self.teacher)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            _, pooled = self._student_out(student, t.tokens, idx)
            return F.mse_loss(student.hid_proj(pooled), t.pooled[idx])

        params = [p for n, p in student.named_parameters() if not n.startswith("classifier.")]
        return self._epochs(student, f"representation matching ({name})", self.cfg.pretrain_epochs,
                            lambda: list(torch.split(torch.randperm(len(t.pooled), generator=gen),
                                                     self.cfg.batch_size))[:self.cfg.max_steps_per_epoch],
                            self.represent_steps, loss, params, self.cfg.lr,
                            after_step=lambda: carry_head(student, self.teacher))

    def task(self, student: TextStudent, name: str, interplay: bool, epochs: int) -> list[dict]:
        """Cross-distillation (`interplay`) or plain KD on the labelled training rows."""
        cfg, train, teacher = self.cfg, self.train, self.teacher
        t_opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=cfg.teacher_lr)
        gen = torch.Generator().manual_seed(cfg.seed)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            y = train.y[idx]
            s_logits, s_pooled = self._student_out(student, train.student, idx)
            value = cfg.w_task * F.cross_entropy(s_logits, y)
            if not interplay:
                return value + cfg.w_kd * softened_kl(self.train_logits[idx], s_logits, cfg.temperature)
            teacher.train()
            t_logits, t_pooled = teacher(train.lower[idx], train.mask[idx])
            value = value + cfg.w_kd * softened_kl(t_logits.detach(), s_logits, cfg.temperature)
            if cfg.w_hidden:
                value = value + cfg.w_hidden * F.mse_loss(student.hid_proj(s_pooled), t_pooled.detach())
            # the teacher adapts to the student's state at a small learning rate
            t_loss = F.cross_entropy(t_logits, y) + cfg.w_agree * softened_kl(s_logits.detach(), t_logits,
                                                                              cfg.temperature)
            t_opt.zero_grad()
            t_loss.backward()
            t_opt.step()
            teacher.eval()
            return value

        label = "cross distillation" if interplay else "plain KD"
        return self._epochs(student, f"{label} ({name})", epochs, lambda: self._train_batches(gen), self.steps,
                            loss, list(student.parameters()), cfg.lr)

    def match_logits(self, student: TextStudent, name: str, epochs: int) -> list[dict]:
        """Stage 2: the teacher's logits on transfer-set batches, unfreezing the head, the body, the embeddings."""
        cfg, t = self.cfg, self.transfer
        enc = student.encoder
        groups = [list(student.classifier.parameters()),
                  [p for n, p in enc.named_parameters() if not n.startswith("word.")], list(enc.word.parameters())]
        params = [p for g in groups for p in g]
        for p in params[len(groups[0]):]:
            p.requires_grad_(False)  # AdamW skips a parameter without a gradient

        def unfreeze(epoch: int) -> None:
            for group, start in zip(groups, unfreeze_epochs(len(groups), epochs)):
                for p in group:
                    p.requires_grad_(p.requires_grad or start <= epoch)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            s_logits, _ = self._student_out(student, t.tokens, idx)
            return softened_kl(t.logits[idx], s_logits, cfg.temperature)

        try:
            return self._epochs(student, f"logit matching ({name})", epochs,
                                self._transfer_batches(torch.Generator().manual_seed(cfg.seed)), self.steps, loss,
                                params, cfg.lr, start_epoch=unfreeze)
        finally:
            for p in params:
                p.requires_grad_(True)

    def labels(self, student: TextStudent, name: str, epochs: int) -> list[dict]:
        """Stage 3: cross-entropy on the labelled training rows, every weight free."""
        train, gen = self.train, torch.Generator().manual_seed(self.cfg.seed + 1)
        return self._epochs(student, f"label fine-tuning ({name})", epochs, lambda: self._train_batches(gen),
                            self.steps, lambda idx: F.cross_entropy(self._student_out(student, train.student, idx)[0],
                                                        train.y[idx]),
                            [p for n, p in student.named_parameters() if not n.startswith("hid_proj.")], self.cfg.lr)

    def run(self, student: TextStudent, method: str, name: str) -> dict:
        """Every stage of `method`; the log of each and the optimizer steps they took."""
        cfg = self.cfg
        log = {"method": method, "steps_per_epoch": self.steps,
               "represent_steps": cfg.pretrain_epochs * self.represent_steps,
               "represent": self.represent(student, name)}
        if method in ("cross", "kd"):
            log["task"] = self.task(student, name, method == "cross", cfg.epochs)
            epochs = cfg.epochs
        else:  # the last epoch of the budget goes to the labels (two epochs when the budget is one)
            logit_epochs = max(1, cfg.epochs - 1)
            log["logits"] = self.match_logits(student, name, logit_epochs)
            log["labels"] = self.labels(student, name, 1)
            epochs = logit_epochs + 1
        log["task_steps"] = epochs * self.steps
        return log

    def quantization_aware(self, student: TextStudent, steps: int, name: str) -> None:
        """`steps` of cross-entropy + KD to the frozen teacher at a quarter of the learning rate, for a student whose
        weights are seen fake-quantized (compression/quant/export.py fake_quantized)."""
        cfg = self.cfg
        opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr / 4)
        gen = torch.Generator().manual_seed(cfg.seed + 2)
        order: list[torch.Tensor] = []
        student.train()
        with self.rep.stage(name, total=steps) as advance:
            for _ in range(steps):
                if not order:
                    order = self._train_batches(gen)
                idx = order.pop()
                s_logits, _ = self._student_out(student, self.train.student, idx)
                loss = cfg.w_task * F.cross_entropy(s_logits, self.train.y[idx]) + cfg.w_kd * softened_kl(
                    self.train_logits[idx], s_logits, cfg.temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
                advance(loss=loss.item())
        student.eval()
