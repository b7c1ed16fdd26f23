"""The artifact format: exact round trip, one-line errors for every kind of damage, size breakdown, atomic writes."""

import hashlib
import json
import struct

import numpy as np
import pytest

from compression.runtime import artifact as artifact_module
from compression.runtime.artifact import VERSION, ArtifactError, read_artifact, size_breakdown, write_artifact
from compression.runtime.quantize import keep_f32, quantize_int4, quantize_int8
from edgefleet.errors import DataError

CONFIG = {"dim": 8, "layers": 1, "name": "tiny"}
VOCAB = ["[PAD]", "[UNK]", "toy", "story", "é"]
GROUPS = {"embeddings.": "embeddings", "layers.": "encoder", "head.": "heads"}


def tiny_tensors() -> dict:
    rng = np.random.default_rng(0)
    return {
        "embeddings.word": quantize_int8(rng.normal(size=(5, 8))),
        "layers.0.attn.weight": quantize_int4(rng.normal(size=(8, 37)), group=32),
        "layers.0.norm.weight": keep_f32(rng.normal(size=(8,))),
        "head.bias": keep_f32(rng.normal(size=(3,))),
        "head.proj": quantize_int4(rng.normal(size=(11,)), group=4),
    }


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "model.eflt"
    write_artifact(path, CONFIG, VOCAB, tiny_tensors(), meta={"source": "unit"})
    return path


def header_len(path) -> int:
    return struct.unpack_from("<I", path.read_bytes(), 6)[0]


def rewrite_header(path, mutate) -> None:
    """Edit the header JSON and recompute the checksum, to build files that are consistent but wrong."""
    blob = path.read_bytes()
    n = header_len(path)
    header = json.loads(blob[10 : 10 + n])
    mutate(header)
    raw = json.dumps(header).encode()
    body = blob[:6] + struct.pack("<I", len(raw)) + raw + blob[10 + n : -32]
    path.write_bytes(body + hashlib.sha256(body).digest())


def read_error(path) -> str:
    with pytest.raises(ArtifactError) as info:
        read_artifact(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_round_trip_is_exact(good):
    tensors = tiny_tensors()
    art = read_artifact(good)
    assert art.config == CONFIG and art.vocab == VOCAB and art.meta == {"source": "unit"}
    assert list(art.tensors) == list(tensors)
    for name, want in tensors.items():
        got = art.tensors[name]
        assert (got.kind, got.shape, got.group) == (want.kind, want.shape, want.group)
        assert got.data.dtype == want.data.dtype
        np.testing.assert_array_equal(got.data, want.data)
        if want.scale is None:
            assert got.scale is None
        else:
            assert got.scale.dtype == np.float32
            np.testing.assert_array_equal(got.scale, want.scale)
        np.testing.assert_array_equal(got.dequantize(), want.dequantize())
    blob = good.read_bytes()
    assert art.nbytes == len(blob)
    assert art.sha256 == blob[-32:].hex() == hashlib.sha256(blob[:-32]).hexdigest()


def test_fixed_layout_and_alignment(good):
    blob = good.read_bytes()
    assert blob[:4] == b"EFLT" and struct.unpack_from("<H", blob, 4)[0] == VERSION == 1
    n = header_len(good)
    header = json.loads(blob[10 : 10 + n])
    assert (10 + n) % 8 == 0
    assert len(blob) == 10 + n + header["payload_nbytes"] + 32
    for entry in header["tensors"]:
        assert entry["offset"] % 8 == 0 and (entry["scale_offset"] or 0) % 8 == 0
    f32 = next(e for e in header["tensors"] if e["name"] == "head.bias")
    assert (f32["scale_offset"], f32["scale_nbytes"], f32["scale_shape"]) == (None, 0, None)


def test_artifact_error_is_a_data_error():
    assert issubclass(ArtifactError, DataError)


def test_missing_file(tmp_path):
    assert "not found" in read_error(tmp_path / "nope.eflt")


def test_shorter_than_fixed_header(good):
    good.write_bytes(good.read_bytes()[:7])
    assert "not an EdgeFleet model artifact" in read_error(good)


def test_wrong_magic(good):
    good.write_bytes(b"GGUF" + good.read_bytes()[4:])
    assert "not an EdgeFleet model artifact" in read_error(good)


def test_unsupported_version_is_reported_before_the_checksum(good):
    blob = bytearray(good.read_bytes())
    struct.pack_into("<H", blob, 4, 7)
    good.write_bytes(bytes(blob))
    message = read_error(good)
    assert "version 7" in message and f"supports version {VERSION}" in message and "SHA-256" not in message


@pytest.mark.parametrize("cut", [1, 33, 200])
def test_truncated_payload(good, cut):
    good.write_bytes(good.read_bytes()[:-cut])
    assert "truncated" in read_error(good)


def test_truncated_inside_header(good):
    good.write_bytes(good.read_bytes()[:20])
    assert "truncated" in read_error(good)


def test_flipped_payload_byte(good):
    blob = bytearray(good.read_bytes())
    blob[10 + header_len(good) + 3] ^= 0x01
    good.write_bytes(bytes(blob))
    assert "corrupted: SHA-256 mismatch" in read_error(good)


def test_flipped_header_byte_is_reported_as_corruption(good):
    blob = bytearray(good.read_bytes())
    blob[11] ^= 0xFF  # breaks the JSON, but the digest is what tells the user the file is damaged
    good.write_bytes(bytes(blob))
    assert "corrupted: SHA-256 mismatch" in read_error(good)


def test_malformed_header_json(good):
    blob = good.read_bytes()
    raw = b'{"config": {'
    body = b"EFLT" + struct.pack("<HI", VERSION, len(raw)) + raw + blob[10 + header_len(good) : -32]
    good.write_bytes(body + hashlib.sha256(body).digest())
    assert "malformed header JSON" in read_error(good)


def test_header_missing_key(good):
    rewrite_header(good, lambda h: h.pop("vocab"))
    message = read_error(good)
    assert "malformed header JSON" in message and "vocab" in message


def test_tensor_offset_outside_payload(good):
    def push_out(header):
        header["tensors"][1]["offset"] = header["payload_nbytes"] - 4

    rewrite_header(good, push_out)
    message = read_error(good)
    assert "tensor entry 1" in message and "outside" in message and "payload" in message


def test_tensor_size_inconsistent_with_shape(good):
    def grow(header):
        header["tensors"][0]["shape"] = [6, 8]

    rewrite_header(good, grow)
    assert "cannot hold" in read_error(good)


def test_size_breakdown_adds_up_to_the_file_size(good):
    tensors = tiny_tensors()
    sizes = size_breakdown(read_artifact(good), GROUPS)
    assert set(sizes) == {"embeddings", "encoder", "heads", "vocabulary", "header"}
    assert sizes["embeddings"] == 5 * 8 + 5 * 4
    assert sizes["encoder"] == 8 * 32 + 8 * 2 * 4 + 8 * 4  # int4 (8, 37) in groups of 32, plus the f32 norm
    assert sizes["heads"] == tensors["head.bias"].nbytes + tensors["head.proj"].nbytes == 12 + 6 + 3 * 4
    assert sizes["vocabulary"] == len('["[PAD]","[UNK]","toy","story","é"]'.encode())
    assert sum(sizes.values()) == good.stat().st_size
    assert sizes["header"] > 10 + 32


def test_size_breakdown_of_bare_tensors_uses_the_longest_prefix():
    tensors = tiny_tensors()
    sizes = size_breakdown(tensors, {"layers.": "encoder", "layers.0.norm": "norms", "embeddings.": "emb"})
    assert sizes == {"encoder": tensors["layers.0.attn.weight"].nbytes, "norms": 32, "emb": 60,
                     "other": tensors["head.bias"].nbytes + tensors["head.proj"].nbytes}


def test_overwrite_leaves_no_temp_files(good):
    size = write_artifact(good, {"dim": 4}, ["a"], {"head.bias": keep_f32(np.ones(2))})
    assert [p.name for p in good.parent.iterdir()] == [good.name]
    assert good.stat().st_size == size
    assert read_artifact(good).config == {"dim": 4}


def test_failed_replace_keeps_the_old_file_and_no_temp(good, monkeypatch):
    before = good.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(artifact_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(good, {"dim": 4}, ["a"], {"head.bias": keep_f32(np.ones(2))})
    assert [p.name for p in good.parent.iterdir()] == [good.name]
    assert good.read_bytes() == before
