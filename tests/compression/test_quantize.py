"""Quantizers: hand-computed values, error bounds, lossless int4 packing, odd shapes and payload sizes."""

import numpy as np
import pytest

from compression.runtime.quantize import (
    QUANTIZERS,
    QTensor,
    keep_f32,
    pack_int4,
    quantize_int4,
    quantize_int8,
    unpack_int4,
)

# Float32 dequantization rounds the product q * scale once; the bound scale / 2 holds up to that rounding.
SLACK = 1 + 1e-6


def test_int8_hand_computed():
    q = quantize_int8(np.array([[1.0, -2.0, 0.5]]))
    assert q.kind == "int8" and q.shape == (1, 3) and q.group == 0
    np.testing.assert_array_equal(q.data, np.array([[64, -127, 32]], dtype=np.int8))
    assert q.scale.dtype == np.float32 and q.scale.shape == (1, 1)
    assert q.scale[0, 0] == np.float32(2.0 / 127)
    np.testing.assert_allclose(q.dequantize(), [[64 * 2 / 127, -2.0, 32 * 2 / 127]], rtol=1e-6)


def test_int4_hand_computed():
    # One group of 4: scale 0.7 / 7 = 0.1, q = [7, -3, 0, 1]; nibbles 15, 5, 8, 9 -> bytes 0x5F, 0x98.
    q = quantize_int4(np.array([0.7, -0.3, 0.0, 0.1]), group=4)
    assert q.shape == (4,) and q.data.shape == (1, 2) and q.scale.shape == (1, 1)
    np.testing.assert_array_equal(q.data, np.array([[0x5F, 0x98]], dtype=np.uint8))
    assert q.scale[0, 0] == np.float32(0.1)
    np.testing.assert_allclose(q.dequantize(), [0.7, -0.3, 0.0, 0.1], atol=1e-6)


def test_int8_error_at_most_half_a_step_per_channel():
    w = np.random.default_rng(0).normal(size=(16, 48)) * np.linspace(0.01, 5.0, 16)[:, None]
    q = quantize_int8(w)
    assert q.scale.shape == (16, 1)
    np.testing.assert_allclose(q.scale[:, 0], np.abs(w).max(axis=1) / 127, rtol=1e-6)
    err = np.abs(q.dequantize() - w).max(axis=1)
    assert (err <= q.scale[:, 0] / 2 * SLACK).all()
    assert np.abs(q.data).max() == 127


def test_int8_axis_one_gives_one_scale_per_column():
    w = np.random.default_rng(1).normal(size=(5, 7))
    q = quantize_int8(w, axis=1)
    assert q.scale.shape == (1, 7)
    assert (np.abs(q.dequantize() - w).max(axis=0) <= q.scale[0] / 2 * SLACK).all()


def test_int4_error_at_most_half_a_step_per_group():
    w = np.random.default_rng(2).normal(size=(8, 64))
    q = quantize_int4(w, group=32)
    assert q.scale.shape == (8, 2)
    err = np.abs(q.dequantize() - w).reshape(8, 2, 32).max(axis=-1)
    assert (err <= q.scale / 2 * SLACK).all()


def test_int4_packing_is_lossless():
    ints = np.random.default_rng(3).integers(-7, 8, size=(5, 40)).astype(np.int8)
    packed = pack_int4(ints)
    assert packed.dtype == np.uint8 and packed.shape == (5, 20)
    np.testing.assert_array_equal(unpack_int4(packed), ints)
    with pytest.raises(ValueError, match="int4 values"):
        pack_int4(np.array([8, 0]))


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_zero_rows_dequantize_to_zeros(kind):
    w = np.zeros((3, 40))
    w[1] = np.linspace(-1, 1, 40)
    q = QUANTIZERS[kind](w)
    assert np.isfinite(q.scale).all() and (q.scale > 0).all()
    out = q.dequantize()
    assert (out[0] == 0).all() and (out[2] == 0).all()


@pytest.mark.parametrize("shape", [(3, 37), (37,), (1,), (2, 3, 5)])
def test_int4_odd_lengths_round_trip_to_the_same_shape(shape):
    w = np.random.default_rng(4).normal(size=shape)
    q = quantize_int4(w, group=32)
    out = q.dequantize()
    assert out.shape == shape and out.dtype == np.float32
    rows = int(np.prod(shape[:-1]))
    assert q.scale.shape == (rows, -(-shape[-1] // 32))
    scale_per_value = np.repeat(q.scale, 32, axis=1)[:, : shape[-1]].reshape(shape)
    assert (np.abs(out - w) <= scale_per_value / 2 * SLACK).all()


def test_payload_sizes():
    w = np.random.default_rng(5).normal(size=(64, 256)).astype(np.float32)
    f32, i8, i4 = keep_f32(w), quantize_int8(w), quantize_int4(w, group=32)
    assert f32.nbytes == w.nbytes == 65536
    assert i8.nbytes == 65536 // 4 + 64 * 4
    assert i4.nbytes == 65536 // 8 + 64 * 8 * 4


def test_keep_f32_is_exact_and_a_copy():
    w = np.array([[1.5, -2.25], [3.0, 0.0]], dtype=np.float32)
    q = keep_f32(w)
    w[0, 0] = 99.0
    assert q.kind == "f32" and q.scale is None and q.nbytes == 16
    np.testing.assert_array_equal(q.dequantize(), [[1.5, -2.25], [3.0, 0.0]])


def test_registry_names_match_kinds():
    w = np.ones((2, 4))
    assert {name: QUANTIZERS[name](w).kind for name in QUANTIZERS} == {"f32": "f32", "int8": "int8", "int4": "int4"}


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.array(3.0)])
def test_rejects_non_finite_and_scalars(bad):
    with pytest.raises(ValueError):
        quantize_int8(bad)


def test_qtensor_rejects_inconsistent_parts():
    with pytest.raises(ValueError, match="does not match"):
        QTensor("int8", (2, 3), np.zeros((3, 2), np.int8), np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match="float32 scale"):
        QTensor("int8", (2, 3), np.zeros((2, 3), np.int8))
    with pytest.raises(ValueError, match="group"):
        quantize_int4(np.ones(4), group=3)
