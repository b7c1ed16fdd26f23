"""Shared fixtures: a tiny synthetic catalogue for unit tests; the real data is used only by `slow` tests."""

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
