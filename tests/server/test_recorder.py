"""Where a round's wall time went: the parts the recorder writes into the round's row."""

import pytest

from edgefleet.results import WALL_PARTS
from server.recorder import wall_breakdown


def test_the_parts_of_a_round_add_up_to_its_wall_time():
    worker = {"call": 4.0, "encode": 0.5, "traced": 2.0, "rerun": 0.5, "fork": 0.5}
    parts = wall_breakdown(6.0, {"configure": 0.1, "devices": 5.0, "aggregate": 0.3}, worker, 0.2, 0.1)
    assert list(parts) == [f"wall_{p}_s" for p in WALL_PARTS]
    assert parts["wall_messaging_s"] == pytest.approx(1.0)  # the wait for the replies beyond the busiest worker
    assert parts["wall_client_s"] == pytest.approx(0.5)  # the call beyond its measured parts
    assert parts["wall_other_s"] == pytest.approx(6.0 - 0.1 - 5.0 - 0.3 - 0.2 - 0.1)
    assert min(parts.values()) >= 0 and sum(parts.values()) == pytest.approx(6.0)


def test_parts_measured_on_other_clocks_never_exceed_the_round():
    parts = wall_breakdown(1.0, {"devices": 0.5}, {"call": 3.0, "traced": 3.0}, 0.2, 0.0)
    assert min(parts.values()) >= 0 and sum(parts.values()) <= 1.0 + 1e-9


def test_a_round_without_timings_is_all_other():
    parts = wall_breakdown(2.0, {}, {}, 0.0, 0.0)
    assert parts["wall_other_s"] == 2.0 and sum(parts.values()) == 2.0
