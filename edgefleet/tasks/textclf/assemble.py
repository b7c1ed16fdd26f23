"""How the task's splits are put together from its sources: where each split's rows come from, the rows dropped on
the way (each drop a DataWarning of one line, and an entry of the report), and the carve of missing splits."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from edgefleet.errors import ConfigError, DataError
from edgefleet.tasks.textclf.readers import Rows, read_rows
from edgefleet.tasks.textclf.splits import stratified_carve

PARTS = ("train", "valid", "test")


class DataWarning(UserWarning):
    """Rows dropped, or data worth a look; each one is also a line of `TextTask.report["warnings"]`."""


def _norm(text: str) -> str:
    """What makes two texts the same one: case and runs of white space do not count."""
    return " ".join(text.split()).casefold()


class Assembly:
    """The rows each split takes (a source and indices into it), and what was dropped on the way."""

    def __init__(self) -> None:
        self.parts: dict[str, tuple[Rows, list[int]]] = {}
        self.source: dict[str, str] = {}
        self.dropped: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def warn(self, line: str) -> None:
        self.warnings.append(line)
        warnings.warn(line, DataWarning, stacklevel=3)

    def drop(self, rows: Rows, part: str, reason: str, count: int, line: str) -> None:
        if count:
            self.dropped.append({"file": str(rows.path), "split": part, "reason": reason, "rows": count})
            self.warn(line)

    def read(self, path: str | Path, part: str) -> Rows:
        rows = read_rows(path)
        n = rows.dropped_empty
        self.drop(rows, part, "empty text", n, f"{rows.path}: dropped {n} row{'s' * (n != 1)} with an empty text")
        if rows.skipped_splits:
            self.warn(f"{rows.path}: skipped its split{'s' * (len(rows.skipped_splits) > 1)} "
                      f"{', '.join(rows.skipped_splits)} (not train, validation or test)")
        return rows

    def dedup(self, part: str) -> None:
        """Keep the first row of each text in the split; count the later ones, and those of them with another label."""
        rows, index = self.parts[part]
        first: dict[str, str] = {}
        kept, clash = [], 0
        for i in index:
            key = _norm(rows.texts[i])
            if key in first:
                clash += first[key] != rows.keys[i]
                continue
            first[key] = rows.keys[i]
            kept.append(i)
        n = len(index) - len(kept)
        also = f" ({clash} with another label than the first's, which is kept)" if clash else ""
        self.drop(rows, part, "duplicate text", n, f"{rows.path}: dropped {n} {part} row{'s' * (n != 1)} repeating an "
                                                    f"earlier text{also}")
        self.parts[part] = (rows, kept)

    def texts(self, part: str) -> set[str]:
        rows, index = self.parts.get(part, (None, []))
        return {_norm(rows.texts[i]) for i in index}


def assemble(train: str | Path, valid: str | Path | None, test: str | Path | None) -> Assembly:
    """Read every source and place its rows; drop empty texts and texts repeated within a split."""
    a = Assembly()
    tr = a.read(train, "train")
    for part in PARTS:
        index = [i for i, s in enumerate(tr.splits) if (s or "train") == part]
        if index:
            a.parts[part] = (tr, index)
            a.source[part] = str(tr.path) if tr.splits[index[0]] is None else f"{tr.path}, split {part}"
    if "train" not in a.parts:
        raise DataError(f"{tr.path}: no training rows (its splits name none as train)")
    for part, path in (("valid", valid), ("test", test)):
        if path is None:
            continue
        rows = a.read(path, part)
        if any(s is not None for s in rows.splits):
            raise DataError(f"{rows.path}: only the training data may say each row's split (task.train); "
                            "drop the split column or give this file as task.train")
        if part in a.parts:
            raise DataError(f"{rows.path}: the {part} rows come from both this file and the splits of {tr.path}: "
                            "give one")
        a.parts[part], a.source[part] = (rows, list(range(len(rows.texts)))), str(rows.path)
    for part in a.parts:
        a.dedup(part)
    return a


def carve(a: Assembly, valid_fraction: float, test_fraction: float, seed: int) -> None:
    """Hold out the missing test and validation rows from the training rows (test first, each a share of them all)."""
    if "valid" not in a.parts and valid_fraction <= 0:
        raise ConfigError(f"{a.parts['train'][0].path}: no validation rows: give task.valid, a split column, or "
                          "task.valid_fraction above 0")
    wanted = [(p, f) for p, f in (("test", test_fraction), ("valid", valid_fraction)) if p not in a.parts and f > 0]
    if not wanted:
        return
    rows, index = a.parts["train"]
    held = stratified_carve([rows.keys[i] for i in index], [f for _, f in wanted], seed)
    out = set()
    for (part, fraction), chosen in zip(wanted, held):
        if not len(chosen) and part == "valid":
            raise DataError(f"{rows.path}: too few rows to carve a validation set (each class keeps one for "
                            "training): give task.valid")
        if not len(chosen):
            a.warn(f"{rows.path}: too few rows to carve a test set (each class keeps one for training): no test rows")
        a.parts[part] = (rows, [index[j] for j in chosen])
        a.source[part] = f"{fraction:.0%} of {a.source['train']}, stratified by label (seed {seed})"
        out.update(index[j] for j in chosen)
    a.parts["train"] = (rows, [i for i in index if i not in out])


def separate(a: Assembly) -> None:
    """Drop test texts that occur in training or validation; say how many validation texts occur in training."""
    if "test" in a.parts:
        rows, index = a.parts["test"]
        seen = a.texts("train") | a.texts("valid")
        kept = [i for i in index if _norm(rows.texts[i]) not in seen]
        n = len(index) - len(kept)
        if index and not kept:
            raise DataError(f"{rows.path}: no test rows left: every one also occurs in training or validation")
        a.drop(rows, "test", "also in training or validation", n,
               f"{rows.path}: dropped {n} test row{'s' * (n != 1)} whose text also occurs in training or validation")
        a.parts["test"] = (rows, kept)
    n = len(a.texts("valid") & a.texts("train"))
    if n:
        a.warn(f"{a.parts['valid'][0].path}: {n} validation text{'s' * (n != 1)} also occur{'s' * (n == 1)} in "
               "training: the epochs it picks will favour memorising")
