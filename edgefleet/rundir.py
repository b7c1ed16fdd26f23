"""Run directories: refuse to overwrite a finished run, write result files whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from edgefleet.errors import RunDirError


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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` to a hidden temporary name beside `path`, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def save_npz(path: Path, arrays: dict) -> None:
    """Arrays to `path` whole or not at all (a file object: np.savez would append ".npz" to the temporary name)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
