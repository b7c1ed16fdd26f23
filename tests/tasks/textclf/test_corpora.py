"""The shipped real data set: WordNet's noun definitions by topic, written as files and read by the task's loader."""

import time
import warnings

import pytest

from edgefleet.errors import ConfigError, DataError
from edgefleet.tasks.textclf.corpora import WORDNET, WORDNET_TOPICS, wordnet_glosses, write_corpus
from edgefleet.tasks.textclf.data import DataWarning, load_text_task

# Two synsets as WordNet 3.0's data.noun holds them: a header line, an animal (lexicographer file 05) with an example
# sentence after its definition, a location (15), and an act (04), which is not one of the ten topics.
DATA_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis; "the dog barked all night"
08494231 15 n 01 tropic 0 000 | either of two parallels of latitude about 23.5 degrees north and south
00030358 04 n 01 act 0 000 | something that people do or cause to happen
"""


def test_definitions_by_topic_without_their_examples(tmp_path):
    path = tmp_path / "data.noun"
    path.write_text(DATA_NOUN)
    assert wordnet_glosses(path) == {
        "animal": ["a member of the genus Canis"],
        "location": ["either of two parallels of latitude about 23.5 degrees north and south"]}
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="not a WordNet data file"):
        wordnet_glosses(path)


def test_unknown_data_set_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown data set 'fortunes' \(choose from wordnet\)"):
        write_corpus("fortunes", tmp_path, per_class=None, seed=0, valid_fraction=0.1, test_fraction=0.1)


NO_WORDNET = pytest.mark.skipif(not (WORDNET / "data.noun").is_file(),
                                reason="Debian's wordnet-base is missing: make setup installs it")


@NO_WORDNET
def test_the_real_file_files_the_dog_under_animal():
    glosses = wordnet_glosses(WORDNET / "data.noun")
    assert ("a member of the genus Canis (probably descended from the common wolf) that has been domesticated by "
            "man since prehistoric times; occurs in many breeds") in glosses["animal"]
    assert sorted(glosses) == sorted(WORDNET_TOPICS.values()) and min(map(len, glosses.values())) > 1000


@NO_WORDNET
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wordnet_through_the_task_loader(tmp_path, fmt):
    started = time.perf_counter()
    written = write_corpus("wordnet", tmp_path, per_class=None, seed=0, valid_fraction=0.1, test_fraction=0.1,
                           fmt=fmt)
    with warnings.catch_warnings(action="error", category=DataWarning):  # the files need no repair
        task = load_text_task(tmp_path / f"train.{fmt}", tmp_path / f"valid.{fmt}", tmp_path / f"test.{fmt}")
    assert task.labels == sorted(WORDNET_TOPICS.values()) == written["labels"]
    assert task.report["rows"] == {"train": 3200, "valid": 400, "test": 400}
    for y in (task.train_y, task.valid_y, task.test_y):  # balanced: every class the same share of every split
        assert len(set(y.tolist().count(c) for c in range(10))) == 1
    norm = {" ".join(t.split()).casefold() for t in task.train_texts}
    assert not any(" ".join(t.split()).casefold() in norm for t in task.test_texts + task.valid_texts)
    assert (tmp_path / "LICENSE").read_text().startswith("This software and database is being provided to you")
    assert time.perf_counter() - started < 5.0


@NO_WORDNET
def test_the_data_command_writes_the_files_and_prints_their_report(tmp_path, capsys):
    from edgefleet.cli import main

    out = tmp_path / "wn"
    assert main(["data", "wordnet", "--out", str(out), "--per-class", "20", "--set", "task.test_fraction=0.2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("wordnet: 10 classes (animal, artifact, body, ") and "wordnet-base" in printed[0]
    assert printed[1:4] == [f"  train      140 rows  from {out / 'train.csv'}",
                            f"  valid       20 rows  from {out / 'valid.csv'}",
                            f"  test        40 rows  from {out / 'test.csv'}"]
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE", "test.csv", "train.csv", "valid.csv"]
    assert main(["data", "fortunes", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "edgefleet: error: unknown data set 'fortunes' (choose from wordnet)\n"
