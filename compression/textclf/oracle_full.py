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
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from compression.quant.export import load_quantized
from compression.runtime.artifact import Artifact, read_artifact, write_artifact
from compression.runtime.quantize import QTensor
from compression.runtime.tokenizer import build_wordpiece
from compression.student import build_encoder
from compression.teacher.two_tower import ItemTokens, encode_texts
from compression.textclf.models import TextStudent, accuracy, batches, predict
from compression.whole_finetune import fine_tune_whole
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
    student = student_from_artifact(base)
    tokenizer = build_wordpiece(base.vocab, int(base.config["max_len"]))
    train, valid = encode_texts(tokenizer, list(texts)), encode_texts(tokenizer, list(valid_texts))
    y, valid_y = torch.as_tensor(np.asarray(labels), dtype=torch.long), torch.as_tensor(np.asarray(valid_labels))
    gen = torch.Generator().manual_seed(seed)

    def epoch_batches() -> list[torch.Tensor]:
        return batches(len(y), batch_size, max_steps_per_epoch, gen)

    def loss(rows: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(student(train.input_ids[rows], train.mask[rows])[0], y[rows])

    steps = len(epoch_batches())
    best_tensors, best, log = fine_tune_whole(
        student, base, epochs=epochs, steps=steps, lr=lr, epoch_batches=epoch_batches, loss=loss,
        score=lambda tensors: _valid_accuracy(student, tensors, valid, valid_y), metric="accuracy", reporter=reporter)

    chosen = next(row["epoch"] for row in log if row["chosen"])
    meta = {**base.meta, "variant": "oracle_full", "derived_from": base.sha256, "chosen_epoch": chosen,
            "valid_accuracy": best}
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL
    write_artifact(path, dict(base.config), base.vocab, best_tensors, meta)
    return path, log
