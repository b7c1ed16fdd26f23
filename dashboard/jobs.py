"""The dashboard's jobs: `edgefleet` commands it started as background processes, one new run directory each.

The bookkeeping (pid, arguments, run directory, log, start time, whether a stop was asked for) is one JSON file under
the runs folder, so a reloaded page, a second browser tab or a restarted dashboard sees the same jobs. A job's state
is read from the world, never stored: its process (the pid, checked against the process's start time so that a
reused pid is never signalled) and its run directory (the report that says it finished).

A job runs `python -m edgefleet COMMAND ...` directly (no shell), in the dashboard's working directory (so
`artifacts_dir` is the CLI's cache) and in its process group: Ctrl-C on `edgefleet dashboard` stops the jobs as it
would stop the same commands in a terminal. Stop sends SIGTERM to the command, which then stops every process it
started and keeps every committed round; a stopped simulation continues with `edgefleet simulate --resume DIR`.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import psutil

from dashboard.commands import STATE_DIR, Plan
from edgefleet.errors import RunDirError
from edgefleet.results import Results
from edgefleet.rundir import COMPRESSION_REPORT, SIM_CONFIG, STRESS_REPORT, SUMMARY, write_json

JOBS = "jobs.json"
INTERRUPTED = "edgefleet: interrupted"  # how the CLI's last line begins when a signal stopped it
DONE = {"simulate": SUMMARY, "stress": STRESS_REPORT, "compress": COMPRESSION_REPORT}  # the file a finished job wrote


@dataclass(frozen=True)
class Job:
    """One command the dashboard started (and, for a simulation, resumed)."""

    name: str  # the run directory's name under the runs folder: one job per run directory
    command: str
    argv: list[str]
    run_dir: str
    log: str
    pid: int
    pid_started: float  # the process's own start time (psutil): tells this process from a later one with its pid
    started: float
    rounds: int | None = None  # simulate: the rounds it was started with
    stop_asked: bool = False


def _dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


@contextmanager
def _locked(root: Path) -> Iterator[list[Job]]:
    """The jobs file, read and written back under a lock (two tabs may start or stop jobs at once)."""
    folder = _dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jobs = read(root)
        yield jobs
        write_json(folder / JOBS, {"jobs": [asdict(j) for j in jobs]})


def read(root: Path) -> list[Job]:
    """The jobs recorded under `root`, newest first; none when there is no (readable) jobs file."""
    try:
        items = json.loads((_dir(root) / JOBS).read_text())["jobs"]
        return sorted((Job(**j) for j in items), key=lambda j: j.started, reverse=True)
    except (OSError, ValueError, KeyError, TypeError):
        return []


# A job's output is a file, read on the page in a box that wraps long lines itself: unbuffered, and 240 columns
# wide (rich, without a terminal, would break each progress line at 80).
JOB_ENV = {"PYTHONUNBUFFERED": "1", "COLUMNS": "240"}


def _spawn(argv: list[str], log: Path) -> tuple[int, float]:
    """Start `argv` with its output appended to `log`; (pid, the process's start time).

    posix_spawn, not Popen: the dashboard keeps only the pid (a Popen object dropped while its child runs warns, and
    every later Popen in the process would reap the child behind the dashboard's back)."""
    with open(log, "a") as out:
        pid = os.posix_spawn(argv[0], argv, {**os.environ, **JOB_ENV}, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)],
            setsigdef=(signal.SIGINT, signal.SIGTERM))  # a Ctrl-C or a stop reaches it even if ignored here
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:  # it has already ended: its log says why
        return pid, 0.0


def start(root: Path, plan: Plan) -> Job:
    """Start `edgefleet PLAN.command ... --out ROOT/NAME` in the background and record it."""
    root = Path(root)
    run_dir = (root / plan.name).resolve()
    log = _dir(root) / f"{plan.name}.log"
    argv = [sys.executable, "-m", "edgefleet", plan.command, *plan.args, "--out", str(run_dir)]
    with _locked(root) as jobs:
        if run_dir.exists() or any(j.name == plan.name and alive(j) for j in jobs):
            raise RunDirError(f"{run_dir} exists: choose a new run name")
        log.write_text("")
        pid, pid_started = _spawn(argv, log)
        rounds = plan.config.sim.rounds if plan.command == "simulate" else None
        job = Job(plan.name, plan.command, argv, str(run_dir), str(log), pid, pid_started, time.time(), rounds)
        jobs[:] = [job, *(j for j in jobs if j.name != plan.name)]
    return job


def alive(job: Job) -> bool:
    """Whether the job's own process is still running (a zombie has ended; this dashboard reaps its children)."""
    try:
        os.waitpid(job.pid, os.WNOHANG)
    except ChildProcessError:  # not this process's child (another dashboard started it), or reaped already
        pass
    try:
        p = psutil.Process(job.pid)
        return abs(p.create_time() - job.pid_started) < 1 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def state(job: Job) -> str:
    """running, stopping, finished, stopped (by Stop, or by a Ctrl-C that reached it) or failed."""
    if alive(job):
        return "stopping" if job.stop_asked else "running"
    if (Path(job.run_dir) / DONE[job.command]).exists():
        return "finished"
    return "stopped" if job.stop_asked or INTERRUPTED in log_tail(job, 3) else "failed"


def resumable(job: Job) -> bool:
    """A simulation that ended before its last round, with its config written: `simulate --resume` continues it."""
    run = Path(job.run_dir)
    return job.command == "simulate" and state(job) in ("stopped", "failed") and (run / SIM_CONFIG).exists() \
        and not (run / SUMMARY).exists()


def stop(root: Path, name: str) -> Job:
    """SIGTERM to the job's command (once): it stops what it started and keeps its committed rounds."""
    with _locked(root) as jobs:
        i, job = next((i, j) for i, j in enumerate(jobs) if j.name == name)
        if alive(job) and not job.stop_asked:
            os.kill(job.pid, signal.SIGTERM)
            jobs[i] = job = replace(job, stop_asked=True)
    return job


def resume(root: Path, name: str) -> Job:
    """`edgefleet simulate --resume DIR` for a stopped simulation, appending to its log."""
    with _locked(root) as jobs:
        i, job = next((i, j) for i, j in enumerate(jobs) if j.name == name)
        if not resumable(job):
            return job
        argv = [sys.executable, "-m", "edgefleet", "simulate", "--resume", job.run_dir]
        with open(job.log, "a") as out:
            out.write(f"\n--- resumed from the dashboard at {time.strftime('%H:%M:%S')} ---\n")
        pid, pid_started = _spawn(argv, Path(job.log))
        jobs[i] = job = replace(job, argv=argv, pid=pid, pid_started=pid_started, stop_asked=False)
    return job


def rounds_done(job: Job) -> int:
    return Results(Path(job.run_dir)).completed_rounds() if job.command == "simulate" else 0


def log_tail(job: Job, lines: int = 12) -> str:
    try:
        with open(job.log, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
