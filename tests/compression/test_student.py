"""Students: shapes, PoWER-BERT/LTP-style input-token pruning, and the registry of encoders by name."""

import pytest
import torch

from compression.runtime.encoders import ENCODERS as DEVICE_ENCODERS
from compression.student import ENCODERS, build_encoder, encoder_class
from compression.student.bert import CompactBert, keep_important
from compression.student.bilstm import BiLSTMStudent
from edgefleet.config import STUDENT_KINDS, StudentConfig


def test_keep_important_keeps_the_most_attended_tokens():
    # One text, 4 live tokens + 1 pad; every query attends 0.1/0.6/0.2/0.1 to keys 0..3.
    probs = torch.tensor([0.1, 0.6, 0.2, 0.1, 0.0]).expand(1, 1, 5, 5)
    mask = torch.tensor([[True, True, True, True, False]])
    assert keep_important(probs, mask, 0.5).tolist() == [[False, True, True, False, False]]
    assert keep_important(probs, mask, 0.1).tolist() == [[False, True, False, False, False]]  # at least one
    assert keep_important(probs, mask, 1.0).tolist() == mask.tolist()


def test_compact_bert_shapes_and_pruning():
    torch.manual_seed(0)
    cfg = StudentConfig(embed_dim=16, hidden=32, layers=2, heads=2, ffn=64, keep_ratio=0.5, prune_after=1)
    model = CompactBert(cfg, vocab_size=50, max_len=16)
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    out = model(ids, mask)
    assert out.pooled.shape == (2, 32) and out.attention.shape == (2, 9, 9)
    assert out.mask.sum(1).tolist() == [5, 3]  # ceil(9 * 0.5), ceil(6 * 0.5)
    full = model(ids, mask, keep_ratio=1.0)
    assert full.mask.sum(1).tolist() == [9, 6]
    # Padding never changes a text's vector.
    single = model(ids[1:, :6], mask[1:, :6], keep_ratio=1.0)
    assert torch.allclose(single.pooled, full.pooled[1:], atol=1e-5)


def test_bilstm_ignores_padding():
    torch.manual_seed(0)
    model = BiLSTMStudent(StudentConfig(kind="bilstm", embed_dim=16, lstm_hidden=8), vocab_size=30, max_len=16)
    ids = torch.randint(0, 30, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], 1).long()
    a = model(ids, torch.ones(1, 6, dtype=torch.long)).pooled
    b = model(padded, mask).pooled
    assert a.shape == (1, 16) and torch.allclose(a, b, atol=1e-5)


def test_the_config_and_both_registries_name_the_same_encoders():
    assert tuple(ENCODERS) == tuple(DEVICE_ENCODERS) == STUDENT_KINDS
    for kind in STUDENT_KINDS:  # each name builds the encoder registered under it
        assert type(build_encoder(StudentConfig(kind=kind), vocab_size=30, max_len=16)) is ENCODERS[kind]


def test_an_unknown_encoder_name_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^unknown student encoder 'gru'; known: bert, bilstm$"):
        encoder_class("gru")
