"""The user's own text-classification task: `text,label` rows from CSV or JSON-lines files, validated once.

Every problem is a DataError of one line that names the file. Labels may be strings or integers; they become class
indices in the sorted order of the training file's labels (numeric order when every label is an integer).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefleet.errors import DataError

SUFFIXES = (".csv", ".jsonl", ".json")
COLUMNS = ("text", "label")
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Rows:
    """One file's rows: texts and canonical label keys (strings; integers written without sign or zeros)."""

    path: Path
    texts: list[str]
    keys: list[str]


@dataclass(frozen=True)
class TextTask:
    labels: list[int] | list[str]  # class index -> label as the user wrote it
    train_texts: list[str]
    train_y: np.ndarray  # (n_train,) int64 class indices
    valid_texts: list[str]
    valid_y: np.ndarray

    def digest(self) -> str:
        """Fingerprint of the parsed task (not the file bytes: the same data as CSV or JSONL is the same task)."""
        payload = [self.labels, self.train_texts, self.train_y.tolist(), self.valid_texts, self.valid_y.tolist()]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _key(value: object, path: Path, row: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{path}: row {row}: label must be a string or an integer, got {json.dumps(value)}")
    key = str(value).strip()
    if not key:
        raise DataError(f"{path}: row {row} has an empty label")
    return str(int(key)) if _INT.fullmatch(key) else key


def _records(path: Path) -> list[dict]:
    """The file's rows as dicts, without validating their fields."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: cannot parse: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".csv":
        try:
            rows = [r for r in csv.reader(io.StringIO(raw, newline=""), strict=True) if r]
        except csv.Error as exc:
            raise DataError(f"{path}: cannot parse as CSV: {_one_line(exc)}") from None
        header = [c.strip() for c in rows[0]]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing column '{missing[0]}' (found: {', '.join(header)})")
        for n, r in enumerate(rows[1:], 1):
            if len(r) != len(header):
                raise DataError(f"{path}: cannot parse as CSV: row {n} has {len(r)} fields, the header {len(header)}")
        return [dict(zip(header, r)) for r in rows[1:]]
    if path.suffix.lower() == ".json" and raw.lstrip().startswith("["):
        try:
            records = json.loads(raw)  # a JSON array of objects is accepted too
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: cannot parse as JSON: {_one_line(exc)}") from None
    else:
        records = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: cannot parse line {n} as JSON: {_one_line(exc)}") from None
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: row {n} is not a JSON object with fields text and label")
        missing = [c for c in COLUMNS if c not in rec]
        if missing:
            raise DataError(f"{path}: missing column '{missing[0]}' in row {n}")
    return records


def read_rows(path: str | Path) -> Rows:
    """Read and check one file: it exists, parses, has `text` and `label`, rows, and no empty text or label."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use .csv, .jsonl or .json lines with "
                        "columns text,label)")
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    records = _records(path)
    if not records:
        raise DataError(f"{path}: no rows (only a header)")
    texts, keys = [], []
    for n, rec in enumerate(records, 1):
        text = rec["text"]
        if not isinstance(text, str):
            raise DataError(f"{path}: row {n}: text must be a string, got {json.dumps(text)}")
        if not text.strip():
            raise DataError(f"{path}: row {n} has an empty text")
        texts.append(text)
        keys.append(_key(rec["label"], path, n))
    return Rows(path, texts, keys)


def load_text_task(train: str | Path, valid: str | Path) -> TextTask:
    """Both files, checked; classes come from the training file and every valid label must be among them."""
    tr, va = read_rows(train), read_rows(valid)
    classes = sorted(set(tr.keys), key=lambda k: (0, int(k), "") if _INT.fullmatch(k) else (1, 0, k))
    if len(classes) < 2:
        raise DataError(f"{tr.path}: only one class ({classes[0]!r}) in the labels: a classifier needs at least two")
    index = {k: i for i, k in enumerate(classes)}
    for n, k in enumerate(va.keys, 1):
        if k not in index:
            raise DataError(f"{va.path}: row {n}: label {k!r} does not occur in the training file {tr.path}")
    labels = [int(k) for k in classes] if all(_INT.fullmatch(k) for k in classes) else classes
    return TextTask(labels=labels, train_texts=tr.texts, train_y=np.array([index[k] for k in tr.keys], dtype=np.int64),
                    valid_texts=va.texts, valid_y=np.array([index[k] for k in va.keys], dtype=np.int64))
