"""The XtremeDistil transfer set of a classifier: unlabelled in-domain text, labelled by the teacher's pooled state
and logits, that the students match before they see a label.

The texts are the training texts, the user's own unlabelled texts (`task.unlabeled`: a text file, one text a line,
or a CSV, JSON lines, JSON, Parquet file or `save_to_disk` folder with a `text` column; every split of a saved
DatasetDict, `unsupervised` included), then simple views of both until `distill.transfer_size`: the text with each
word dropped at rate 0.2, or a contiguous span of half to nine tenths of its words. A text that is a validation or
test text is never in the set, so that neither the epochs picked nor the reported scores see the teacher's answer
on it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from compression.teacher.two_tower import ItemTokens
from compression.textclf.models import TextTeacher, predict
from edgefleet.errors import DataError

WORD_DROPOUT = 0.2
SPAN = (0.5, 0.9)  # shortest and longest share of the words a span keeps


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _key(text: str) -> str:
    """What makes two texts the same (case and white space aside), as the data checks compare them."""
    return _one_line(text).casefold()


def _raw(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: cannot read the unlabelled texts: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the unlabelled texts ({exc.strerror})") from None


def _json_texts(path: Path, raw: str) -> list:
    try:
        if raw.lstrip().startswith("["):
            records = json.loads(raw)
        else:
            records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: cannot parse as JSON: {_one_line(str(exc))}") from None
    texts = []
    for n, rec in enumerate(records, 1):
        if isinstance(rec, dict) and "text" not in rec:
            raise DataError(f"{path}: row {n} has no 'text' field")
        texts.append(rec.get("text") if isinstance(rec, dict) else rec)
    return texts


def _need_text(path: Path, columns: Sequence[str]) -> None:
    if "text" not in columns:
        raise DataError(f"{path}: missing column 'text' (found: {', '.join(columns) or 'none'})")


def _table_texts(path: Path) -> list:
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: cannot parse as Parquet: {_one_line(str(exc))}") from None
        _need_text(path, table.column_names)
        return table.column("text").to_pylist()
    raw = _raw(path)
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() in (".json", ".jsonl"):
        return _json_texts(path, raw)
    if path.suffix.lower() == ".csv":
        try:
            rows = [r for r in csv.reader(io.StringIO(raw, newline=""), strict=True) if r]
        except csv.Error as exc:
            raise DataError(f"{path}: cannot parse as CSV: {_one_line(str(exc))}") from None
        header = [c.strip() for c in rows[0]]
        _need_text(path, header)
        i = header.index("text")
        return [r[i] if i < len(r) else None for r in rows[1:]]
    return raw.splitlines()  # a plain text file: one text a line


def _saved_texts(path: Path) -> list:
    if not any((path / name).is_file() for name in ("dataset_dict.json", "state.json")):
        raise DataError(f"{path}: a folder, but not a dataset saved with save_to_disk")
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as exc:  # the library raises many kinds for a damaged folder; the user needs one line
        raise DataError(f"{path}: cannot read the saved dataset: {_one_line(str(exc))}") from None
    texts = []
    for ds in saved.values() if isinstance(saved, datasets.DatasetDict) else [saved]:
        _need_text(path, ds.column_names)
        texts += ds["text"]
    return texts


def read_unlabeled(path: str | Path) -> list[str]:
    """The texts of an unlabelled source, one line each, empty ones left out; any label column is ignored."""
    path = Path(path)
    if path.is_dir():
        raw = _saved_texts(path)
    elif not path.is_file():
        raise DataError(f"{path}: unlabelled text file not found")
    else:
        raw = _table_texts(path)
    for n, text in enumerate(raw, 1):
        if text is not None and not isinstance(text, str):
            raise DataError(f"{path}: row {n}: text must be a string, got {json.dumps(text, default=str)}")
    texts = [_one_line(t) for t in raw if t and t.strip()]
    if not texts:
        raise DataError(f"{path}: no unlabelled texts in the file")
    return texts


def augment(text: str, rng: np.random.Generator) -> str:
    """One view of a text: word dropout or a contiguous span; a text of one word stays as it is."""
    words = text.split()
    if len(words) < 2:
        return text
    if rng.random() < 0.5:
        kept = [w for w in words if rng.random() >= WORD_DROPOUT]
        return " ".join(kept) if kept else words[int(rng.integers(len(words)))]
    n = max(1, int(round(len(words) * rng.uniform(*SPAN))))
    start = int(rng.integers(len(words) - n + 1))
    return " ".join(words[start:start + n])


@dataclass(frozen=True)
class TransferTexts:
    texts: list[str]  # the training texts first, in order, then unlabelled texts, then views
    report: dict


def transfer_texts(train: Sequence[str], unlabeled: Sequence[str], held_out: Sequence[str], size: int,
                   seed: int) -> TransferTexts:
    """The training texts, the unlabelled ones (a seeded sample when they alone pass `size`), then views of both
    until `size` texts; no text of `held_out` (validation and test) and no repeat."""
    rng = np.random.default_rng([seed, 0x7C1F])
    banned = {_key(t) for t in held_out}
    seen = {_key(t) for t in train}
    texts = list(train)
    fresh = [t for t in dict.fromkeys(unlabeled) if _key(t) not in seen | banned]
    dropped = len(set(unlabeled)) - len(fresh)
    room = max(0, size - len(texts))
    if len(fresh) > room:
        fresh = [fresh[i] for i in sorted(rng.choice(len(fresh), room, replace=False))]
    texts += fresh
    seen |= {_key(t) for t in fresh}
    sources, views = list(texts), 0
    for _ in range(20 * max(0, size - len(texts))):  # short texts repeat their views: stop trying after a while
        if len(texts) >= size:
            break
        view = augment(sources[int(rng.integers(len(sources)))], rng)
        if _key(view) not in seen and _key(view) not in banned:
            seen.add(_key(view))
            texts.append(view)
            views += 1
    report = {"texts": len(texts), "train": len(train), "unlabeled_given": len(unlabeled),
              "unlabeled": len(fresh), "unlabeled_left_out": dropped, "views": views,
              "views_by": f"word dropout {WORD_DROPOUT}, or a span of {SPAN[0]:.0%}-{SPAN[1]:.0%} of the words"}
    return TransferTexts(texts, report)


@dataclass(frozen=True)
class TransferSet:
    """What the students learn from without labels: their own tokens, and the teacher's pooled states and logits."""

    tokens: ItemTokens
    pooled: torch.Tensor  # (n, teacher hidden)
    logits: torch.Tensor  # (n, classes)


@torch.no_grad()
def teacher_outputs(teacher: TextTeacher, tokenizer, texts: Sequence[str], max_len: int, cache: Path,
                    known: tuple[torch.Tensor, torch.Tensor], chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine-tuned teacher's (logits, pooled) for every text, cached beside the teacher they came from; `known`
    holds them for the first texts (the training texts, whose frozen-layer states exist already)."""
    digest = hashlib.sha256(json.dumps([max_len, list(texts)]).encode()).hexdigest()[:16]
    path = cache / f"transfer-{digest}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return saved["logits"], saved["pooled"]
    logits, pooled = [known[0]], [known[1]]
    for s in range(len(known[0]), len(texts), chunk):
        tokens = ItemTokens.build(tokenizer, texts[s:s + chunk], max_len)
        out = predict(teacher, teacher.lower(tokens), tokens.mask)
        logits.append(out[0])
        pooled.append(out[1])
    out = {"logits": torch.cat(logits), "pooled": torch.cat(pooled)}
    torch.save(out, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return out["logits"], out["pooled"]
