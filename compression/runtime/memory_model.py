"""Analytic memory of one device's round: predicted bytes from the model's and the device's dimensions.

Counted from what the code allocates (float32 = 4 bytes, int64 indices = 8, bool = 1):

- **Resident model** (compression/runtime/model.py `DeviceModel`, what client/worker.py counts as `model_bytes`):
  the word table stays quantized (INT8: 1 byte per weight + one float32 scale per row; INT4: half a byte per weight
  + one scale per group); every other weight is dequantized once to float32; plus the vocabulary's characters. The
  encoder's weights are its own term: `resident_bytes` of its class in compression/runtime/encoders/.
- **One encode** (batch 1, T tokens): the encoder's own term as well, `encode_bytes` of its class.
- **The task's work** (inference, or training when the device trains): the task's own term, `work_bytes` of the
  shapes its device side gives (edgefleet/tasks/movielens/memory.py for the recommender).

A device's peak is the larger of its work and its table plus one encode (client/device.py). Not counted: Python
object headers and the small per-row vectors (a few KB; the reason the prediction runs a little low on tiny
devices), and the allocator's reuse of freed blocks, which tracemalloc does not see either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from compression.runtime.encoders import encoder_class

F32, I64 = 4, 8


@dataclass(frozen=True)
class ModelDims:
    """What the memory of a deployed model depends on."""

    kind: str  # the encoder's name in compression/runtime/encoders/
    vocab: int
    vocab_chars: int  # characters of every token, +1 each (how client/worker.py counts the vocabulary)
    embed: int
    hidden: int  # width of the pooled text vector
    ffn: int
    heads: int
    layers: int
    lstm_hidden: int
    max_len: int
    dim: int  # the recommendation head's item/user vector width (0: no such head)
    history_len: int  # the recommendation head's recency window (0: no such head)
    head_floats: int  # every weight outside the encoder (the task's heads), held in float32
    bits: int
    group: int

    @classmethod
    def from_artifact(cls, config: dict, vocab: list[str], shapes: dict[str, tuple[int, ...]]) -> "ModelDims":
        s = config["student"]
        return cls(kind=s["kind"], vocab=len(vocab), vocab_chars=sum(len(t) + 1 for t in vocab),
                   embed=int(shapes["encoder.word.weight"][1]), hidden=encoder_class(s["kind"]).width(s),
                   ffn=int(s["ffn"]), heads=int(s["heads"]), layers=int(s["layers"]),
                   lstm_hidden=int(s["lstm_hidden"]), max_len=int(config["max_len"]),
                   dim=int(config.get("dim", 0)), history_len=int(config.get("history_len", 0)),
                   head_floats=sum(math.prod(shape) for name, shape in shapes.items()
                                   if not name.startswith("encoder.")),
                   bits=int(config.get("bits", 8)), group=int(config.get("int4_group", 32)))


def resident_bytes(m: ModelDims) -> int:
    """The loaded model: quantized word table, float32 everything else, the vocabulary's characters."""
    if m.bits == 4:
        groups = -(-m.embed // m.group)
        word = m.vocab * groups * m.group // 2 + m.vocab * groups * F32
    else:
        word = m.vocab * m.embed + m.vocab * F32
    return word + encoder_class(m.kind).resident_bytes(m) + F32 * m.head_floats + m.vocab_chars


def encode_bytes(m: ModelDims, tokens: int) -> int:
    """Transient of one batch-1 encode of a `tokens`-long text."""
    return encoder_class(m.kind).encode_bytes(m, max(min(tokens, m.max_len), 1))


class DeviceWork(Protocol):
    """A task's device shapes (edgefleet/tasks/base.py `DeviceSide.shapes`): what its round's memory depends on."""

    n_local: int  # texts in the device's local table
    tokens: int  # longest tokenised text in the table (after truncation)

    def work_bytes(self, m: ModelDims, train: bool) -> int:
        """Peak of the task's capped work (inference, or training when `train`) beyond the loaded model."""
        ...


def work_bytes(m: ModelDims, d: DeviceWork, train: bool) -> int:
    """Peak of the device's work beyond the loaded model: max(capped work, table + one encode)."""
    return max(d.work_bytes(m, train), F32 * d.n_local * m.hidden + encode_bytes(m, d.tokens))


def predict(m: ModelDims, d: DeviceWork, train: bool) -> int:
    """Bytes the device needs in all: the resident model plus its work's peak."""
    return resident_bytes(m) + work_bytes(m, d, train)


def min_budget(m: ModelDims, d: DeviceWork, train: bool) -> int:
    """The smallest budget the prediction says fits (rounded up to a KiB)."""
    return int(math.ceil(predict(m, d, train) / 1024) * 1024)
