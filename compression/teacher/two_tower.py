"""The teacher: all-MiniLM-L6-v2 as a text two-tower recommender, fine-tuned on server-owned data only.

Item tower: MiniLM over the item's text, mean-pooled, projected to `dim` and L2-normalised, plus a scalar prior
read from the same text (what makes a title popular is learnable from the title). User tower: a recency-weighted
mean of the user's history item vectors through a linear map, so a device can build its user from items alone.
Score = scale * cos(user, item) + prior(item).

The bottom `freeze_layers` encoder layers stay frozen, so their output for the whole catalogue is computed once
and cached; only the top layers and the heads train. The fine-tuned top layers and heads are what
cross-distillation later carries into the student.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compression.teacher.minilm import length_buckets, load_minilm, lower_states, mean_pool, model_digest, run_layers
from edgefleet.config import Config, TeacherConfig
from edgefleet.progress import Reporter
from edgefleet.tasks.movielens.data import Catalogue
from edgefleet.tasks.movielens.protocol import EvalSet, evaluate
from edgefleet.tasks.movielens.split import Split
from edgefleet.tasks.movielens.teacher_head import RecHead, RecScorer, TaskSampler, task_loss

# Bump when a change to this file changes what a cached teacher would contain.
TEACHER_FORMAT = 2


@dataclass(frozen=True)
class ItemTokens:
    """The tokenised catalogue: (n_items, max_len) ids and attention mask."""

    input_ids: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, tokenizer, texts: Sequence[str], max_len: int) -> "ItemTokens":
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        return cls(enc["input_ids"], enc["attention_mask"])


def encode_texts(tokenizer, texts: Sequence[str]) -> ItemTokens:
    """Pad a batch of texts tokenised by a `tokenizers.Tokenizer` into ids and mask tensors."""
    encs = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), width, dtype=torch.long)
    mask = torch.zeros(len(encs), width, dtype=torch.long)
    for r, e in enumerate(encs):
        ids[r, :len(e.ids)] = torch.tensor(e.ids)
        mask[r, :len(e.ids)] = 1
    return ItemTokens(ids, mask)


class TwoTowerTeacher(nn.Module):
    """MiniLM item tower (bottom layers frozen) + the shared two-tower head."""

    def __init__(self, bert: nn.Module, cfg: TeacherConfig):
        super().__init__()
        self.bert = bert
        self.split_at = cfg.freeze_layers
        self.head = RecHead(bert.config.hidden_size, cfg.dim, cfg.history_len, cfg.temperature)
        frozen = [self.bert.embeddings, *self.bert.encoder.layer[: self.split_at]]
        if self.bert.pooler is not None:
            frozen.append(self.bert.pooler)
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def lower(self, tokens: ItemTokens) -> torch.Tensor:
        """Frozen hidden states entering layer `split_at`, for every item: (n_items, L, hidden), zero-padded."""
        return lower_states(self.bert, tokens.input_ids, tokens.mask, self.split_at)

    def upper(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled output of the trainable top layers for items entering with `hidden`: (B, hidden)."""
        parts, order = [], []
        for idx in length_buckets(mask):
            w = int(mask[idx].sum(1).max())
            out = run_layers(self.bert, hidden[idx, :w], mask[idx, :w], self.split_at, len(self.bert.encoder.layer))
            parts.append(mean_pool(out, mask[idx, :w]))
            order.append(idx)
        return torch.cat(parts)[torch.argsort(torch.cat(order))]

    def pooled_catalogue(self, lower: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`upper` over the whole catalogue without gradients."""
        with torch.no_grad():
            return self.upper(lower, mask)


def teacher_scorer(model: TwoTowerTeacher, lower: torch.Tensor, tokens: ItemTokens) -> RecScorer:
    model.eval()
    with torch.no_grad():
        items, prior = model.head.item_vectors(model.pooled_catalogue(lower, tokens.mask))
    return RecScorer(model.head, items, prior)


class MeanEmbeddingScorer:
    """Zero-shot text baseline: cosine between an item's embedding and the mean of the user's history embeddings."""

    def __init__(self, item_embeddings: torch.Tensor):
        self.items = F.normalize(item_embeddings, dim=-1)

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = torch.stack([self.items[torch.from_numpy(h)].mean(0) for h in histories])
        return (F.normalize(users, dim=-1) @ self.items.T).numpy()


def train_teacher(model: TwoTowerTeacher, tokens: ItemTokens, lower: torch.Tensor, split: Split,
                  valid: EvalSet, cfg: TeacherConfig, reporter: Reporter) -> list[dict]:
    """Sampled-softmax training against uniform negatives; keeps the epoch with the best validation HR@k."""
    torch.manual_seed(cfg.seed)
    heads = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("bert.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("bert.")]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr}, {"params": heads, "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    sampler = TaskSampler(split, cfg.history_len, cfg.batch_size, cfg.negatives, cfg.seed)
    steps = sampler.steps(cfg.max_steps_per_epoch)
    head = model.head
    log: list[dict] = []
    best, best_state = -1.0, None
    for epoch in range(cfg.epochs):
        bank = model.pooled_catalogue(lower, tokens.mask)  # the history side reads this per-epoch bank
        model.train()
        total = 0.0
        with reporter.stage(f"teacher epoch {epoch + 1}/{cfg.epochs}", total=steps) as advance:
            for batch in sampler.epoch(steps):
                items, prior = head.item_vectors(model.upper(lower[batch.cand], tokens.mask[batch.cand]))
                hist = F.normalize(head.item_head(bank[batch.hist_ids]), dim=-1)
                loss = task_loss(head.logits(head.user_vectors(hist, batch.hist_mask), items, prior), batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
                advance(loss=loss.item())
        metrics = evaluate(teacher_scorer(model, lower, tokens), valid)
        key = f"hr@{valid.k}"
        log.append({"epoch": epoch + 1, "loss": total / steps, "steps": steps, "valid": metrics})
        reporter.log(f"  epoch {epoch + 1}: loss {total / steps:.4f}  valid {key} {metrics[key]:.4f}")
        if metrics[key] > best:
            best, best_state = metrics[key], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return log


# The task keys a model trained on the server reads: the ownership split (whose data it trains on, and the batches)
# and the server's validation set, which picks the best epoch (its negatives and its cut-off k).
# `task.max_eval_users` is not one: it caps the device-side test set, which no model trains on.
TRAINING_TASK_KEYS = ("seed", "server_fraction", "min_train_items", "num_negatives", "k")


def teacher_key(cfg: Config, catalogue: Catalogue) -> str:
    """Cache key of a trained teacher: exactly what changes its weights.

    In: every `teacher.*` key (architecture, optimisation, batches, seed); `TRAINING_TASK_KEYS`; the data's digest;
    the MiniLM files' digest; `TEACHER_FORMAT` (this file's training code).
    Out, so that none of them retrains it: `baselines.*` (trained beside it, not into it); `vocab`, `student`,
    `distill`, `quant` (later stages, which read the teacher); `measure.*` (how the report measures); `sim`,
    `privacy`, `stress` (what a fleet does with the model); `task.max_eval_users` and the text-classification
    task's keys; `artifacts_dir`; the preset's name (its values count, and they are in the keys above).
    """
    payload = {
        "format": TEACHER_FORMAT,
        "teacher": cfg.teacher.model_dump(),
        "split": {k: getattr(cfg.task, k) for k in TRAINING_TASK_KEYS},
        "data": catalogue.source_digest,
        "model": model_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Teacher:
    """A trained teacher with what scoring and distillation need."""

    model: TwoTowerTeacher
    tokenizer: object
    tokens: ItemTokens
    lower: torch.Tensor
    zero_shot: torch.Tensor
    log: list[dict]
    cache_dir: Path
    cached: bool

    def scorer(self) -> RecScorer:
        return teacher_scorer(self.model, self.lower, self.tokens)


def build_teacher(cfg: Config, catalogue: Catalogue, split: Split, valid: EvalSet, reporter: Reporter) -> Teacher:
    """Load the teacher from the artifacts cache, or fine-tune it on server-owned data and cache it."""
    cache_dir = Path(cfg.artifacts_dir) / "teacher" / teacher_key(cfg, catalogue)
    weights = cache_dir / "teacher.pt"
    with reporter.stage("load MiniLM and encode catalogue"):
        tokenizer, bert = load_minilm()
        torch.manual_seed(cfg.teacher.seed)
        model = TwoTowerTeacher(bert, cfg.teacher)
        tokens = ItemTokens.build(tokenizer, catalogue.item_texts(), cfg.teacher.max_len)
        model.eval()
        lower = model.lower(tokens)
        zero_shot = model.pooled_catalogue(lower, tokens.mask)
    if weights.is_file():
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        log = json.loads((cache_dir / "train_log.json").read_text())
        reporter.log(f"teacher loaded from cache {cache_dir}")
        return Teacher(model, tokenizer, tokens, lower, zero_shot, log, cache_dir, cached=True)
    log = train_teacher(model, tokens, lower, split, valid, cfg.teacher, reporter)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    (cache_dir / "train_log.json").write_text(json.dumps(log, indent=2))
    tmp.replace(weights)  # the weights file appears last and whole: its presence means the cache entry is complete
    return Teacher(model, tokenizer, tokens, lower, zero_shot, log, cache_dir, cached=False)
