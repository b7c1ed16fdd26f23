"""Analytic memory of one device's round: predicted bytes from the model's and the device's dimensions.

Counted from what the code allocates (float32 = 4 bytes, int64 indices = 8, bool = 1):

- **Resident model** (compression/runtime/model.py `DeviceModel`, what client/worker.py counts as `model_bytes`):
  the word table stays quantized (INT8: 1 byte per weight + one float32 scale per row; INT4: half a byte per weight
  + one scale per group); every other weight is dequantized once to float32; plus the vocabulary's characters. The
  encoder's weights are its own term: `resident_bytes` of its class in compression/runtime/encoders/.
- **One encode** (batch 1, T tokens): the encoder's own term as well, `encode_bytes` of its class.
- **Inference** (client/device.py `_work`, first part) over the local table of N items (evaluation candidates,
  history, negatives): the device's copy of the pooled table (NH), and inside `heads.item_table` the projected
  vectors and the squared values of `np.linalg.norm` (2ND).
- **Training** (second part) on the M = history + negatives rows, E next-item examples with C candidates each, in
  micro-batches of b rows: the table (NH, still alive under the view), the examples (E L int64 + bool, E C int64 +
  bool), the new head, its Adam moments (3P for P head weights), and in `heads.loss_and_grads` at its widest line
  (`d_v = ...`): six (M, D) arrays (v, n, d_n, and the three of the normalisation backward), the gathered context
  vectors (b L D), the gathered candidate vectors (b C D), two (M, b) scatter matrices, the user-head gradient (D^2),
  and the accumulated and previous gradients (2P) held by the caller.

A device's peak is the larger of its work and its table plus one encode (client/device.py). Not counted: Python
object headers and the small per-row vectors (a few KB; the reason the prediction runs a little low on tiny
devices), and the allocator's reuse of freed blocks, which tracemalloc does not see either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compression.runtime.encoders import encoder_class

F32, I64 = 4, 8
# numpy reuses a temporary operand's buffer for the result of an elementwise operation once it is this large
# (NPY_MIN_ELIDE_BYTES), so one (M, D) array fewer is alive in the widest line of the head's backward.
ELIDE_BYTES = 256 * 1024
# A broadcasting ufunc (a (N, D) array plus a bias, or over a (N, 1) norm) iterates through numpy's buffer:
# np.getbufsize() = 8192 elements of float32.
UFUNC_BUFFER = 8192 * F32


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
    dim: int  # the head's item/user vector width
    history_len: int
    genres: int
    bits: int
    group: int

    @classmethod
    def from_artifact(cls, config: dict, vocab: list[str], shapes: dict[str, tuple[int, ...]]) -> "ModelDims":
        s = config["student"]
        return cls(kind=s["kind"], vocab=len(vocab), vocab_chars=sum(len(t) + 1 for t in vocab),
                   embed=int(shapes["encoder.word.weight"][1]), hidden=encoder_class(s["kind"]).width(s),
                   ffn=int(s["ffn"]), heads=int(s["heads"]), layers=int(s["layers"]),
                   lstm_hidden=int(s["lstm_hidden"]), max_len=int(config["max_len"]), dim=int(config["dim"]),
                   history_len=int(config["history_len"]), genres=int(shapes.get("genre.weight", (0,))[0]),
                   bits=int(config.get("bits", 8)), group=int(config.get("int4_group", 32)))

    @property
    def head_params(self) -> int:
        """P: the shared, trained head (edgefleet/tasks/movielens/device_head.py SHARED_KEYS)."""
        d, h = self.dim, self.hidden
        return d * h + d + d + 1 + self.history_len + d * d + d + 1


@dataclass(frozen=True)
class DeviceShapes:
    """What the memory of one device's work depends on, beyond the model."""

    n_eval: int  # evaluation candidates (the held-out item and the protocol's negatives)
    n_hist: int  # the device's items plus the held-out validation item
    n_neg: int  # training negatives
    tokens: int  # longest tokenised item text in the table (after truncation)
    batch: int = 32
    batch_div: int = 1
    personal: bool = True  # a personal vector is trained (a second loss_and_grads per micro-batch)

    @property
    def n_local(self) -> int:
        return self.n_eval + self.n_hist + self.n_neg

    @property
    def examples(self) -> int:
        return max(self.n_hist - 2, 0)


def resident_bytes(m: ModelDims) -> int:
    """The loaded model: quantized word table, float32 everything else, the vocabulary's characters."""
    if m.bits == 4:
        groups = -(-m.embed // m.group)
        word = m.vocab * groups * m.group // 2 + m.vocab * groups * F32
    else:
        word = m.vocab * m.embed + m.vocab * F32
    genre = m.genres * m.hidden + m.genres
    return word + encoder_class(m.kind).resident_bytes(m) + F32 * (m.head_params + genre) + m.vocab_chars


def encode_bytes(m: ModelDims, tokens: int) -> int:
    """Transient of one batch-1 encode of a `tokens`-long text."""
    return encoder_class(m.kind).encode_bytes(m, max(min(tokens, m.max_len), 1))


def inference_bytes(m: ModelDims, d: DeviceShapes) -> int:
    return F32 * (d.n_local * m.hidden + 2 * d.n_local * m.dim) + UFUNC_BUFFER


def training_bytes(m: ModelDims, d: DeviceShapes) -> int:
    e = d.examples
    if e < 1:
        return inference_bytes(m, d)
    rows_m, c, ll, dim, p = d.n_hist + d.n_neg, 1 + d.n_neg, m.history_len, m.dim, m.head_params
    b = max(1, min(d.batch, e) // d.batch_div)
    held = (F32 * d.n_local * m.hidden  # the pooled table
            + (I64 + 1) * e * ll + (I64 + 1) * e * c + 2 * I64 * e  # examples, permutation
            + F32 * 3 * p  # new head + Adam moments
            + (I64 + 1) * b * (ll + c))  # the micro-batch's examples
    wide = 6 if F32 * rows_m * dim < ELIDE_BYTES else 5
    widest = F32 * (wide * rows_m * dim + b * ll * dim + b * c * dim + 8 * b * dim + 2 * rows_m * b + dim * dim
                    + 2 * p) + UFUNC_BUFFER
    return held + widest


def work_bytes(m: ModelDims, d: DeviceShapes, train: bool) -> int:
    """Peak of the device's work beyond the loaded model: max(capped work, table + one encode)."""
    work = training_bytes(m, d) if train else inference_bytes(m, d)
    return max(work, F32 * d.n_local * m.hidden + encode_bytes(m, d.tokens))


def predict(m: ModelDims, d: DeviceShapes, train: bool) -> int:
    """Bytes the device needs in all: the resident model plus its work's peak."""
    return resident_bytes(m) + work_bytes(m, d, train)


def min_budget(m: ModelDims, d: DeviceShapes, train: bool) -> int:
    """The smallest budget the prediction says fits (rounded up to a KiB)."""
    return int(math.ceil(predict(m, d, train) / 1024) * 1024)
