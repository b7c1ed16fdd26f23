"""Update encodings: float32 as is, INT8 deltas within half a quantization step per weight."""

import numpy as np

from compression.runtime.update_codec import decode_update, encode_update


def test_float_round_trip_is_exact():
    base = {"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)}
    new = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.float32)}
    out = decode_update(encode_update(new, base, 32), base)
    for k in base:
        np.testing.assert_array_equal(out[k], new[k])


def test_int8_delta_error_is_half_a_step_and_bytes_shrink():
    rng = np.random.default_rng(0)
    base = {"a": rng.normal(size=(64, 32)).astype(np.float32), "b": rng.normal(size=32).astype(np.float32)}
    new = {k: v + 0.01 * rng.normal(size=v.shape).astype(np.float32) for k, v in base.items()}
    sent = encode_update(new, base, 8)
    out = decode_update(sent, base)
    for k in base:
        delta = (new[k] - base[k]).reshape(len(new[k]) if new[k].ndim > 1 else 1, -1)
        step = np.abs(delta).max(axis=1, keepdims=True) / 127
        assert (np.abs(out[k] - new[k]).reshape(delta.shape) <= step / 2 + 1e-7).all()
    assert sum(v.nbytes for v in sent.values()) < sum(v.nbytes for v in new.values()) / 3


def test_a_table_with_few_changed_rows_goes_as_those_rows_and_comes_back_whole():
    rng = np.random.default_rng(1)
    base = {"table": rng.normal(size=(100, 8)).astype(np.float32), "head": rng.normal(size=(4, 8)).astype(np.float32)}
    moved = np.array([3, 17, 64])
    new = {k: v.copy() for k, v in base.items()}
    new["table"][moved] += 0.05 * rng.normal(size=(3, 8)).astype(np.float32)
    new["head"] += 0.05  # every row changed: sent whole
    sent = encode_update(new, base, 32)
    assert set(sent) == {"table|rows", "table|values", "head"}
    np.testing.assert_array_equal(sent["table|rows"], moved)
    out = decode_update(sent, base)
    for k in base:
        np.testing.assert_array_equal(out[k], new[k])
    assert sum(v.nbytes for v in sent.values()) < new["table"].nbytes / 10
    # INT8: the same rows, each within half a step of its row's quantizer; the others exactly the base's.
    out8 = decode_update(encode_update(new, base, 8), base)
    np.testing.assert_array_equal(np.delete(out8["table"], moved, axis=0), np.delete(base["table"], moved, axis=0))
    step = np.abs(new["table"][moved] - base["table"][moved]).max(axis=1, keepdims=True) / 127
    assert (np.abs(out8["table"][moved] - new["table"][moved]) <= step / 2 + 1e-7).all()


def test_a_table_that_changed_in_half_its_rows_or_more_goes_whole():
    base = {"table": np.zeros((4, 3), np.float32)}
    new = {"table": np.zeros((4, 3), np.float32)}
    new["table"][:2] = 1.0
    assert set(encode_update(new, base, 32)) == {"table"}
