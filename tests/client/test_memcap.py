"""The memory cap bites the device's work in a forked child, is measured, and never touches the worker."""

import os
import resource

import numpy as np

from client.memcap import run_capped


def test_allocation_beyond_the_allowance_is_an_oom_and_the_worker_is_untouched():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    value, cap = run_capped(lambda: np.ones(64 << 20, dtype=np.uint8).sum(), 4 << 20)  # 64 MiB under 4 MiB
    assert value is None and cap.oom
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    assert np.ones(64 << 20, dtype=np.uint8).sum() == 64 << 20  # the caller can still allocate


def test_work_inside_the_allowance_returns_its_value_and_peak():
    def work():
        a = np.ones(2 << 20, dtype=np.uint8)
        return int(a.sum()), os.getpid()

    (total, pid), cap = run_capped(work, 16 << 20)
    assert not cap.oom and total == 2 << 20
    assert pid != os.getpid()  # it ran in a child
    assert 2 << 20 <= cap.peak_bytes < 3 << 20


def test_a_peak_over_the_allowance_counts_even_when_the_kernel_let_it_through():
    # Whether the kernel refuses the 2 MiB or the allocator serves it from memory it already holds, it is an oom.
    value, cap = run_capped(lambda: np.ones(2 << 20, dtype=np.uint8).sum(), 1 << 20)
    assert value is None and cap.oom


def test_a_child_killed_by_native_code_is_an_oom():
    value, cap = run_capped(lambda: os.abort(), 1 << 20)
    assert value is None and cap.oom and "SIGABRT" in cap.error


def test_an_exception_is_reported_not_raised():
    def boom():
        raise ValueError("bad input")

    value, cap = run_capped(boom, 1 << 20)
    assert value is None and not cap.oom and cap.error == "ValueError: bad input"


def test_a_child_that_never_answers_is_killed_and_counted_out_of_memory():
    import time

    value, cap = run_capped(lambda: time.sleep(30), 1 << 20, timeout_s=0.5)
    assert value is None and cap.oom and "did not finish within" in cap.error


def test_the_call_says_where_its_wall_time_went():
    work = lambda: np.ones(1 << 20, dtype=np.uint8).sum()  # noqa: E731
    _, timed = run_capped(work, 16 << 20, timed_rerun=True)
    _, once = run_capped(work, 16 << 20)
    assert min(timed.traced_s, timed.rerun_s, timed.overhead_s) >= 0 and timed.rerun_s > 0
    assert once.traced_s > 0 and once.rerun_s == 0 and once.overhead_s >= 0
