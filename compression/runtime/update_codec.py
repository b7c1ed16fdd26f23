"""What a device sends for its shared update: float32 weights, or the INT8-quantized change against the round's model.

INT8 uses compression/runtime/quantize.py's symmetric per-row quantizer on the delta (a 1-D tensor is one row), so the
server rebuilds `base + dequantized delta`; the error per weight is at most half a quantization step of its row.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from compression.runtime.quantize import quantize_int8

CODECS = (32, 8)


def encode_update(new: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], bits: int) -> dict[str, np.ndarray]:
    if bits == 32:
        return {k: np.asarray(v, dtype=np.float32) for k, v in new.items()}
    if bits != 8:
        raise ValueError(f"update bits must be one of {CODECS}, got {bits}")
    out = {}
    for k, v in new.items():
        delta = (np.asarray(v, dtype=np.float32) - base[k]).reshape(len(v) if v.ndim > 1 else 1, -1)
        q = quantize_int8(delta)
        out[f"{k}|q8"] = q.data
        out[f"{k}|scale"] = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    return out


def decode_update(arrays: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Full float32 weights from either encoding."""
    if all(k in arrays for k in base):
        return {k: np.asarray(arrays[k], dtype=np.float32) for k in base}
    out = {}
    for k, b in base.items():
        q, scale = arrays[f"{k}|q8"], arrays[f"{k}|scale"]
        out[k] = (b + (q.astype(np.float32) * scale[:, None]).reshape(b.shape)).astype(np.float32)
    return out
