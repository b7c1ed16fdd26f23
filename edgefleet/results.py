"""A simulation's results in its run directory, written as the run goes and readable while it does.

    results/start.json                  global evaluation of the deployed model before any round
    results/devices/round-00001.parquet one row per device sampled in round 1 (its outcome, memory, latency, ...)
    results/rounds/round-00001.parquet  one row for round 1 (outcome counts, virtual round time, global metrics)
    checkpoints/round-00001.npz         the shared weights after round 1: the round's commit marker
    results/finished.json               written once the last round is committed

Each file is written to a temporary name and renamed, so a reader never sees half a file and a killed run leaves
whole rounds only. A round counts once its checkpoint exists; `discard_after` removes the parts of a round that was
interrupted before its checkpoint, so that a resumed run writes every round exactly once.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from edgefleet.rundir import CHECKPOINTS, RESULTS, atomic_write, save_npz

START = "start.json"
FINISHED = "finished.json"
# Every device sampled in a round ends with exactly one of these.
OUTCOMES = ("ok", "oom", "dropout", "straggler", "error")
# Where a round's wall time (`wall_s`) goes, one `wall_<part>_s` column each: the server's steps, the ClientApp
# calls of the busiest worker process by part, Flower's messaging around them, and the rest of the round's loop.
WALL_PARTS = {
    "configure": "server: sample the cohort, build the messages",
    "messaging": "Flower/Ray: deliver the messages and the replies",
    "encode": "device: encode its texts (the worker's encoder cache)",
    "traced": "device: its work, traced for the memory peak",
    "rerun": "device: its work untraced, for the clock (the only run when its peak is known)",
    "fork": "device: fork the capped child, read its answer, reap it",
    "client": "device: the rest of the ClientApp call",
    "aggregate": "server: decode the updates, aggregate",
    "evaluate": "server: global evaluation",
    "write": "server: write the previous round's results",
    "other": "the rest (Flower's round loop)",
}


def _name(server_round: int, suffix: str) -> str:
    return f"round-{server_round:05d}.{suffix}"


def _round_of(path: Path) -> int:
    return int(path.name.split("-")[1].split(".")[0])


class _Parts:
    """Round files read once per version (inode, size, mtime: a file is replaced whole, never edited), the most
    recently used kept up to `limit_bytes`. A reader that follows a run, as the dashboard does each time a round
    commits, then reads the new round only: read whole each time, the run's files cost a reader on the run's host
    CPU that grows with the run. Bounded in bytes, not files: a round of a 1,000-device cohort is ten times one of
    100 (functools.lru_cache counts entries only)."""

    def __init__(self, limit_bytes: int = 256 << 20):
        self.limit_bytes, self.held = limit_bytes, 0
        self.frames: OrderedDict[tuple, tuple[pd.DataFrame, int]] = OrderedDict()
        self.lock = threading.Lock()  # the dashboard's sessions read from threads of one process

    def read(self, path: Path) -> pd.DataFrame:
        st = os.stat(path)
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        with self.lock:
            if key in self.frames:
                self.frames.move_to_end(key)
                return self.frames[key][0]
        frame = pd.read_parquet(path)
        size = int(frame.memory_usage(deep=True).sum())
        with self.lock:
            if key not in self.frames:
                self.frames[key] = (frame, size)
                self.held += size
            while self.held > self.limit_bytes and len(self.frames) > 1:
                self.held -= self.frames.popitem(last=False)[1][1]
        return frame


_parts = _Parts()


class Results:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / RESULTS
        self.ckpt = self.run_dir / CHECKPOINTS

    def ensure(self) -> None:
        for d in (self.dir / "devices", self.dir / "rounds", self.ckpt):
            d.mkdir(parents=True, exist_ok=True)

    # Writing (the ServerApp).
    def write_start(self, metrics: Mapping) -> None:
        atomic_write(self.dir / START, lambda p: p.write_text(json.dumps(dict(metrics), indent=1)))

    def commit_round(self, server_round: int, devices: pd.DataFrame, round_row: Mapping,
                     weights: Mapping[str, np.ndarray], optimizer: Mapping[str, np.ndarray] | None = None) -> None:
        """The round's parts, then the checkpoint: the weights, and the server optimizer's state if any, under names
        with a "/" (server/optimizers.py), which no weight has."""
        atomic_write(self.dir / "devices" / _name(server_round, "parquet"),
                     lambda p: devices.to_parquet(p, index=False))
        atomic_write(self.dir / "rounds" / _name(server_round, "parquet"),
                lambda p: pd.DataFrame([dict(round_row)]).to_parquet(p, index=False))
        state = {**weights, **dict(optimizer or {})}
        save_npz(self.ckpt / _name(server_round, "npz"), state)

    def finish(self, info: Mapping) -> None:
        atomic_write(self.dir / FINISHED, lambda p: p.write_text(json.dumps(dict(info), indent=1)))

    def discard_after(self, server_round: int) -> None:
        """Remove what an interrupted run left of rounds after `server_round`."""
        for folder in (self.dir / "devices", self.dir / "rounds", self.ckpt):
            for path in folder.glob("round-*"):
                if _round_of(path) > server_round:
                    path.unlink()
        for tmp in self.run_dir.rglob(".*.tmp"):
            tmp.unlink()

    # Reading (the ServerApp on resume, the launcher, the dashboard).
    def completed_rounds(self) -> int:
        return max((_round_of(p) for p in self.ckpt.glob("round-*.npz")), default=0)

    def checkpoint(self, server_round: int) -> dict[str, np.ndarray]:
        with np.load(self.ckpt / _name(server_round, "npz")) as z:
            return {k: z[k] for k in z.files if "/" not in k}

    def optimizer_state(self, server_round: int) -> dict[str, np.ndarray]:
        """The server optimizer's state checkpointed with round `server_round`'s weights (empty: none)."""
        with np.load(self.ckpt / _name(server_round, "npz")) as z:
            return {k: z[k] for k in z.files if "/" in k}

    def start(self) -> dict | None:
        path = self.dir / START
        return json.loads(path.read_text()) if path.exists() else None

    def finished(self) -> dict | None:
        path = self.dir / FINISHED
        return json.loads(path.read_text()) if path.exists() else None

    def _table(self, name: str) -> pd.DataFrame:
        done = self.completed_rounds()
        parts = sorted(p for p in (self.dir / name).glob("round-*.parquet") if _round_of(p) <= done)
        # concat copies: what a caller does to the table never reaches the cached parts.
        return pd.concat([_parts.read(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()

    def rounds(self) -> pd.DataFrame:
        return self._table("rounds")

    def round_row(self, server_round: int) -> pd.Series:
        """The round row of one committed round: what a follower reads each round, where `rounds()` reads them all
        (a cost that grows with the run, and the follower shares the host with the devices it follows)."""
        return pd.read_parquet(self.dir / "rounds" / _name(server_round, "parquet")).iloc[0]

    def round_devices(self, server_round: int) -> pd.DataFrame:
        """The device rows of one committed round."""
        return pd.read_parquet(self.dir / "devices" / _name(server_round, "parquet"))

    def devices(self) -> pd.DataFrame:
        return self._table("devices")
