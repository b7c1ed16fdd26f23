"""One source of `text,label` rows, in the forms users have: CSV, JSON lines, a JSON array, Parquet, or a Hugging Face
`datasets` dataset saved with `save_to_disk` (one Dataset, or a DatasetDict whose splits become the task's splits).

Each row may also name its owner (`user`, or `device`) and its split (`split`: train, valid, validation or test).
Every problem is a DataError of one line that names the file; rows with an empty text are dropped and counted.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from edgefleet.errors import DataError

SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
COLUMNS = ("text", "label")
OWNER_COLUMNS = ("user", "device")
# What a `split` value or a DatasetDict's split name means; other DatasetDict splits (e.g. "unsupervised") are skipped.
SPLITS = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Rows:
    """One source's kept rows: texts, canonical label keys (strings; integers without sign or zeros), owners, splits
    (None: the source does not say), and where each row is, for messages."""

    path: Path
    texts: list[str]
    keys: list[str]
    users: list[str | None]
    splits: list[str | None]
    locs: list[str]  # "row 5", or "validation row 5" in a DatasetDict
    dropped_empty: int = 0
    skipped_splits: tuple[str, ...] = ()


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def is_int(key: str) -> bool:
    return _INT.fullmatch(key) is not None


def _key(value: object, path: Path, loc: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{path}: {loc}: label must be a string or an integer, got {json.dumps(value, default=str)}")
    key = str(value).strip()
    if not key:
        raise DataError(f"{path}: {loc} has an empty label")
    return str(int(key)) if is_int(key) else key


def _owner(value: object, path: Path, loc: str) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # NaN: a missing cell in a pandas-made file
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{path}: {loc}: user must be a string or an integer, got {json.dumps(value, default=str)}")
    return str(value).strip() or None


def _split(value: object, path: Path, loc: str) -> str:
    name = SPLITS.get(str(value).strip().lower()) if isinstance(value, str) else None
    if name is None:
        raise DataError(f"{path}: {loc}: split {json.dumps(value, default=str)} is not one of "
                        f"{', '.join(SPLITS)}")
    return name


def _header(path: Path, found: list[str], where: str = "") -> None:
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}'{where} (found: {', '.join(found)})")
    if all(c in found for c in OWNER_COLUMNS):
        raise DataError(f"{path}: both a 'user' and a 'device' column{where}: keep one (the row's owner)")


def _text_records(path: Path) -> list[dict]:
    """A CSV or JSON file's rows as dicts, without validating their values."""
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
            raise DataError(f"{path}: cannot parse as CSV: {one_line(exc)}") from None
        header = [c.strip() for c in rows[0]]
        _header(path, header)
        for n, r in enumerate(rows[1:], 1):
            if len(r) != len(header):
                raise DataError(f"{path}: cannot parse as CSV: row {n} has {len(r)} fields, the header {len(header)}")
        return [dict(zip(header, r)) for r in rows[1:]]
    if path.suffix.lower() == ".json" and raw.lstrip().startswith("["):
        try:
            records = json.loads(raw)  # a JSON array of objects is accepted too
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: cannot parse as JSON: {one_line(exc)}") from None
    else:
        records = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: cannot parse line {n} as JSON: {one_line(exc)}") from None
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: row {n} is not a JSON object with fields text and label")
        missing = [c for c in COLUMNS if c not in rec]
        if missing:
            raise DataError(f"{path}: missing column '{missing[0]}' in row {n}")
        if all(c in rec for c in OWNER_COLUMNS):
            raise DataError(f"{path}: row {n} has both a 'user' and a 'device' field: keep one (the row's owner)")
    return records


def _parquet_records(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot parse as Parquet: {one_line(exc)}") from None
    _header(path, table.column_names)
    return table.select([c for c in table.column_names if c in (*COLUMNS, *OWNER_COLUMNS, "split")]).to_pylist()


def _saved_dataset(path: Path) -> list[tuple[str | None, list[dict]]]:
    """(split, records) per split of a `save_to_disk` folder; split None for a single Dataset. ClassLabel labels
    become their names."""
    if not any((path / name).is_file() for name in ("dataset_dict.json", "state.json")):
        raise DataError(f"{path}: a folder, but not a dataset saved with save_to_disk (no dataset_dict.json or "
                        "state.json)")
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as exc:  # the library raises many kinds for a damaged folder; the user needs one line
        raise DataError(f"{path}: cannot read the saved dataset: {one_line(exc)}") from None
    parts = list(saved.items()) if isinstance(saved, datasets.DatasetDict) else [(None, saved)]
    out = []
    for split, ds in parts:
        where = "" if split is None else f" in split '{split}'"
        _header(path, ds.column_names, where)
        keep = [c for c in ds.column_names if c in (*COLUMNS, *OWNER_COLUMNS, "split")]
        records = ds.select_columns(keep).to_list()
        label = ds.features["label"]
        if isinstance(label, datasets.ClassLabel):
            for n, rec in enumerate(records, 1):
                if not 0 <= rec["label"] < label.num_classes:
                    raise DataError(f"{path}: {'' if split is None else split + ' '}row {n}: label {rec['label']} "
                                    f"is not one of the dataset's {label.num_classes} classes")
                rec["label"] = label.names[rec["label"]]
        out.append((split, records))
    return out


def _tables(path: Path) -> list[tuple[str | None, list[dict]]]:
    if path.is_dir():
        return _saved_dataset(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use .csv, .jsonl, .json, .parquet or a "
                        "folder written by datasets' save_to_disk, with columns text,label)")
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    records = _parquet_records(path) if path.suffix.lower() == ".parquet" else _text_records(path)
    return [(None, records)]


def read_rows(path: str | Path) -> Rows:
    """Read and check one source: it exists and parses, has `text` and `label`, and its values have the right types.
    Rows with an empty text are dropped (counted in `dropped_empty`)."""
    path = Path(path)
    texts, keys, users, splits, locs, skipped, empty = [], [], [], [], [], [], 0
    for table, records in _tables(path):
        if table is not None and table.lower() not in SPLITS:
            skipped.append(table)
            continue
        prefix = "" if table is None else f"{table} "
        for n, rec in enumerate(records, 1):
            loc = f"{prefix}row {n}"
            text = rec["text"]
            if text is not None and not isinstance(text, str):
                raise DataError(f"{path}: {loc}: text must be a string, got {json.dumps(text, default=str)}")
            if text is None or not text.strip():
                empty += 1
                continue
            texts.append(text)
            keys.append(_key(rec["label"], path, loc))
            users.append(_owner(rec.get("user", rec.get("device")), path, loc))
            split = rec.get("split")
            splits.append(SPLITS[table.lower()] if table is not None else
                          None if split is None else _split(split, path, loc))
            locs.append(loc)
    if not texts:
        raise DataError(f"{path}: no rows (only a header)" if not empty else
                        f"{path}: no rows left: every one of its {empty} rows has an empty text")
    return Rows(path, texts, keys, users, splits, locs, empty, tuple(skipped))
