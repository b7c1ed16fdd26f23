"""Device encoders by name (an artifact's `student.kind`); compression/student/ has their training twins."""

from __future__ import annotations

from compression.runtime.encoders.base import Encoder
from compression.runtime.encoders.bert import BertEncoder
from compression.runtime.encoders.bilstm import LstmEncoder

ENCODERS: dict[str, type[Encoder]] = {"bert": BertEncoder, "bilstm": LstmEncoder}


def encoder_class(kind: str) -> type[Encoder]:
    if kind not in ENCODERS:
        raise ValueError(f"unknown student encoder {kind!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[kind]
