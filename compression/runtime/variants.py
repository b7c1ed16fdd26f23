"""Leaner deployments of one trained student, derived from its artifact without retraining.

A variant changes what a device loads and runs, never the training: the weights are the deployed student's.

- `bits=4`: every 2-D weight re-quantized to INT4 (compression/quant/export.py `quantize_state`, the same groups as
  `compress` uses for its INT4 figures). The source is the INT8 artifact's weights, so an INT4 variant carries both
  rounding steps; `compress` quantizes the float student once (its report's `quantization.int4`).
- `vocab=k`: the word table cut to the first k tokens. `compress` orders the vocabulary specials, then every
  corpus character, then by score (compression/vocab/prune.py), so the first k are the k best-scored tokens; a word
  whose
  pieces are gone is spelled from shorter kept pieces by the same WordPiece rules.
- `keep_ratio`: input-token pruning after layer `prune_after` (PoWER-BERT/LTP; the runtime drops the tokens).
- `max_len`: texts truncated to this many tokens; the position table is cut to match.

A variant's micro-batch (gradient accumulation) is a setting of the device's training, not of the artifact
(client/device.py `training_plan`).
"""

from __future__ import annotations

import copy
from pathlib import Path

from compression.runtime.artifact import Artifact, read_artifact, write_artifact
from compression.runtime.quantize import QTensor
from compression.runtime.tokenizer import SPECIALS

WORD = "encoder.word.weight"
POS = "encoder.pos.weight"


def _rows(q: QTensor, n: int) -> QTensor:
    """The first `n` rows of a row-quantized (or float) table, bytes unchanged."""
    return QTensor(q.kind, (n,) + q.shape[1:], q.data[:n], None if q.scale is None else q.scale[:n], q.group)


def derive(base: Artifact, bits: int | None = None, vocab: int | None = None, keep_ratio: float | None = None,
           max_len: int | None = None) -> tuple[dict, list[str], dict[str, QTensor]]:
    """(config, vocabulary, tensors) of the variant; unset arguments keep the base artifact's value."""
    config = copy.deepcopy(base.config)
    tokens = list(base.vocab)
    tensors = dict(base.tensors)
    if vocab is not None and vocab < len(tokens):
        missing = [s for s in SPECIALS if s not in tokens[:vocab]]
        if missing or vocab < 1:
            raise ValueError(f"a vocabulary of {vocab} tokens would lose the special token(s) {', '.join(missing)}")
        tokens = tokens[:vocab]
        tensors[WORD] = _rows(tensors[WORD], vocab)
    if max_len is not None:
        config["max_len"] = int(max_len)
        if POS in tensors and tensors[POS].shape[0] > max_len:
            tensors[POS] = _rows(tensors[POS], max_len)
    if keep_ratio is not None:
        config["student"] = {**config["student"], "keep_ratio": float(keep_ratio)}
    if bits is not None and bits != int(config.get("bits", 8)):
        from compression.quant.export import quantize_state  # imports torch: only for a re-quantized variant

        group = int(config.get("int4_group", 32))
        tensors = quantize_state({name: q.dequantize() for name, q in tensors.items()}, bits, group)
        config["bits"] = int(bits)
    return config, tokens, tensors


def write_variant(base_path: Path, out: Path, name: str, **changes) -> int:
    """Derive a variant of the artifact at `base_path` and write it to `out`; returns its size in bytes."""
    base = read_artifact(base_path)
    config, tokens, tensors = derive(base, **changes)
    meta = {**base.meta, "variant": name, "derived_from": base.sha256,
            "changes": {k: v for k, v in changes.items() if v is not None}}
    return write_artifact(out, config, tokens, tensors, meta)
