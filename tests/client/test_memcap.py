"""The memory cap bites the device's work in a forked child, is measured, and never touches the worker."""

import os
import resource

import numpy as np

from client.memcap import KnownPeaks, run_capped, run_traced


def failing_allocation():
    """An allocation the cap refuses, as the child sees it. (A real 64 MiB allocation under a 4 MiB cap is not
    refused when the worker's heap already holds that much free memory, as after earlier tests in the same process:
    then its traced peak makes it out of memory instead, which is not what these tests are about.)"""
    raise MemoryError


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


def test_known_peaks_run_later_work_of_the_same_key_once_in_the_worker():
    peaks = KnownPeaks()

    def work():
        return int(np.ones(2 << 20, dtype=np.uint8).sum()), os.getpid()

    (total, pid), first = peaks.run("2MiB", work, 16 << 20, timed_rerun=True)
    assert pid != os.getpid() and first.complete and not first.reused and first.traced_s > 0
    (again, pid), known = peaks.run("2MiB", work, 16 << 20, timed_rerun=True)
    assert (again, pid) == (total, os.getpid())  # the same value, computed here, once
    assert known.reused and known.peak_bytes == first.peak_bytes
    assert known.traced_s == known.overhead_s == 0 and known.rerun_s > 0


def test_a_known_peak_over_the_allowance_is_an_oom_without_running():
    peaks = KnownPeaks()
    peaks.run("2MiB", lambda: np.ones(2 << 20, dtype=np.uint8).sum(), 16 << 20)
    ran = []
    value, cap = peaks.run("2MiB", lambda: ran.append(1), 1 << 20)
    assert value is None and cap.oom and cap.reused and ran == []


def test_work_near_its_allowance_or_never_completed_goes_through_the_cap():
    peaks = KnownPeaks()
    _, first = peaks.run("2MiB", lambda: np.ones(2 << 20, dtype=np.uint8).sum(), 16 << 20)
    # Within the margin of the allowance: allocator fragmentation could fail it there, only the cap can say.
    _, near = peaks.run("2MiB", lambda: (np.ones(2 << 20, dtype=np.uint8).sum(), os.getpid()),
                        int(first.peak_bytes / (1 - KnownPeaks.margin / 2)))
    assert not near.reused and near.traced_s > 0
    # Work that failed under its cap left no peak to reuse.
    _, failed = peaks.run("64MiB", failing_allocation, 4 << 20)
    assert failed.oom and not failed.complete and repr("64MiB") not in peaks.peaks
    # No key: always capped.
    _, unkeyed = peaks.run(None, lambda: np.ones(2 << 20, dtype=np.uint8).sum(), 16 << 20)
    assert not unkeyed.reused and peaks.peaks.keys() == {repr("2MiB")}


def test_the_caps_verdict_near_the_allowance_stands_for_larger_and_smaller_allowances():
    peaks = KnownPeaks()
    work = lambda: (np.ones(2 << 20, dtype=np.uint8).sum(), os.getpid())  # noqa: E731
    _, first = peaks.run("2MiB", work, 16 << 20)
    near = int(first.peak_bytes / (1 - KnownPeaks.margin / 2))
    _, capped = peaks.run("2MiB", work, near)
    assert not capped.reused and not capped.oom and peaks.passed[repr("2MiB")] == near
    # The cap let it through under `near`: under more, the work runs here, once; under less, the cap decides again.
    (_, pid), larger = peaks.run("2MiB", work, near + 1)
    assert larger.reused and pid == os.getpid() and larger.peak_bytes == first.peak_bytes
    (_, pid), smaller = peaks.run("2MiB", work, near - 1)
    assert not smaller.reused and pid != os.getpid()
    # An allocation the cap failed: any smaller allowance fails without running, a larger one is tried.
    _, failed = peaks.run("64MiB", failing_allocation, 4 << 20)
    assert failed.oom and not failed.complete and peaks.failed[repr("64MiB")] == 4 << 20
    ran = []
    _, again = peaks.run("64MiB", lambda: ran.append(1), 3 << 20)
    assert again.oom and again.reused and again.error and ran == []
    _, more = peaks.run("64MiB", failing_allocation, 5 << 20)
    assert more.oom and not more.reused and peaks.failed[repr("64MiB")] == 5 << 20


def test_work_that_raises_under_the_cap_leaves_no_verdict():
    peaks = KnownPeaks()
    _, cap = peaks.run("k", lambda: 1 / 0, 16 << 20)
    assert "ZeroDivisionError" in cap.error and not (peaks.peaks or peaks.passed or peaks.failed)


def test_work_traced_in_the_worker_gives_what_the_capped_child_gives():
    work = lambda: int(np.ones(2 << 20, dtype=np.uint8).sum())  # noqa: E731
    value, here = run_traced(work)
    expected, child = run_capped(work, 16 << 20)
    assert value == expected and here.complete and not here.oom and not here.error
    assert abs(here.peak_bytes - child.peak_bytes) <= 0.01 * child.peak_bytes and here.peak_bytes >= 2 << 20
    assert here.traced_s > 0 and here.rerun_s == here.overhead_s == 0
    value, failed = run_traced(lambda: 1 / 0)
    assert value is None and "ZeroDivisionError" in failed.error and not failed.complete


def test_work_predicted_far_below_its_allowance_is_traced_in_the_worker_and_near_it_goes_through_the_cap():
    peaks = KnownPeaks()
    work = lambda: (int(np.ones(2 << 20, dtype=np.uint8).sum()), os.getpid())  # noqa: E731
    (_, pid), first = peaks.run("far", work, 16 << 20, timed_rerun=True, expected_bytes=2 << 20)
    assert pid == os.getpid() and first.complete and not first.reused and first.overhead_s == 0
    assert first.traced_s > 0 and first.rerun_s > 0  # timed by an untraced run, as a capped child does
    assert peaks.peaks[repr("far")] == first.peak_bytes and repr("far") not in peaks.passed  # no cap said anything
    # The prediction missed: the peak is within the margin of the allowance, and the cap decides.
    allowance = int((2 << 20) / (1 - KnownPeaks.margin / 2))
    (_, pid), near = peaks.run("near", work, allowance, timed_rerun=True, expected_bytes=1 << 20)
    assert pid != os.getpid() and near.traced_s > 0 and not near.reused
    assert peaks.passed.get(repr("near")) == allowance or near.oom
    # Predicted near the allowance: straight to the cap. No key: always the cap.
    (_, pid), _ = peaks.run("close", work, 16 << 20, expected_bytes=15 << 20)
    assert pid != os.getpid()
    (_, pid), _ = peaks.run(None, work, 16 << 20, expected_bytes=1 << 20)
    assert pid != os.getpid()


def test_work_that_raises_uncapped_is_an_error():
    peaks = KnownPeaks()
    peaks.run("k", lambda: 1, 16 << 20)
    value, cap = peaks.run("k", lambda: 1 / 0, 16 << 20)
    assert value is None and not cap.oom and "ZeroDivisionError" in cap.error


def test_the_workers_of_a_host_share_what_they_learn(tmp_path):
    """Two workers of one run: what one measured, the other reuses; what the cap decided stands for both."""
    one, other = KnownPeaks(tmp_path / "peaks"), KnownPeaks(tmp_path / "peaks")
    other._own = other._own.with_name(other._own.name.replace(".jsonl", "-b.jsonl"))  # another process's file
    work = lambda: (int(np.ones(2 << 20, dtype=np.uint8).sum()), os.getpid())  # noqa: E731
    _, first = one.run(("device", 7), work, 16 << 20, timed_rerun=True)
    (_, pid), known = other.run(("device", 7), work, 16 << 20, timed_rerun=True)
    assert known.reused and known.peak_bytes == first.peak_bytes and pid == os.getpid()
    near = int(first.peak_bytes / (1 - KnownPeaks.margin / 2))
    _, capped = other.run(("device", 7), work, near)
    assert not capped.reused and not capped.oom
    (_, pid), larger = one.run(("device", 7), work, near)  # the other worker's cap let it through under `near`
    assert larger.reused and pid == os.getpid()
    _, failed = one.run("64MiB", failing_allocation, 4 << 20)
    ran = []
    _, again = other.run("64MiB", lambda: ran.append(1), 4 << 20)
    assert failed.oom and again.oom and again.reused and ran == []
    # A half-written line is left for later; a third worker reads the whole of what both wrote.
    with open(other._own, "a") as f:
        f.write('["peak", "half')
    third = KnownPeaks(tmp_path / "peaks")
    third._own = third._own.with_name(third._own.name.replace(".jsonl", "-c.jsonl"))
    third._sync()
    assert third.peaks == one.peaks | other.peaks and third.failed[repr("64MiB")] == 4 << 20
