"""A device's memory budget, enforced and measured for one piece of on-device work.

The work runs in a child forked from the worker process. Only the calling thread exists in the child, so lowering
its soft RLIMIT_DATA to its current data segment plus the budget's allowance caps the device's work and nothing else:
in the worker itself, Ray's and gRPC's own threads would hit the limit too and crash it. An allocation beyond the
allowance fails with MemoryError, or kills the child when native code aborts on it (OpenBLAS, the Rust tokenizer,
abseil); either way the device is out of memory and the worker carries on. tracemalloc measures the peak in the
child: it sees every numpy and Python allocation. Allocators reuse memory they already hold without asking the
kernel, so the limit can let a small overshoot through; work whose measured peak exceeds the allowance counts as out
of memory too. Forking a worker of a few hundred MB and the child's copy-on-write faults cost tens of
milliseconds a device (about 29 ms measured), more than the traced work itself.

The traced run, the untraced rerun that times it and the fork take about eight times as long as the work itself
(`edgefleet bench sim`'s breakdown), and the peak they measure is a function of the work's shapes (the task's
`DeviceSide.shapes` and the plan): `KnownPeaks` keeps the peak of work that completed and what the cap decided near
it, and a later device whose work has the same shapes and fits runs it once, untraced, in the worker. The worker
processes of one host share what they learn through a directory of the run.
"""

from __future__ import annotations

import array
import faulthandler
import json
import os
import pickle
import resource
import select
import signal
import socket
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
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
    complete: bool = False  # the traced run finished: `peak_bytes` is the whole work's peak, over the allowance or not
    reused: bool = False  # decided by earlier work of the same shapes (KnownPeaks): ran untraced and uncapped, or not


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
    result.peak_bytes, result.complete = max(peak, 0), kind == "ok"
    if kind == "error":
        result.error = value
        return None, result
    result.oom = kind == "oom" or peak > allowance_bytes
    if kind == "oom":  # a peak over the allowance leaves `error` empty: the caller says it in its own terms
        result.error = "an allocation failed under the memory cap"
    return (None if result.oom else value), result


def run_traced(fn: Callable[[], Any]) -> tuple[Any, CapResult]:
    """`fn()` traced for its peak in this process, uncapped: work predicted far below its allowance, where no cap
    would bite. It costs what the traced run costs, without the fork: in a worker of a few hundred MB, the fork and
    the copy-on-write faults of the child's first writes took twice as long as the traced work itself. Only while no
    one else traces this process (its peak would not be this work's)."""
    result = CapResult()
    started = time.perf_counter()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        value = fn()
        result.complete = True
    except MemoryError:  # the host itself is short: the device's answer is unknown, as when a capped child dies
        value, result.oom, result.error = None, True, "an allocation failed in the worker"
    except Exception as exc:
        value, result.error = None, f"{type(exc).__name__}: {exc}"
    finally:
        result.peak_bytes = max(0, tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
    result.traced_s = time.perf_counter() - started
    return value, result


def run_uncapped(fn: Callable[[], Any], peak_bytes: int) -> tuple[Any, CapResult]:
    """`fn()` in this process, untraced and uncapped: work whose peak is known and fits. Its value is what a capped
    run with `timed_rerun` returns (the same deterministic work), its time is the rerun's."""
    result = CapResult(peak_bytes=peak_bytes, complete=True, reused=True)
    started = time.perf_counter()
    try:
        value = fn()
    except MemoryError:  # the host itself is short: the device's answer is unknown, as when a capped child dies
        value, result.oom, result.error = None, True, "an allocation failed in the worker"
    except Exception as exc:
        value, result.error = None, f"{type(exc).__name__}: {exc}"
    result.rerun_s = time.perf_counter() - started
    return value, result


class KnownPeaks:
    """The measured peak of each piece of work that completed under a cap, by its key (what decides its
    allocations: the deployment, the plan, the task's shapes), and what the cap itself decided near that peak.

    Work whose key is known and whose peak is at most `1 - margin` of the allowance runs uncapped (`run_uncapped`);
    work whose known peak exceeds the allowance is out of memory without running, as a capped run's overshoot is.
    Closer to the allowance than `margin`, allocator fragmentation can fail an allocation before the traced peak
    reaches the allowance (up to ~13% short of it, measured by `edgefleet stress`), and only the real cap says which
    way such work goes. Its verdict is kept too and taken as monotone in the allowance: work the cap let through
    under some allowance runs uncapped under any larger one, work it failed under some allowance is out of memory
    under any smaller one, and only an allowance between the two goes through the cap again. (A device keeps its
    budget and its shapes from round to round: without this, the fifth of a fleet's device-rounds that sit near their
    allowance went through the cap every round.)

    With a `store` directory, the worker processes of one host share what each learns: each appends its findings to
    a file of its own there and reads the others' before it would measure work itself. A device is sent to any of
    the host's workers, so without this each one traced the same device's work once. Keys are compared by `repr`.
    """

    margin = 0.15

    def __init__(self, store: Path | None = None) -> None:
        self.peaks: dict[str, int] = {}
        self.passed: dict[str, int] = {}  # the smallest allowance under which the cap let the work complete
        self.failed: dict[str, int] = {}  # the largest allowance under which an allocation failed under the cap
        self.store, self._own, self._read = store, None, {}
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
            self._host = socket.gethostname()
            self._own = store / f"{self._host}-{os.getpid()}.jsonl"

    def _learn(self, kind: str, key: str, value: int) -> None:
        table = {"peak": self.peaks, "passed": self.passed, "failed": self.failed}[kind]
        old = table.get(key)
        table[key] = value if old is None else (min if kind == "passed" else max)(old, value)

    def _note(self, kind: str, key: str, value: int) -> None:
        self._learn(kind, key, value)
        if self._own is not None:
            with open(self._own, "a") as f:  # one short line, one write: a reader sees whole lines
                f.write(json.dumps([kind, key, value]) + "\n")

    def _sync(self) -> None:
        """What the host's other workers have written since the last look (whole lines only)."""
        for path in self.store.glob(f"{self._host}-*.jsonl"):
            if path == self._own:
                continue
            done = self._read.get(path, 0)
            with open(path, "rb") as f:
                f.seek(done)
                data = f.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                self._learn(*json.loads(line))
            self._read[path] = done + end

    def _decide(self, key: str, fn: Callable[[], Any], allowance_bytes: int) -> tuple[Any, CapResult] | None:
        """The work's outcome from what is known, or None when it has to be measured."""
        known = self.peaks.get(key)
        if known is not None and known > allowance_bytes:
            return None, CapResult(peak_bytes=known, oom=True, complete=True, reused=True)
        if known is not None and (known <= (1 - self.margin) * allowance_bytes
                                  or allowance_bytes >= self.passed.get(key, allowance_bytes + 1)):
            return run_uncapped(fn, known)
        if allowance_bytes <= self.failed.get(key, -1):
            return None, CapResult(peak_bytes=known or 0, oom=True, reused=True,
                                   error="an allocation failed under the memory cap")
        return None

    def run(self, key: Any, fn: Callable[[], Any], allowance_bytes: int, timed_rerun: bool = False,
            timeout_s: float = 20.0, expected_bytes: int | None = None) -> tuple[Any, CapResult]:
        """`fn()` as `run_capped` runs it, or uncapped or not at all when its peak is known; `key` None: always
        capped. Work never seen whose `expected_bytes` (the memory model's prediction of its peak) is at most
        `1 - margin` of the allowance is traced in this process instead (`run_traced`), and goes through the cap
        only if the peak it measured is not that far below the allowance after all."""
        if key is None:
            return run_capped(fn, allowance_bytes, timed_rerun, timeout_s)
        key = repr(key)
        decided = self._decide(key, fn, allowance_bytes)
        if decided is None and self.store is not None:  # to be measured: unless another worker has measured it
            self._sync()
            decided = self._decide(key, fn, allowance_bytes)
        if decided is not None:
            return decided
        known = self.peaks.get(key)
        spent = 0.0
        if known is None and expected_bytes is not None and not tracemalloc.is_tracing() \
                and expected_bytes <= (1 - self.margin) * allowance_bytes:
            # A first untraced run keeps what the worker allocates once (caches filled on a first call) out of the
            # traced peak, which is then the same whichever worker or device measured it first.
            _, warm = run_uncapped(fn, 0)
            if warm.error and not warm.oom:  # work that raised: an error wherever it runs
                return None, warm
            value, result = run_traced(fn)
            result.traced_s += warm.rerun_s
            if result.error and not result.oom:
                return value, result
            if result.complete and result.peak_bytes <= (1 - self.margin) * allowance_bytes:
                self._note("peak", key, result.peak_bytes)
                if timed_rerun:  # tracing slows numpy-heavy code: the clock reads a warm untraced run, as in the child
                    value, timed = run_uncapped(fn, result.peak_bytes)
                    result.rerun_s, result.error = timed.rerun_s, timed.error
                return value, result
            spent = result.traced_s  # the prediction missed: the cap decides, as it always did
        value, result = run_capped(fn, allowance_bytes, timed_rerun, timeout_s)
        result.traced_s += spent
        if result.error and not result.oom:  # work that raised says nothing about its memory
            return value, result
        if result.complete:
            self._note("peak", key, result.peak_bytes)
        if not result.oom:
            self._note("passed", key, allowance_bytes)
        elif not result.complete:
            self._note("failed", key, allowance_bytes)
        return value, result
