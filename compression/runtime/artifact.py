"""The on-device model file: one self-checking binary that a loader on any platform can read.

Layout (all integers little-endian; offsets in bytes):

    0       4   magic, the ASCII bytes "EFLT"
    4       2   format version, u16 (this module writes and reads VERSION = 1)
    6       4   header length H, u32
    10      H   header: UTF-8 JSON, padded with trailing spaces so that the payload starts at a multiple of 8
    10+H    P   payload: tensor bytes; P is the header's "payload_nbytes"
    10+H+P  32  SHA-256 digest of bytes [0, 10+H+P)

Header JSON object:

    config          object   model configuration, free-form
    vocab           array    token strings; the token id is the index
    meta            object   free-form provenance (tool versions, source run, ...)
    payload_nbytes  int      P
    tensors         array    one object per tensor, in payload order:
        name          str      e.g. "layers.0.attn.q.weight"
        kind          str      "f32" | "int8" | "int4"
        shape         [int]    logical shape of the float tensor
        group         int      int4 group size (values per scale along the last axis); 0 otherwise
        offset        int      start of the data bytes, from the start of the payload
        nbytes        int      length of the data bytes
        scale_offset  int|null start of the float32 scales, from the start of the payload; null for f32
        scale_nbytes  int      length of the scale bytes; 0 for f32
        scale_shape   [int]|null shape of the scale array; null for f32

Data bytes are the C-order array: float32 for f32; int8 for int8 (value = q * scale, scale broadcast to shape, so
scale_shape has 1 on every axis but the channel axis); for int4, packed uint8 of shape (rows, padded_n / 2), two
values per byte, low nibble first, each nibble q + 8 (see compression/runtime/quantize.py). Every data and scale
block starts
at a multiple of 8 from the payload start; the gaps are zero bytes.

A reader must check, in this order: magic, version, lengths, header, then the digest, so that a file from a newer
writer is reported as such rather than as corrupt.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from compression.runtime.quantize import DTYPES, QTensor, data_shape
from edgefleet.errors import DataError

MAGIC = b"EFLT"
VERSION = 1
FIXED = struct.Struct("<4sHI")  # magic, version, header length: 10 bytes
DIGEST_NBYTES = 32
ALIGN = 8
TENSOR_KEYS = ("name", "kind", "shape", "group", "offset", "nbytes", "scale_offset", "scale_nbytes", "scale_shape")


class ArtifactError(DataError):
    """A model artifact that is missing, truncated, corrupt or of an unsupported version."""


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: what was written, plus the file size and its SHA-256 (hex) for provenance."""

    config: dict
    vocab: list[str]
    tensors: dict[str, QTensor]
    meta: dict
    nbytes: int
    sha256: str


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _json(obj: Any) -> bytes:
    # Compact and strict (no NaN), so loaders in other languages parse it and the vocab's bytes are countable.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def write_artifact(path: str | os.PathLike, config: dict, vocab: list[str], tensors: Mapping[str, QTensor],
                   meta: dict | None = None) -> int:
    """Write the artifact atomically (temp file, then rename) and return its size in bytes."""
    if not isinstance(config, dict) or not all(isinstance(tok, str) for tok in vocab):
        raise TypeError("config must be a dict and vocab a list of str")
    payload = bytearray()
    entries = []
    for name, t in tensors.items():
        offset = _aligned(len(payload))
        data = np.ascontiguousarray(t.data, dtype=np.dtype(DTYPES[t.kind]).newbyteorder("<")).tobytes()
        payload += bytes(offset - len(payload)) + data
        entry = {"name": name, "kind": t.kind, "shape": list(t.shape), "group": t.group, "offset": offset,
                 "nbytes": len(data), "scale_offset": None, "scale_nbytes": 0, "scale_shape": None}
        if t.scale is not None:
            scale_offset = _aligned(len(payload))
            scale = np.ascontiguousarray(t.scale, dtype="<f4").tobytes()
            payload += bytes(scale_offset - len(payload)) + scale
            entry.update(scale_offset=scale_offset, scale_nbytes=len(scale), scale_shape=list(t.scale.shape))
        entries.append(entry)
    header = _json({"config": config, "vocab": list(vocab), "tensors": entries, "meta": meta or {},
                    "payload_nbytes": len(payload)})
    header += b" " * (_aligned(FIXED.size + len(header)) - FIXED.size - len(header))
    body = FIXED.pack(MAGIC, VERSION, len(header)) + header + bytes(payload)
    blob = body + hashlib.sha256(body).digest()

    path = Path(path)
    # A unique name in the same directory, so os.replace is an atomic rename; "x" mode keeps the user's umask.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(blob)


def read_artifact(path: str | os.PathLike) -> Artifact:
    """Read and verify an artifact; any problem raises ArtifactError with one line naming the file."""
    path = Path(path)

    def fail(reason: str) -> ArtifactError:
        return ArtifactError(f"{path}: {reason}")

    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise fail("model artifact not found") from None
    except OSError as e:
        raise fail(f"cannot read model artifact ({e.strerror})") from None
    if len(blob) < FIXED.size:
        raise fail(f"not an EdgeFleet model artifact (only {len(blob)} bytes, the fixed header is {FIXED.size})")
    magic, version, header_nbytes = FIXED.unpack_from(blob)
    if magic != MAGIC:
        raise fail(f"not an EdgeFleet model artifact (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise fail(f"unsupported artifact format version {version} (this reader supports version {VERSION})")
    payload_start = FIXED.size + header_nbytes
    if len(blob) < payload_start + DIGEST_NBYTES:
        raise fail(f"truncated: {len(blob)} bytes, its {header_nbytes}-byte header and checksum alone need "
                   f"{payload_start + DIGEST_NBYTES}")
    digest_ok = hashlib.sha256(blob[:-DIGEST_NBYTES]).digest() == blob[-DIGEST_NBYTES:]
    try:
        header = json.loads(blob[FIXED.size:payload_start].decode("utf-8"))
        entries, payload_nbytes = header["tensors"], int(header["payload_nbytes"])
        config, vocab, meta = header["config"], header["vocab"], header["meta"]
        if not (isinstance(config, dict) and isinstance(meta, dict) and isinstance(entries, list)
                and isinstance(vocab, list) and all(isinstance(tok, str) for tok in vocab) and payload_nbytes >= 0):
            raise TypeError("a field has the wrong type")
    except (ValueError, KeyError, TypeError) as e:
        # A flipped byte in the header usually breaks the JSON too; the digest tells which problem it really is.
        reason = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise fail("corrupted: SHA-256 mismatch" if not digest_ok else f"malformed header JSON: {reason}") from None
    expected = payload_start + payload_nbytes + DIGEST_NBYTES
    if len(blob) < expected:
        raise fail(f"truncated: {len(blob)} bytes, the header describes {expected}")
    if len(blob) > expected:
        raise fail(f"{len(blob) - expected} unexpected bytes after the checksum (the header describes {expected})")
    if not digest_ok:
        raise fail("corrupted: SHA-256 mismatch")
    payload = memoryview(blob)[payload_start:payload_start + payload_nbytes]
    tensors = {}
    for i, entry in enumerate(entries):
        try:
            name, t = _tensor(entry, payload)
        except (ValueError, KeyError, TypeError) as e:
            reason = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise fail(f"tensor entry {i}: {reason}") from None
        if name in tensors:
            raise fail(f"tensor entry {i}: duplicate name {name!r}")
        tensors[name] = t
    return Artifact(config, vocab, tensors, meta, len(blob), blob[-DIGEST_NBYTES:].hex())


def _block(payload: memoryview, offset: int, nbytes: int, dtype: type[np.generic], shape: list[int]) -> np.ndarray:
    if not 0 <= offset <= offset + nbytes <= len(payload):
        raise ValueError(f"bytes [{offset}, {offset + nbytes}) fall outside the {len(payload)}-byte payload")
    stored = np.dtype(dtype).newbyteorder("<")
    if nbytes != math.prod(shape) * stored.itemsize:
        raise ValueError(f"{nbytes} bytes cannot hold a {stored.name} array of shape {tuple(shape)}")
    # Zero-copy (read-only views of the file bytes) on little-endian hosts; astype only swaps on big-endian ones.
    arr = np.frombuffer(payload, dtype=stored, count=nbytes // stored.itemsize, offset=offset)
    return arr.reshape(shape).astype(dtype, copy=False)


def _tensor(entry: dict, payload: memoryview) -> tuple[str, QTensor]:
    if not isinstance(entry, dict):
        raise TypeError("not a JSON object")
    missing = [k for k in TENSOR_KEYS if k not in entry]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    name, kind, shape, group = entry["name"], entry["kind"], tuple(entry["shape"]), int(entry["group"])
    if not isinstance(name, str) or kind not in DTYPES:
        raise ValueError(f"bad name {name!r} or kind {kind!r}")
    data_dims = list(data_shape(kind, shape, group))
    data = _block(payload, int(entry["offset"]), int(entry["nbytes"]), DTYPES[kind], data_dims)
    scale = None
    if entry["scale_offset"] is not None:
        offset, nbytes = int(entry["scale_offset"]), int(entry["scale_nbytes"])
        scale = _block(payload, offset, nbytes, np.float32, entry["scale_shape"])
    return name, QTensor(kind, shape, data, scale, group)


def size_breakdown(artifact_or_tensors: Artifact | Mapping[str, QTensor], groups: Mapping[str, str]) -> dict[str, int]:
    """Bytes per group label; tensors match their longest prefix in `groups`, else land in "other".

    Given an Artifact, adds "vocabulary" (the vocab's JSON inside the header) and "header" (the fixed bytes, the rest
    of the header, alignment padding and the checksum), so that the values add up to the file size.
    """
    is_artifact = isinstance(artifact_or_tensors, Artifact)
    tensors = artifact_or_tensors.tensors if is_artifact else artifact_or_tensors
    out = {label: 0 for label in groups.values()}
    for name, t in tensors.items():
        prefixes = [p for p in groups if name.startswith(p)]
        label = groups[max(prefixes, key=len)] if prefixes else "other"
        out[label] = out.get(label, 0) + t.nbytes
    if is_artifact:
        out["vocabulary"] = len(_json(artifact_or_tensors.vocab))
        out["header"] = artifact_or_tensors.nbytes - sum(out.values())
    return out
