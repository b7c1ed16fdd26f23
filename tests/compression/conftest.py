"""Tiny models for compression unit tests: a random 2-layer BERT teacher and matching students (no downloads)."""

import pytest
import torch
from transformers import BertConfig, BertModel

from compression.runtime.tokenizer import SPECIALS

WORDS = ["toy", "story", "golden", "##eye", "star", "wars", "comedy", "drama", "action", "(", ")", "1995", "1977",
         "t", "##o", "##y", "s", "g", "##e", "##r", "##a"]


@pytest.fixture
def toy_vocab() -> list[str]:
    return list(SPECIALS) + WORDS


@pytest.fixture
def tiny_bert() -> BertModel:
    """hidden 64, 2 heads of 32 (the student's head size), tanh GELU so a student can match it exactly."""
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=96, max_position_embeddings=32, hidden_act="gelu_pytorch_tanh",
                     attn_implementation="eager")
    model = BertModel(cfg, add_pooling_layer=False)
    model.eval()
    return model
