"""A device's memory budget, enforced and measured for one piece of on-device work.

The work runs in a child forked from the worker process. Only the calling thread exists in the child, so lowering
its soft RLIMIT_DATA to its current data segment plus the budget's allowance caps the device's work and nothing else:
in the worker itself, Ray's and gRPC's own threads would hit the limit too and crash it. An allocation beyond the
allowance fails with MemoryError, or kills the child when native code aborts on it (OpenBLAS, the Rust tokenizer,
abseil); either way the device is out of memory and the worker carries on. tracemalloc measures the peak in the
child: it sees every numpy and Python allocation. Allocators reuse memory they already hold without asking the
kernel, so the limit can let a small overshoot through; work whose measured peak exceeds the allowance counts as out
of memory too. Forking a worker costs a few milliseconds: its pages are shared copy-on-write.
"""

from __future__ import annotations

import array
import faulthandler
import os
import pickle
import resource
import select
import signal
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable


def data_segment_bytes() -> int:
    """VmData of this process: what RLIMIT_DATA is compared against."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmData not found in /proc/self/status")


@dataclass
class CapResult:
    peak_bytes: int = 0
    oom: bool = False
    error: str = ""
    # Host wall seconds of the call, for the round's breakdown (`edgefleet bench sim`): the traced run, the untraced
    # rerun, and the rest (fork, cap, answer, the child's exit).
    traced_s: float = 0.0
    rerun_s: float = 0.0
    overhead_s: float = 0.0


def _child(fn: Callable[[], Any], allowance: int, out: int, timed_rerun: bool) -> None:
    faulthandler.disable()  # a child killed by a failed allocation is an outcome, not a crash report
    # Clock readings: traced start and end, rerun started, rerun end. Allocated before tracing starts, and each
    # reading is taken after the peak is read, so that timing adds nothing to the peak.
    clock = array.array("d", [0.0] * 4)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = data_segment_bytes() + max(allowance, 0)
    resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    clock[0] = time.perf_counter()
    try:
        value, status = fn(), "ok"
        peak = tracemalloc.get_traced_memory()[1] - base
        clock[1] = time.perf_counter()
        if timed_rerun and peak <= allowance:
            # Tracing doubles the cost of numpy-heavy code: the timings come from a second, untraced run.
            tracemalloc.stop()
            clock[2] = 1.0
            value = fn()
            clock[3] = time.perf_counter()
    except MemoryError:
        value, status = None, "oom"
    except Exception as exc:  # reported to the parent, which records it as the device's error
        value, status = f"{type(exc).__name__}: {exc}", "error"
    if tracemalloc.is_tracing():
        peak = tracemalloc.get_traced_memory()[1] - base
    end = time.perf_counter()
    spent = ((clock[1] or end) - clock[0], ((clock[3] or end) - clock[1]) if clock[2] else 0.0)
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))  # room to pickle the answer
    payload = pickle.dumps((status, value, int(peak), spent), protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(payload)
    while view:
        view = view[os.write(out, view):]


def run_capped(fn: Callable[[], Any], allowance_bytes: int, timed_rerun: bool = False,
               timeout_s: float = 20.0) -> tuple[Any, CapResult]:
    """`fn()` under the allowance in a forked child: (its value or None, how it went). With `timed_rerun`, a
    deterministic `fn` that fits is run a second time without tracing and that run's value is returned.

    A child that has not answered after `timeout_s` is killed and counts as out of memory: glibc, short of memory in
    a thread's arena, can retry its heap growth forever instead of failing.
    """
    started = time.perf_counter()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's stack
        code = 0
        try:
            os.close(read)
            _child(fn, int(allowance_bytes), write, timed_rerun)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    chunks, deadline, timed_out = [], time.monotonic() + timeout_s, False
    with os.fdopen(read, "rb", buffering=0) as f:
        while True:
            if not select.select([f], [], [], max(0.0, deadline - time.monotonic()))[0]:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = f.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    result = CapResult(overhead_s=time.perf_counter() - started)
    if timed_out or not chunks:  # the child died before answering, or never will: an allocation it cannot survive
        result.oom, result.traced_s, result.overhead_s = True, result.overhead_s, 0.0
        if timed_out:
            result.error = f"work did not finish within {timeout_s:.0f} s under the memory cap"
        elif os.WIFSIGNALED(status):
            result.error = f"work died by {signal.Signals(os.WTERMSIG(status)).name} under the memory cap"
        return None, result
    kind, value, peak, (result.traced_s, result.rerun_s) = pickle.loads(b"".join(chunks))
    result.overhead_s = max(0.0, result.overhead_s - result.traced_s - result.rerun_s)
    result.peak_bytes = max(peak, 0)
    if kind == "error":
        result.error = value
        return None, result
    result.oom = kind == "oom" or peak > allowance_bytes
    if kind == "oom":  # a peak over the allowance leaves `error` empty: the caller says it in its own terms
        result.error = "an allocation failed under the memory cap"
    return (None if result.oom else value), result
