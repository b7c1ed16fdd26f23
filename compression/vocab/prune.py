"""EI-BERT "hard token" pruning: keep the vocabulary tokens the teacher attends to in the domain corpus.

Each token's score mixes how much attention it receives (summed over layers, heads and query positions, averaged
per occurrence) with how often it occurs, geometrically: score = attention^a * frequency^(1-a). The specials and
every single character seen in the corpus (plain and `##`-continued) are always kept, so an unseen word still
spells out of kept pieces instead of collapsing to [UNK].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from compression.runtime.tokenizer import SPECIALS, build_wordpiece
from compression.teacher.minilm import attention_probs, embed, run_layers


@dataclass(frozen=True)
class TokenStats:
    """Per teacher-vocabulary id: occurrences in the corpus and total attention received."""

    counts: np.ndarray
    attention: np.ndarray


@torch.no_grad()
def token_stats(bert: nn.Module, tokenizer, texts: Sequence[str], max_len: int, batch: int = 128) -> TokenStats:
    vocab_size = bert.config.vocab_size
    counts = np.zeros(vocab_size)
    received = np.zeros(vocab_size)
    bert.eval()
    for s in range(0, len(texts), batch):
        enc = tokenizer(list(texts[s:s + batch]), padding=True, truncation=True, max_length=max_len,
                        return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        hidden = embed(bert, ids)
        total = torch.zeros(ids.shape, dtype=torch.float64)
        for i, layer in enumerate(bert.encoder.layer):
            probs = attention_probs(layer, hidden, mask)  # (B, heads, Lq, Lk)
            total += (probs * mask[:, None, :, None]).sum(dim=(1, 2)).double()
            hidden = run_layers(bert, hidden, mask, i, i + 1)
        valid = mask.bool()
        np.add.at(counts, ids[valid].numpy(), 1.0)
        np.add.at(received, ids[valid].numpy(), total[valid].numpy())
    return TokenStats(counts=counts, attention=received)


@dataclass(frozen=True)
class PrunedVocab:
    tokens: list[str]  # new id -> token
    teacher_ids: np.ndarray  # new id -> teacher vocabulary id
    report: dict


def prune_vocab(stats: TokenStats, teacher_vocab: Sequence[str], size: int, attention_weight: float,
                texts: Sequence[str], teacher_tokenizer, max_len: int) -> PrunedVocab:
    """Keep specials, corpus characters, then the best-scored tokens up to `size`; report coverage."""
    index = {t: i for i, t in enumerate(teacher_vocab)}
    seen = stats.counts > 0
    per_use = np.where(seen, stats.attention / np.maximum(stats.counts, 1), 0.0)
    score = np.where(seen, per_use ** attention_weight * stats.counts ** (1 - attention_weight), -1.0)
    forced = [index[s] for s in SPECIALS]
    letters = {c for c in "".join(texts).lower() if not c.isspace()}
    letters |= {teacher_vocab[i].removeprefix("##") for i in np.flatnonzero(seen)
                if len(teacher_vocab[i].removeprefix("##")) == 1}
    chars = [index[t] for c in sorted(letters) for t in (c, "##" + c) if t in index]
    keep = list(dict.fromkeys(forced + sorted(set(chars))))
    if len(keep) > size:
        raise ValueError(f"vocab.size {size} is below the {len(keep)} specials and characters that must stay")
    chosen = set(keep)
    for i in np.argsort(-score, kind="stable"):
        if len(keep) >= size or score[i] <= 0:
            break
        if i not in chosen:
            keep.append(int(i))
            chosen.add(int(i))
    teacher_ids = np.array(keep, dtype=np.int64)
    tokens = [teacher_vocab[i] for i in teacher_ids]
    report = coverage(tokens, texts, teacher_tokenizer, max_len, stats, teacher_ids)
    report.update({"kept": len(tokens), "teacher_vocab": len(teacher_vocab), "attention_weight": attention_weight,
                   "forced_specials_and_chars": len(dict.fromkeys(forced + chars))})
    return PrunedVocab(tokens=tokens, teacher_ids=teacher_ids, report=report)


def coverage(tokens: list[str], texts: Sequence[str], teacher_tokenizer, max_len: int, stats: TokenStats,
             teacher_ids: np.ndarray) -> dict:
    """How much of the corpus the pruned vocabulary still spells exactly as the teacher did."""
    pruned = build_wordpiece(tokens, max_len)
    same = unk = total = 0
    for text in texts:
        ids = pruned.encode(text).tokens
        ref = teacher_tokenizer.convert_ids_to_tokens(teacher_tokenizer(text, truncation=True,
                                                                        max_length=max_len)["input_ids"])
        same += ids == ref
        unk += ids.count("[UNK]")
        total += len(ids)
    corpus_tokens = stats.counts.sum()
    return {
        "token_coverage": float(stats.counts[teacher_ids].sum() / corpus_tokens) if corpus_tokens else 0.0,
        "texts_tokenized_as_teacher": same / max(len(texts), 1),
        "unk_rate": unk / max(total, 1),
    }
