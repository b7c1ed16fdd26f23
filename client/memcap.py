"""A device's memory budget, enforced and measured for the duration of one piece of on-device work.

Enforcement: the soft RLIMIT_DATA of this worker process is lowered to its current data segment plus the budget's
allowance and restored afterwards, so an allocation beyond the allowance fails with MemoryError and the worker
survives (Ray's `memory` resource only schedules, it limits nothing). Measurement: tracemalloc's peak over the
work, which sees every numpy and Python allocation. Allocators reuse memory they already hold without asking the
kernel, so the hard limit can let a small overshoot through: work whose measured peak exceeds the allowance counts
as out of memory too. Native code that aborts on a failed allocation (the Rust tokenizer) must run outside a cap.
"""

from __future__ import annotations

import resource
import tracemalloc
from dataclasses import dataclass


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


class MemoryCap:
    """`with MemoryCap(allowance) as cap:` runs the block under the allowance; `cap.result` tells how it went."""

    def __init__(self, allowance_bytes: int):
        self.allowance = int(allowance_bytes)
        self.result = CapResult()

    def __enter__(self) -> "MemoryCap":
        self._tracing = tracemalloc.is_tracing()
        if not self._tracing:
            tracemalloc.start()
        self._base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        self._old = resource.getrlimit(resource.RLIMIT_DATA)
        hard = self._old[1]
        limit = data_segment_bytes() + max(self.allowance, 0)
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        resource.setrlimit(resource.RLIMIT_DATA, self._old)  # first: everything below may allocate again
        peak = tracemalloc.get_traced_memory()[1] - self._base
        if not self._tracing:
            tracemalloc.stop()
        self.result.peak_bytes = max(int(peak), 0)
        self.result.oom = (exc_type is not None and issubclass(exc_type, MemoryError)) or peak > self.allowance
        return exc_type is not None and issubclass(exc_type, MemoryError)
