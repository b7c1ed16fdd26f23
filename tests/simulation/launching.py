"""Fault tests' helpers: start a launcher and wait for its first committed rounds; kill a process tree."""

import subprocess
import time
from pathlib import Path

import psutil

from edgefleet.results import Results
from edgefleet.rundir import CHECKPOINTS


def committed(out: Path) -> int:
    return Results(out).completed_rounds() if (out / CHECKPOINTS).is_dir() else 0


def launch_until_committed(cmd: list[str], out: Path, rounds: int = 1, timeout_s: float = 300) -> subprocess.Popen:
    """Start `cmd` (a launcher writing into `out`) and return it once `rounds` rounds are committed; its output is
    piped (read it with communicate)."""
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while committed(out) < rounds:
        if launcher.poll() is not None or time.monotonic() > deadline:
            launcher.kill()
            raise AssertionError(launcher.communicate()[0].decode()[-3000:])
        time.sleep(0.2)
    return launcher


def kill_tree(root: psutil.Process) -> None:
    """SIGKILL `root` and everything below it, children first."""
    for p in [*root.children(recursive=True), root]:
        try:
            p.kill()
        except psutil.Error:
            pass
