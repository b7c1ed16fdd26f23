"""Symmetric weight quantizers for the on-device model (numpy only: the device runtime loads this module).

Each quantizer turns a float array into a `QTensor`, which knows how to give the floats back:

- `keep_f32`: no quantization, for tensors that are small or sensitive (LayerNorm, biases).
- `quantize_int8(w, axis)`: one float32 scale per index along `axis` (per output row of a [out, in] weight, per
  token row of a [vocab, dim] table); q = rint(w / scale) in [-127, 127], scale = max|w| / 127.
- `quantize_int4(w, group)`: one float32 scale per `group` consecutive values of each row (last axis); q in [-7, 7],
  scale = max|w| / 7, two values per byte.

int4 packing: a row is zero-padded to a multiple of `group`, and values 2i and 2i+1 of the padded row share byte i,
value 2i in the low nibble. Each nibble holds q + 8 (offset binary, 1..15; nibble 0 never occurs), so
byte = (q[2i] + 8) | ((q[2i+1] + 8) << 4). A weight of shape (..., n) packs to (rows, padded_n / 2) uint8, where rows
is the product of the leading dimensions (1 for a 1-D array), and its scales have shape (rows, padded_n / group).

All-zero rows or groups get scale 1.0 (any scale would do: their q are all 0), so dequantize never divides by zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

INT8_MAX = 127
INT4_MAX = 7
INT4_OFFSET = 8
DTYPES: dict[str, type[np.generic]] = {"f32": np.float32, "int8": np.int8, "int4": np.uint8}


def data_shape(kind: str, shape: tuple[int, ...], group: int = 0) -> tuple[int, ...]:
    """Shape of a QTensor's `data` array: `shape` itself, except int4, which is (rows, padded_n // 2) packed bytes."""
    if kind != "int4":
        return tuple(shape)
    rows, n = _rows_cols(shape)
    return (rows, _padded(n, group) // 2)


def _rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    return math.prod(shape[:-1]), shape[-1]


def _padded(n: int, group: int) -> int:
    return -(-n // group) * group


@dataclass(frozen=True, eq=False)
class QTensor:
    """A (possibly quantized) tensor: `data` and `scale` are exactly what an artifact stores."""

    kind: str
    shape: tuple[int, ...]
    data: np.ndarray
    scale: np.ndarray | None = None
    group: int = 0

    def __post_init__(self) -> None:
        # Artifacts are rebuilt from untrusted headers, so an inconsistent tensor must fail here, not in dequantize.
        if self.kind not in DTYPES:
            raise ValueError(f"unknown tensor kind {self.kind!r}; expected one of {sorted(DTYPES)}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if len(self.shape) == 0 or min(self.shape) < 0:
            raise ValueError(f"shape must have at least one non-negative dimension, got {self.shape}")
        if self.kind == "int4" and (self.group < 2 or self.group % 2):
            raise ValueError(f"int4 group must be a positive even number, got {self.group}")
        if self.kind != "int4" and self.group != 0:
            raise ValueError(f"group is only meaningful for int4, got group={self.group} for {self.kind}")
        if self.data.dtype != DTYPES[self.kind]:
            raise ValueError(f"{self.kind} data must be {np.dtype(DTYPES[self.kind])}, got {self.data.dtype}")
        expected = data_shape(self.kind, self.shape, self.group)
        if self.data.shape != expected:
            raise ValueError(f"{self.kind} data of shape {self.data.shape} does not match {expected}")
        if self.kind == "f32":
            if self.scale is not None:
                raise ValueError("f32 tensors carry no scale")
            return
        if self.scale is None or self.scale.dtype != np.float32:
            raise ValueError(f"{self.kind} tensors need a float32 scale")
        if self.kind == "int4":
            rows, n = _rows_cols(self.shape)
            if self.scale.shape != (rows, _padded(n, self.group) // self.group):
                raise ValueError(f"int4 scale of shape {self.scale.shape} does not match {self.shape} / {self.group}")
        elif self.scale.ndim != len(self.shape) or any(s not in (1, d) for s, d in zip(self.scale.shape, self.shape)):
            raise ValueError(f"int8 scale of shape {self.scale.shape} does not broadcast to {self.shape}")

    @property
    def nbytes(self) -> int:
        """Payload bytes: data plus scales."""
        return int(self.data.nbytes) + (int(self.scale.nbytes) if self.scale is not None else 0)

    def dequantize(self) -> np.ndarray:
        """The float32 array this tensor stands for, of shape `self.shape`."""
        if self.kind == "f32":
            return self.data.copy()
        if self.kind == "int8":
            return self.data.astype(np.float32) * self.scale
        rows, n = _rows_cols(self.shape)
        q = unpack_int4(self.data).reshape(self.scale.shape + (self.group,)).astype(np.float32)
        return (q * self.scale[..., None]).reshape(rows, q.shape[1] * self.group)[:, :n].reshape(self.shape)


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Pack int values in [-7, 7] (last axis of even length) two per byte, low nibble first, offset binary."""
    q = np.asarray(q)
    if q.shape[-1] % 2:
        raise ValueError(f"int4 packing needs an even last axis, got {q.shape}")
    if q.size and (q.min() < -INT4_MAX or q.max() > INT4_MAX):
        raise ValueError(f"int4 values must lie in [-{INT4_MAX}, {INT4_MAX}]")
    nib = (q.astype(np.int16) + INT4_OFFSET).astype(np.uint8)
    return nib[..., 0::2] | (nib[..., 1::2] << 4)


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_int4`: int8 values, last axis twice as long."""
    out = np.empty(packed.shape[:-1] + (2 * packed.shape[-1],), dtype=np.int8)
    out[..., 0::2] = (packed & 0x0F).astype(np.int8) - INT4_OFFSET
    out[..., 1::2] = (packed >> 4).astype(np.int8) - INT4_OFFSET
    return out


def _symmetric_scale(absmax: np.ndarray, qmax: int) -> np.ndarray:
    return np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)


def _round_clip(w: np.ndarray, scale: np.ndarray, qmax: int) -> np.ndarray:
    # Divide by the float32 scale actually stored, so |q * scale - w| <= scale / 2 holds for what is dequantized.
    return np.clip(np.rint(w / scale.astype(np.float64)), -qmax, qmax)


def _finite_float64(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 0:
        raise ValueError("cannot quantize a 0-d array; give it at least one dimension")
    if not np.isfinite(w).all():
        raise ValueError("cannot quantize an array holding NaN or infinity")
    return w


def keep_f32(w: np.ndarray) -> QTensor:
    """Keep a tensor in float32 (a copy, so later edits to `w` do not reach the artifact)."""
    w = np.array(w, dtype=np.float32)
    return QTensor("f32", w.shape, w)


def quantize_int8(w: np.ndarray, axis: int = 0) -> QTensor:
    """Symmetric int8 with one scale per index along `axis`; the scale keeps w's ndim so it broadcasts back."""
    w = _finite_float64(w)
    axis = axis % w.ndim
    reduce = tuple(d for d in range(w.ndim) if d != axis)
    scale = _symmetric_scale(np.abs(w).max(axis=reduce, keepdims=True, initial=0.0), INT8_MAX)
    q = _round_clip(w, scale, INT8_MAX).astype(np.int8)
    return QTensor("int8", w.shape, q, scale)


def quantize_int4(w: np.ndarray, group: int = 32) -> QTensor:
    """Symmetric int4 with one scale per `group` consecutive values of each row, packed two per byte."""
    w = _finite_float64(w)
    if group < 2 or group % 2:
        raise ValueError(f"int4 group must be a positive even number, got {group}")
    rows, n = _rows_cols(w.shape)
    padded = np.zeros((rows, _padded(n, group)), dtype=np.float64)
    padded[:, :n] = w.reshape(rows, n)  # zero padding never raises a group's max, so it leaves scales unchanged
    grouped = padded.reshape(rows, padded.shape[1] // group, group)
    scale = _symmetric_scale(np.abs(grouped).max(axis=-1, initial=0.0), INT4_MAX)
    q = _round_clip(grouped, scale[..., None], INT4_MAX).astype(np.int8).reshape(padded.shape)
    return QTensor("int4", w.shape, pack_int4(q), scale, group)


QUANTIZERS: dict[str, Callable[..., QTensor]] = {"f32": keep_f32, "int8": quantize_int8, "int4": quantize_int4}
