"""Each task's compression job, by task name ("module:function", imported when chosen): `run(cfg, out, reporter)`
writes the run directory's compression report and artifact and returns the report."""

from __future__ import annotations

import importlib
from typing import Callable

JOBS = {
    "movielens": "compression.pipeline:run_compress",
    "textclf": "compression.textclf.job:run_textclf",
}


def compress_job(task: str) -> Callable:
    module, name = JOBS[task].split(":")
    return getattr(importlib.import_module(module), name)
