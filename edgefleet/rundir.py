"""Run directories: refuse to overwrite a finished run, write result files whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary file and rename, so a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
