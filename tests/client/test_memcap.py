"""The memory cap bites for the duration of the block, is measured, and is lifted afterwards."""

import resource

import numpy as np

from client.memcap import MemoryCap


def test_allocation_beyond_the_allowance_is_an_oom_and_the_limit_is_restored():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    with MemoryCap(4 << 20) as cap:
        np.ones(64 << 20, dtype=np.uint8)  # 64 MiB under a 4 MiB allowance
        raise AssertionError("the allocation should have failed")
    assert cap.result.oom
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    np.ones(64 << 20, dtype=np.uint8)  # and it works again


def test_work_inside_the_allowance_is_measured():
    with MemoryCap(16 << 20) as cap:
        a = np.ones(2 << 20, dtype=np.uint8)
        a += 1
    assert not cap.result.oom
    assert 2 << 20 <= cap.result.peak_bytes < 3 << 20


def test_a_peak_over_the_allowance_counts_even_when_the_kernel_let_it_through():
    with MemoryCap(1 << 20) as cap:
        np.ones(2 << 20, dtype=np.uint8)  # may be served from memory the allocator already holds
    assert cap.result.oom and cap.result.peak_bytes >= 2 << 20
