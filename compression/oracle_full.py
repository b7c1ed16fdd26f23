"""`oracle_full`: the whole deployed student trained centrally on every user's training data, the ceiling of the
architecture that `edgefleet bench federation` sets federated runs against.

The deployed artifact is rebuilt as a float torch `StudentRec` (its INT8/INT4 weights dequantized), and every weight
trains: encoder, recommendation head, genre head. The data is every user's train items, the server-owned and the
device-owned users' alike; no validation or test item is ever an example, a history item or a masked negative.
The loss is the compression pipeline's: sampled softmax over the batch's targets and uniform negatives, the user's
other train items masked (teacher_head.py `task_loss`), plus the genre head's labels on the titles genre training
may use. Each step encodes the whole catalogue once with gradients, so both the history side and the candidates
learn through the encoder, and scores a large batch of next-item examples against it: an epoch is tens of steps.

The epoch is chosen on every user's validation item (edgefleet/tasks/movielens/bundle.py `every_user_valid`; never
a test item), scored on the weights re-quantized as deployed, so the choice is about what is written; epoch 0 is the
deployed model, and when no epoch beats it the deployed tensors are written unchanged. The result is an artifact of
the same format, bits and vocabulary, which the device runtime evaluates exactly as it evaluates the start.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from compression.distill.stages import StudentRec
from compression.quant.export import load_quantized
from compression.runtime.artifact import Artifact, read_artifact, write_artifact
from compression.runtime.quantize import QTensor
from compression.runtime.tokenizer import build_wordpiece
from compression.student import build_encoder
from compression.teacher.two_tower import ItemTokens, encode_texts
from compression.whole_finetune import fine_tune_whole
from edgefleet.config import Config, StudentConfig
from edgefleet.progress import Reporter
from edgefleet.rundir import MODEL
from edgefleet.tasks.movielens.bundle import every_user_valid, load_task
from edgefleet.tasks.movielens.genre import GenreTask, evaluate_genres
from edgefleet.tasks.movielens.protocol import EvalSet, evaluate
from edgefleet.tasks.movielens.split import Split
from edgefleet.tasks.movielens.teacher_head import Batch, RecHead, pad_histories, task_loss

ENCODE_CHUNKS = 4  # the catalogue is encoded in this many length-sorted chunks, each padded only to its own width
GENRE_BATCH = 256


def student_from_artifact(artifact: Artifact) -> StudentRec:
    """The float torch twin of a deployed recommender: its dequantized weights in the training modules."""
    cfg = artifact.config
    student_cfg = StudentConfig(**cfg["student"])
    encoder = build_encoder(student_cfg, len(artifact.vocab), int(cfg["max_len"]))
    head = RecHead(encoder.out_dim, int(cfg["dim"]), int(cfg["history_len"]), temperature=1.0)  # log_scale is loaded
    genres = artifact.tensors["genre.bias"].shape[0]
    student = StudentRec(encoder, head, teacher_hidden=1, n_genres=genres)  # hid_proj trains nothing here
    load_quantized(student, artifact.tensors)
    return student


def next_item_examples(split: Split, history_len: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user, history ids, history mask, target) of every next-item example in every user's train items."""
    users, histories, targets = [], [], []
    for u, seq in enumerate(split.train):
        for t in range(1, len(seq)):
            users.append(u)
            histories.append(seq[max(0, t - history_len):t])
            targets.append(seq[t])
    ids, mask = pad_histories(histories, history_len)
    return np.asarray(users, dtype=np.int64), ids, mask, torch.tensor(targets, dtype=torch.long)


def _train_items(split: Split) -> torch.Tensor:
    """(n_users, n_items) bool: the items in each user's train sequence (what a row's loss may not count as
    negatives; validation and test items are not in it, so they stay ordinary negatives, as for any item)."""
    known = torch.zeros(split.n_users, split.n_items, dtype=torch.bool)
    for u, seq in enumerate(split.train):
        known[u, torch.from_numpy(seq)] = True
    return known


def _encode(student: StudentRec, tokens: ItemTokens, chunks: list[torch.Tensor], inverse: torch.Tensor) -> torch.Tensor:
    """Pooled vectors of every item text, with gradients; `chunks` are length-sorted index sets, `inverse` restores
    catalogue order."""
    parts = []
    for idx in chunks:
        width = int(tokens.mask[idx].sum(1).max())
        parts.append(student.encoder(tokens.input_ids[idx, :width], tokens.mask[idx, :width], 1.0).pooled)
    return torch.cat(parts)[inverse]


def _valid_score(student: StudentRec, tensors: dict[str, QTensor], tokens: ItemTokens, valid: EvalSet) -> float:
    deployed = copy.deepcopy(student)
    load_quantized(deployed, tensors)
    return float(evaluate(deployed.scorer(tokens, 1.0), valid)[f"hr@{valid.k}"])


def train_full_oracle(model_path: Path, cfg: Config, out: Path, reporter: Reporter, *, epochs: int = 3,
                      lr: float = 1e-3, batch_size: int = 4096, negatives: int = 1024,
                      max_steps_per_epoch: int | None = None, seed: int | None = None) -> tuple[Path, list[dict]]:
    """Fine-tune every weight of the artifact at `model_path` on every user's train items; write the chosen epoch's
    re-quantized artifact to `out/model.eflt`.

    `epochs`: passes over every user's next-item examples, AdamW at `lr` falling linearly to zero; `batch_size`
    examples and `negatives` uniform items (shared by the batch) per step; `max_steps_per_epoch` caps a pass;
    `seed` (default `distill.seed`) orders the examples and draws the negatives. Returns the artifact's path and one
    row per epoch (epoch 0 is the deployed model): mean loss, every user's validation HR@k of the
    re-quantized weights, seconds, and `chosen` on the epoch written.
    """
    base = read_artifact(model_path)
    seed = cfg.distill.seed if seed is None else seed
    with reporter.stage("oracle_full: load the task and rebuild the deployed student"):
        data = load_task(cfg.task)
        split = data.split
        student = student_from_artifact(base)
        tokenizer = build_wordpiece(base.vocab, int(base.config["max_len"]))
        tokens = encode_texts(tokenizer, data.catalogue.item_texts())
        genre = GenreTask.build(data.catalogue, split.seed)  # the task's held-out genre items stay out of training
        titles = encode_texts(tokenizer, genre.titles)
        users, hist_ids, hist_mask, targets = next_item_examples(split, student.head.history_len)
        known = _train_items(split)
    by_length = torch.argsort(tokens.mask.sum(1), stable=True)
    chunks = list(torch.tensor_split(by_length, ENCODE_CHUNKS))
    inverse = torch.argsort(by_length)
    rng = np.random.default_rng([seed, 0xF011])
    gen = torch.Generator().manual_seed(seed)
    steps = -(-len(targets) // batch_size)
    steps = min(steps, max_steps_per_epoch) if max_steps_per_epoch else steps

    def epoch_batches() -> list[torch.Tensor]:
        order = torch.from_numpy(rng.permutation(len(targets)))
        return [order[step * batch_size:(step + 1) * batch_size] for step in range(steps)]

    def loss(rows: torch.Tensor) -> torch.Tensor:
        return (_step_loss(student, tokens, chunks, inverse, users, hist_ids, hist_mask, targets, known, rows,
                           negatives, rng) + cfg.distill.w_genre * _genre_loss(student, titles, genre, gen))

    valid = every_user_valid(data)
    best_tensors, best, log = fine_tune_whole(
        student, base, epochs=epochs, steps=steps, lr=lr, epoch_batches=epoch_batches, loss=loss,
        score=lambda tensors: _valid_score(student, tensors, tokens, valid), metric=f"hr@{valid.k}", reporter=reporter)

    chosen = next(row["epoch"] for row in log if row["chosen"])
    load_quantized(student, best_tensors)
    config = dict(base.config)
    if "genre_threshold" in config:  # the written head's threshold, chosen as compress chooses it
        config["genre_threshold"] = evaluate_genres(student.genre_probs(titles), genre)["threshold"]
    meta = {**base.meta, "variant": "oracle_full", "derived_from": base.sha256, "chosen_epoch": chosen,
            f"valid_hr@{valid.k}": best}
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL
    write_artifact(path, config, base.vocab, best_tensors, meta)
    return path, log


def _step_loss(student: StudentRec, tokens: ItemTokens, chunks: list[torch.Tensor], inverse: torch.Tensor,
               users: np.ndarray, hist_ids: torch.Tensor, hist_mask: torch.Tensor, targets: torch.Tensor,
               known: torch.Tensor, rows: torch.Tensor, negatives: int, rng: np.random.Generator) -> torch.Tensor:
    """The pipeline's sampled softmax for the examples `rows`, every item vector from this step's encoder."""
    head = student.head
    items, prior = head.item_vectors(_encode(student, tokens, chunks, inverse))
    n_items = len(items)
    negs = torch.from_numpy(rng.choice(n_items, size=min(negatives, n_items), replace=False))
    cand, inverse_cand = torch.unique(torch.cat([targets[rows], negs]), return_inverse=True)
    label = inverse_cand[:len(rows)]
    mask = known[torch.from_numpy(users[rows.numpy()])][:, cand]
    mask[torch.arange(len(rows)), label] = False
    user_vecs = head.user_vectors(items[hist_ids[rows]], hist_mask[rows])
    logits = head.logits(user_vecs, items[cand], prior[cand])
    return task_loss(logits, Batch(targets[rows], hist_ids[rows], hist_mask[rows], cand, label, mask))


def _genre_loss(student: StudentRec, titles: ItemTokens, genre: GenreTask, gen: torch.Generator) -> torch.Tensor:
    """Multi-label cross-entropy of the genre head on titles of the items genre training may use."""
    idx = genre.train_items[torch.randint(len(genre.train_items), (GENRE_BATCH,), generator=gen)]
    width = int(titles.mask[idx].sum(1).max())
    logits = student.genre(student.encoder(titles.input_ids[idx, :width], titles.mask[idx, :width], 1.0).pooled)
    return F.binary_cross_entropy_with_logits(logits, genre.labels[idx])
