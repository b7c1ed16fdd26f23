"""Student encoders by name (the config's `student.kind`); compression/runtime/encoders/ has their device twins.

A new encoder is one file here, one in the runtime, a line in each registry and its name in
edgefleet/config.py `STUDENT_KINDS`.
"""

from __future__ import annotations

from compression.student.base import StudentEncoder
from compression.student.bert import CompactBert
from compression.student.bilstm import BiLSTMStudent
from edgefleet.config import StudentConfig

ENCODERS: dict[str, type[StudentEncoder]] = {"bert": CompactBert, "bilstm": BiLSTMStudent}


def encoder_class(kind: str) -> type[StudentEncoder]:
    if kind not in ENCODERS:
        raise ValueError(f"unknown student encoder {kind!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[kind]


def build_encoder(cfg: StudentConfig, vocab_size: int, max_len: int) -> StudentEncoder:
    return encoder_class(cfg.kind)(cfg, vocab_size, max_len)
