"""The epoch loop both `oracle_full`s share (compression/oracle_full.py for the recommender,
compression/textclf/oracle_full.py for a classifier): every weight of a deployed student fine-tuned, AdamW falling
linearly to zero, each epoch re-quantized as deployed and scored on validation data; epoch 0 is the deployed model,
and a later epoch is kept only when it scores higher, so when none does the deployed tensors are what is written."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from compression.quant.export import exported_state, quantize_state
from compression.runtime.artifact import Artifact
from compression.runtime.quantize import QTensor
from edgefleet.progress import Reporter


def quantized_like(student: nn.Module, like: dict[str, QTensor], bits: int, group: int) -> dict[str, QTensor]:
    """The student's weights quantized as the deployed artifact was, in its tensor order."""
    state = exported_state(student)
    return quantize_state({name: state[name] for name in like}, bits, group)


def fine_tune_whole(student: nn.Module, base: Artifact, *, epochs: int, steps: int, lr: float,
                    epoch_batches: Callable[[], Sequence], loss: Callable[[object], torch.Tensor],
                    score: Callable[[dict[str, QTensor]], float], metric: str,
                    reporter: Reporter) -> tuple[dict[str, QTensor], float, list[dict]]:
    """Train `student` (the float twin of `base`) for `epochs` passes of `epoch_batches()` (`steps` batches each),
    one AdamW step on `loss(batch)` a batch; `score(tensors)` scores quantized weights on
    validation data. Returns the chosen tensors, their score, and one row per epoch: mean loss, the score
    (`valid`), seconds, and `chosen` on the epoch kept."""
    bits, group = int(base.config.get("bits", 8)), int(base.config.get("int4_group", 32))
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / (epochs * steps)))
    best_tensors, best = dict(base.tensors), score(base.tensors)
    log = [{"epoch": 0, "loss": None, "valid": best, "seconds": 0.0, "chosen": True}]
    reporter.log(f"oracle_full epoch 0 (deployed): valid {metric} {best:.4f}")
    for epoch in range(1, epochs + 1):
        started, losses = time.perf_counter(), []
        student.train()
        batches = epoch_batches()
        with reporter.stage(f"oracle_full epoch {epoch}/{epochs}", total=len(batches)) as advance:
            for batch in batches:
                value = loss(batch)
                opt.zero_grad()
                value.backward()
                opt.step()
                sched.step()
                losses.append(value.item())
                advance(loss=value.item())
        student.eval()
        tensors = quantized_like(student, base.tensors, bits, group)
        valid = score(tensors)
        log.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid": valid,
                    "seconds": round(time.perf_counter() - started, 1), "chosen": False})
        reporter.log(f"oracle_full epoch {epoch}: loss {np.mean(losses):.4f}  valid {metric} {valid:.4f}")
        if valid > best:
            best, best_tensors = valid, tensors
            for row in log:
                row["chosen"] = row["epoch"] == epoch
    return best_tensors, best, log
