"""`bench sim`'s round breakdown, from the round table a run wrote."""

import pandas as pd
import pytest

from edgefleet.results import WALL_PARTS
from simulation.bench import round_breakdown


def test_the_breakdown_is_the_mean_of_the_later_rounds():
    rows = []
    for r, wall in ((1, 9.0), (2, 4.0), (3, 6.0)):
        parts = {f"wall_{p}_s": 0.0 for p in WALL_PARTS}
        parts.update(wall_traced_s=wall / 2, wall_other_s=wall / 2)
        rows.append({"round": r, "wall_s": wall, **parts})
    breakdown = round_breakdown(pd.DataFrame(rows))
    assert list(breakdown) == list(WALL_PARTS)
    assert breakdown["traced"] == pytest.approx(2.5) and breakdown["configure"] == 0.0
    assert min(breakdown.values()) >= 0 and sum(breakdown.values()) <= 5.0 + 1e-9


def test_results_without_the_breakdown_give_none():
    assert round_breakdown(pd.DataFrame({"round": [1, 2], "wall_s": [1.0, 2.0]})) == {}
