"""`oracle_full` for a classifier: the whole deployed student trained centrally on every training row, the ceiling
of the architecture that `edgefleet bench federation` sets federated runs against (the recommender's is
compression/oracle_full.py).

The artifact is rebuilt as a float `TextStudent` (its INT8/INT4 weights dequantized) and every weight trains, the
encoder's and the classifier's, on cross-entropy over the training rows' labels: what the devices' heads train on,
with nothing frozen. Each epoch is scored on the validation rows with the weights re-quantized as deployed, so the
choice is about what is written; epoch 0 is the deployed model, and when no epoch beats it the deployed tensors are
written unchanged. The result is an artifact of the same format, bits, vocabulary and labels, which the device
runtime evaluates exactly as it evaluates the start.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from compression.quant.export import exported_state, load_quantized, quantize_state
from compression.runtime.artifact import Artifact, read_artifact, write_artifact
from compression.runtime.quantize import QTensor
from compression.runtime.tokenizer import build_wordpiece
from compression.student import build_encoder
from compression.teacher.two_tower import ItemTokens, encode_texts
from compression.textclf.models import TextStudent, accuracy, batches, predict
from edgefleet.config import StudentConfig
from edgefleet.progress import Reporter
from edgefleet.rundir import MODEL


def student_from_artifact(artifact: Artifact) -> TextStudent:
    """The float torch twin of a deployed classifier: its dequantized weights in the training modules."""
    cfg = artifact.config
    encoder = build_encoder(StudentConfig(**cfg["student"]), len(artifact.vocab), int(cfg["max_len"]))
    student = TextStudent(encoder, len(cfg["labels"]), teacher_hidden=1)  # hid_proj is training-only: unused here
    load_quantized(student, artifact.tensors)
    return student


def _quantized(student: TextStudent, like: dict[str, QTensor], bits: int, group: int) -> dict[str, QTensor]:
    """The student's weights quantized as the deployed artifact was, in its tensor order."""
    state = exported_state(student)
    return quantize_state({name: state[name] for name in like}, bits, group)


def _valid_accuracy(student: TextStudent, tensors: dict[str, QTensor], valid: ItemTokens, y: torch.Tensor) -> float:
    deployed = copy.deepcopy(student)
    load_quantized(deployed, tensors)
    return accuracy(predict(deployed, valid.input_ids, valid.mask)[0], y)


def train_full_classifier(model_path: Path, texts: Sequence[str], labels: np.ndarray, valid_texts: Sequence[str],
                          valid_labels: np.ndarray, out: Path, reporter: Reporter, *, epochs: int = 3,
                          lr: float = 1e-3, batch_size: int = 64, max_steps_per_epoch: int | None = None,
                          seed: int = 0) -> tuple[Path, list[dict]]:
    """Fine-tune every weight of the classifier at `model_path` on `texts` and their `labels`; write the chosen
    epoch's re-quantized artifact to `out/model.eflt`.

    `epochs` passes over the rows in shuffled batches of `batch_size` (at most `max_steps_per_epoch` a pass),
    AdamW at `lr` falling linearly to zero; `seed` orders the rows. Returns the artifact's path and one row per
    epoch (epoch 0 is the deployed model): mean loss, validation accuracy of the re-quantized weights, seconds,
    and `chosen` on the epoch written.
    """
    base = read_artifact(model_path)
    bits, group = int(base.config.get("bits", 8)), int(base.config.get("int4_group", 32))
    student = student_from_artifact(base)
    tokenizer = build_wordpiece(base.vocab, int(base.config["max_len"]))
    train, valid = encode_texts(tokenizer, list(texts)), encode_texts(tokenizer, list(valid_texts))
    y, valid_y = torch.as_tensor(np.asarray(labels), dtype=torch.long), torch.as_tensor(np.asarray(valid_labels))
    gen = torch.Generator().manual_seed(seed)
    steps = len(batches(len(y), batch_size, max_steps_per_epoch, gen))
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / (epochs * steps)))

    best_tensors, best = dict(base.tensors), _valid_accuracy(student, base.tensors, valid, valid_y)
    log = [{"epoch": 0, "loss": None, "valid": best, "seconds": 0.0, "chosen": True}]
    reporter.log(f"oracle_full epoch 0 (deployed): valid accuracy {best:.4f}")
    for epoch in range(1, epochs + 1):
        started, losses = time.perf_counter(), []
        student.train()
        order = batches(len(y), batch_size, max_steps_per_epoch, gen)
        with reporter.stage(f"oracle_full epoch {epoch}/{epochs}", total=len(order)) as advance:
            for rows in order:
                logits, _ = student(train.input_ids[rows], train.mask[rows])
                loss = F.cross_entropy(logits, y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                advance(loss=loss.item())
        student.eval()
        tensors = _quantized(student, base.tensors, bits, group)
        score = _valid_accuracy(student, tensors, valid, valid_y)
        log.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid": score,
                    "seconds": round(time.perf_counter() - started, 1), "chosen": False})
        reporter.log(f"oracle_full epoch {epoch}: loss {np.mean(losses):.4f}  valid accuracy {score:.4f}")
        if score > best:
            best, best_tensors = score, tensors
            for row in log:
                row["chosen"] = row["epoch"] == epoch

    chosen = next(row["epoch"] for row in log if row["chosen"])
    meta = {**base.meta, "variant": "oracle_full", "derived_from": base.sha256, "chosen_epoch": chosen,
            "valid_accuracy": best}
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL
    write_artifact(path, dict(base.config), base.vocab, best_tensors, meta)
    return path, log
