"""Shared fixtures: a tiny synthetic catalogue for unit tests; the real data is used only by `slow` tests, and the
tiny build's trained models once a session."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgefleet.tasks.movielens.data import GENRES, Catalogue


@pytest.fixture
def toy_catalogue() -> Catalogue:
    """6 users x 12 items with hand-made timestamps (user u rates items u..u+5 in that order)."""
    rows = []
    for u in range(6):
        for step, item in enumerate(range(u, u + 6)):
            rows.append((u, item, 4.0, 1000 * u + step))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame["user"] = frame["user"].astype(np.int32)
    frame["item"] = frame["item"].astype(np.int32)
    genres = np.zeros((12, len(GENRES)), dtype=bool)
    genres[np.arange(12), 1 + np.arange(12) % 18] = True
    return Catalogue(
        item_raw_ids=np.array([str(i + 1) for i in range(12)]),
        titles=[f"Movie {i}" for i in range(12)],
        years=["1995"] * 12,
        genres=genres,
        user_raw_ids=np.arange(1, 7),
        interactions=frame,
        source_digest="toy",
    )


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory) -> tuple[Path, Path]:
    """`compress --preset tiny` on the real data and MiniLM, on an empty cache: (its run directory, its cache of
    trained models). This run trains the teacher and every student (tests/test_compress_e2e.py checks its report);
    the other end-to-end tests that need the tiny build start from a copy of its cache (`cache_copy`), so those
    models train once a session instead of once a test."""
    from edgefleet.cli import main

    root = tmp_path_factory.mktemp("tiny-build")
    out, artifacts = root / "run", root / "artifacts"
    assert main(["--quiet", "compress", "--preset", "tiny", "--out", str(out),
                 "--set", f'artifacts_dir="{artifacts}"']) == 0
    return out, artifacts


def cache_copy(tiny_build: tuple[Path, Path], dest: Path) -> str:
    """A test's own copy of the tiny build's cache at `dest` (files keep their times), as the `--set` that uses it."""
    shutil.copytree(tiny_build[1], dest)
    return f'artifacts_dir="{dest}"'
