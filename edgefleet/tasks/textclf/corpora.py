"""Real text-classification data that a Debian package installs, turned into the task's input files.

Never committed and never downloaded at run time: `make setup` installs the package, `edgefleet data NAME --out DIR`
writes DIR/train, valid and test files (CSV or Parquet, columns text,label) and the data's licence beside them.

`wordnet`: WordNet 3.0 (Debian `wordnet-base`, Princeton's WordNet 3.0 licence: use, copy, modify and distribute
for any purpose, keeping its copyright notice). Each text is the definition of a noun sense (the gloss without its
example sentences); its label is the sense's lexicographer file, the coarse topic WordNet's editors filed it under
(noun.animal, noun.food, ...). Ten concrete topics, a seeded sample of `per_class` definitions each; a definition
that WordNet files under two of them, or repeats, is left out.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgefleet.errors import ConfigError, DataError
from edgefleet.tasks.textclf.data import load_text_task
from edgefleet.tasks.textclf.splits import stratified_carve

WORDNET = Path("/usr/share/wordnet")
# Lexicographer file numbers (WordNet's lexnames) of the ten noun topics used as classes.
WORDNET_TOPICS = {5: "animal", 6: "artifact", 8: "body", 10: "communication", 13: "food", 15: "location",
                  18: "person", 20: "plant", 27: "substance", 28: "time"}


@dataclass(frozen=True)
class Corpus:
    package: str  # the Debian package that installs it
    licence: str
    per_class: int  # texts per class by default
    rows: Callable[[int, int], tuple[list[str], list[str]]]  # (per_class, seed) -> texts, labels
    notice: Callable[[], str]  # the licence text to keep beside every copy


def wordnet_glosses(data_noun: Path) -> dict[str, list[str]]:
    """Every noun definition of the ten topics, by topic, in file order (duplicates and cross-topic texts kept)."""
    out: dict[str, list[str]] = defaultdict(list)
    try:
        lines = data_noun.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{data_noun}: cannot read ({exc.strerror}); `make setup` installs Debian's wordnet-base") \
            from None
    for line in lines:
        if line.startswith(" "):  # the licence header
            continue
        head, bar, gloss = line.partition(" | ")
        fields = head.split()
        if not bar or len(fields) < 2 or not fields[1].isdigit():
            raise DataError(f"{data_noun}: not a WordNet data file (line {line[:40]!r})")
        topic = WORDNET_TOPICS.get(int(fields[1]))
        definition = gloss.split('; "')[0].strip().rstrip(";").strip()
        if topic and definition and not definition.startswith('"'):
            out[topic].append(definition)
    return dict(out)


def wordnet_rows(per_class: int, seed: int, root: Path = WORDNET) -> tuple[list[str], list[str]]:
    """A seeded sample of `per_class` definitions per topic (all of them where a topic has fewer)."""
    glosses = wordnet_glosses(root / "data.noun")
    topics_of: dict[str, set[str]] = defaultdict(set)
    for topic, texts in glosses.items():
        for text in texts:
            topics_of[text].add(topic)
    rng = random.Random(seed)
    texts, labels = [], []
    for topic in sorted(glosses):
        unique = sorted({t for t in glosses[topic] if len(topics_of[t]) == 1})
        chosen = rng.sample(unique, min(per_class, len(unique)))
        texts += chosen
        labels += [topic] * len(chosen)
    order = list(range(len(texts)))
    rng.shuffle(order)  # topics interleaved, so that the first rows of a file are a fair look at it
    return [texts[i] for i in order], [labels[i] for i in order]


def wordnet_notice(root: Path = WORDNET) -> str:
    """The WordNet licence, as data.noun carries it in its header lines."""
    header = [line.split(maxsplit=1) for line in (root / "data.noun").read_text(encoding="utf-8").splitlines()[:40]
              if line.startswith("  ")]  # "  12 text": the line number, then the text
    return "\n".join(words[1].rstrip() if len(words) > 1 else "" for words in header) + "\n"


CORPORA = {
    "wordnet": Corpus("wordnet-base", "WordNet 3.0 licence (Princeton University; permissive, keep the notice)", 400,
                      wordnet_rows, wordnet_notice),
}


def write_corpus(name: str, out: Path, *, per_class: int | None, seed: int, valid_fraction: float,
                 test_fraction: float, fmt: str = "csv") -> dict[str, Any]:
    """Write OUT/{train,valid,test}.{csv,parquet} (a seeded carve stratified by label) and OUT/LICENSE, then load
    them back through the task's loader; returns what was written and the loader's report."""
    if name not in CORPORA:
        raise ConfigError(f"unknown data set {name!r} (choose from {', '.join(CORPORA)})")
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"unknown format {fmt!r} (csv or parquet)")
    corpus = CORPORA[name]
    per_class = corpus.per_class if per_class is None else per_class
    if per_class < 3:
        raise ConfigError(f"--per-class {per_class}: each class needs at least 3 texts (train, valid, test)")
    texts, labels = corpus.rows(per_class, seed)
    test, valid = stratified_carve(labels, [test_fraction, valid_fraction], seed)
    held = set(test.tolist()) | set(valid.tolist())
    parts = {"train": [i for i in range(len(texts)) if i not in held], "valid": valid.tolist(), "test": test.tolist()}
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for part, index in parts.items():
        files[part] = out / f"{part}.{fmt}"
        _write(files[part], [texts[i] for i in index], [labels[i] for i in index])
    (out / "LICENSE").write_text(corpus.notice())
    task = load_text_task(files["train"], files["valid"], files["test"])
    return {"name": name, "package": corpus.package, "licence": corpus.licence, "per_class": per_class,
            "seed": seed, "files": {p: str(f) for p, f in files.items()}, "labels": list(task.labels),
            "data": task.report}


def _write(path: Path, texts: list[str], labels: list[str]) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": texts, "label": labels})
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
