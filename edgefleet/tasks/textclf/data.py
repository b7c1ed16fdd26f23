"""The user's own text-classification task: training, validation and test rows, checked once.

The rows come from the sources readers.py reads. The validation set picks epochs; the test set never does, and every
reported score is on it. Each comes from, in order: its own file (`task.valid`, `task.test`), the training source's
splits (a `split` column or a saved DatasetDict), or a seeded carve of the training rows stratified by label
(`task.valid_fraction`, `task.test_fraction`, `task.seed`).

Rows a user would expect dropped are dropped with a DataWarning of one line that says which file and how many (empty
texts, a text repeated within a split, a test text that also occurs in training or validation); everything else is a
DataError of one line naming the file. Labels may be strings or integers; they become class indices in the sorted
order of the training labels (numeric order when every label is an integer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.errors import ConfigError, DataError
from edgefleet.tasks.textclf.assemble import PARTS, DataWarning, assemble, carve, separate
from edgefleet.tasks.textclf.readers import COLUMNS, SUFFIXES, Rows, is_int, read_rows

__all__ = ["COLUMNS", "SUFFIXES", "DataWarning", "Rows", "TextTask", "load_configured", "load_text_task",
           "read_rows", "report_lines"]


@dataclass(frozen=True)
class TextTask:
    labels: list[int] | list[str]  # class index -> label as the user wrote it
    train_texts: list[str]
    train_y: np.ndarray  # (n_train,) int64 class indices
    valid_texts: list[str]
    valid_y: np.ndarray
    test_texts: list[str] = field(default_factory=list)
    test_y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_users: list[str] | None = None  # each row's `user` (or `device`); None when the data names no owners
    valid_users: list[str] | None = None
    test_users: list[str] | None = None
    report: dict[str, Any] = field(default_factory=dict)  # JSON-ready: rows, sources, drops, warnings (report_lines)

    def digest(self) -> str:
        """Fingerprint of what the models train and pick epochs on (not the file bytes: the same data as CSV or
        JSONL is the same task); the test rows are left out, as no model sees them."""
        payload = [self.labels, self.train_texts, self.train_y.tolist(), self.valid_texts, self.valid_y.tolist()]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _owners(rows: Rows, index: list[int]) -> list[str] | None:
    """The split's owners, or None when its rows name none; a device cannot hold a row that has no owner."""
    users = [rows.users[i] for i in index]
    if all(u is None for u in users):
        return None
    for i, u in zip(index, users):
        if u is None:
            raise DataError(f"{rows.path}: {rows.locs[i]} has no user, where other rows have one: give every row its "
                            "owner, or none")
    return users


def load_text_task(train: str | Path, valid: str | Path | None = None, test: str | Path | None = None, *,
                   valid_fraction: float = 0.0, test_fraction: float = 0.0, seed: int = 0) -> TextTask:
    """The checked task. Classes come from the training rows, and every validation and test label must be among
    them. A fraction of 0 carves nothing: without a test source the test set is then empty (load_configured passes
    the config's fractions)."""
    a = assemble(train, valid, test)
    carve(a, valid_fraction, test_fraction, seed)
    separate(a)
    tr, tr_index = a.parts["train"]
    keys = [tr.keys[i] for i in tr_index]
    classes = sorted(set(keys), key=lambda k: (0, int(k), "") if is_int(k) else (1, 0, k))
    if len(classes) < 2:
        raise DataError(f"{tr.path}: only one class ({classes[0]!r}) in the labels: a classifier needs at least two")
    cls = {k: i for i, k in enumerate(classes)}
    for part in ("valid", "test"):
        rows, index = a.parts.get(part, (tr, []))
        for i in index:
            if rows.keys[i] not in cls:
                where = "its training rows" if rows is tr else f"the training file {tr.path}"
                raise DataError(f"{rows.path}: {rows.locs[i]}: label {rows.keys[i]!r} does not occur in {where}")
    columns: dict[str, Any] = {}
    for part in PARTS:
        rows, index = a.parts.get(part, (tr, []))
        columns[f"{part}_texts"] = [rows.texts[i] for i in index]
        columns[f"{part}_y"] = np.array([cls[rows.keys[i]] for i in index], dtype=np.int64)
        columns[f"{part}_users"] = _owners(rows, index)
    report = {"rows": {p: len(columns[f"{p}_texts"]) for p in PARTS}, "classes": len(classes),
              "source": {p: a.source.get(p, "none") for p in PARTS}, "dropped": a.dropped, "warnings": a.warnings,
              "users": len(set(columns["train_users"] or ()))}
    labels = [int(k) for k in classes] if all(is_int(k) for k in classes) else classes
    return TextTask(labels=labels, report=report, **columns)


def load_configured(cfg: Any) -> TextTask:
    """The task from the config's task section (edgefleet/config.py TaskConfig)."""
    if cfg.train is None:
        raise ConfigError("the textclf task needs task.train: a CSV, JSONL, JSON, Parquet file or saved dataset of "
                          "text,label rows")
    return load_text_task(cfg.train, cfg.valid, cfg.test, valid_fraction=cfg.valid_fraction,
                          test_fraction=cfg.test_fraction, seed=cfg.seed)


def report_lines(report: dict[str, Any]) -> list[str]:
    """What a command prints about the data: rows per split and where each came from, then every warning."""
    rows = report["rows"]
    lines = [f"{p:<5} {rows[p]:>8,} rows  from {report['source'][p]}" for p in PARTS]
    lines.append(f"{report['classes']} classes" + (f", {report['users']:,} users" if report["users"] else ""))
    return lines + [f"warning: {w}" for w in report["warnings"]]
