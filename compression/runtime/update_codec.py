"""What a device sends for its shared update: float32 weights, or the INT8-quantized change against the round's model.

INT8 uses compression/runtime/quantize.py's symmetric per-row quantizer on the delta (a 1-D tensor is one row), so the
server rebuilds `base + dequantized delta`; the error per weight is at most half a quantization step of its row.

A 2-D weight of which a device changed fewer than half the rows (the item table of `sim.item_residual`: a device
trains the rows of its own items) goes as those rows and their indices, in either encoding; the server takes the
other rows from the round's model. A sparse update is the usual way to send such tables (FedMF); sent whole, the
table would be most of the bytes and most of a slow link's time.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from compression.runtime.quantize import quantize_int8

CODECS = (32, 8)


def _changed_rows(v: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Indices of the rows of a 2-D weight that differ from the base, when they are fewer than half; else None."""
    if v.ndim != 2:
        return None
    rows = np.flatnonzero((v != b).any(axis=1))
    return rows.astype(np.int32) if 2 * len(rows) < len(v) else None


def encode_update(new: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], bits: int) -> dict[str, np.ndarray]:
    if bits not in CODECS:
        raise ValueError(f"update bits must be one of {CODECS}, got {bits}")
    out = {}
    for k, v in new.items():
        v = np.asarray(v, dtype=np.float32)
        rows = _changed_rows(v, base[k])
        if rows is not None:
            out[f"{k}|rows"] = rows
            v, b = v[rows], base[k][rows]
        else:
            b = base[k]
        if bits == 32:
            out[k if rows is None else f"{k}|values"] = v
            continue
        q = quantize_int8((v - b).reshape(len(v) if v.ndim > 1 else 1, -1))
        out[f"{k}|q8"] = q.data
        out[f"{k}|scale"] = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    return out


def decode_update(arrays: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Full float32 weights from any encoding."""
    out = {}
    for k, b in base.items():
        if k in arrays:
            out[k] = np.asarray(arrays[k], dtype=np.float32)
            continue
        rows = arrays.get(f"{k}|rows")
        part = b if rows is None else b[rows]
        if f"{k}|values" in arrays:
            value = np.asarray(arrays[f"{k}|values"], dtype=np.float32)
        else:
            q, scale = arrays[f"{k}|q8"], arrays[f"{k}|scale"]
            value = (part + (q.astype(np.float32) * scale[:, None]).reshape(part.shape)).astype(np.float32)
        if rows is None:
            out[k] = value
        else:
            out[k] = b.astype(np.float32, copy=True)
            out[k][rows] = value
    return out
