"""Run directories: refuse to overwrite a finished run, write result files whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edgefleet.errors import RunDirError

# Every file and folder name of a run directory, defined once. Jobs write them; the dashboard reads them.
MODEL = "model.eflt"  # the deployed artifact
TASK = "task.json"  # the task's name and what each of its metrics is called (edgefleet/tasks)
TEACHER_REPORT = "teacher_report.json"
COMPRESSION_REPORT = "compression_report.json"
STRESS_REPORT = "stress_report.json"
PRIVACY_REPORT = "privacy_report.json"
BENCH_SIM = "bench_sim.json"
BENCH_SCALE = "bench_scale.json"
TASK_BENCH = "bench_task.json"
FEDERATION_REPORT = "federation_report.json"
# In a run of `bench federation`: the deployed model's figures and the oracles', drawn as reference lines.
YARDSTICK = "yardstick.json"
SUMMARY = "summary.json"
SIM_CONFIG = "sim_config.json"
COMPRESS_DIR = "compress"  # where `simulate` compresses a model when it is given none
FLEET_DIR = "fleet"  # fleet/data.npz, fleet/items.json, fleet/population.parquet
FLEET_DATA = "data.npz"
ITEMS = "items.json"
POPULATION = "population.parquet"
RESULTS = "results"
CHECKPOINTS = "checkpoints"
STATE_DIR = "device_state"  # each device's personal state, <device>.npz
PEAKS_DIR = "peaks"  # what each worker process learned of its devices' memory peaks, <host>-<pid>.jsonl
# With sim.device_data "own" (Flower's Deployment Engine): devices/<device>/ is that device's own storage, what its
# SuperNode reads and writes and nothing else: fleet/ (its shard, and shard.json naming the device), the model and
# config the server's first message brought, its device_state/.
DEVICES_DIR = "devices"
SHARD = "shard.json"
VARIANTS_DIR = "variants"  # the adaptive policy's deployments and variants.json
VARIANTS_FILE = "variants.json"
LOGS = "logs"
PIDS = "pids.json"  # logs/pids.json: every process a simulation started
FLWR_HOME = "flwr"
TMP = "tmp"
APP = "app"
# Folders inside a run directory that hold no run of their own (the dashboard does not look for runs there).
INTERNAL_DIRS = (FLEET_DIR, FLWR_HOME, TMP, LOGS, APP, STATE_DIR, DEVICES_DIR, PEAKS_DIR)


def prepare(out: Path, report_name: str) -> Path:
    """Create `out` for a new run; a directory that already holds `report_name` is a finished run: refuse."""
    out = Path(out)
    if (out / report_name).exists():
        raise RunDirError(f"{out / report_name} exists: that run is finished; choose a new --out directory")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {out}: {exc.strerror}") from None
    return out


@contextmanager
def removed_on_failure(out: Path, existed: bool) -> Iterator[Path]:
    """Run the block that fills a new run directory; if it fails, remove the directory, unless it held files
    before (`existed`): a failed command leaves no half-made run behind and never deletes what it did not make."""
    try:
        yield out
    except BaseException:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` to a hidden temporary name beside `path`, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def share_file(src: Path, dst: Path) -> None:
    """`dst` with `src`'s content for readers only: a hard link where the filesystem allows, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def save_npz(path: Path, arrays: dict) -> None:
    """Arrays to `path` whole or not at all (a file object: np.savez would append ".npz" to the temporary name)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
