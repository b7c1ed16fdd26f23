"""Where a round's wall time went: the parts the recorder writes into the round's row."""

import numpy as np
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


def test_the_released_average_follows_the_server_models_and_resumes_where_it_was():
    from server.recorder import Released

    models = [{"w": np.array([float(r), -float(r)], dtype=np.float32)} for r in range(6)]
    plain = Released(0.0)
    assert all(plain(m, r) is m for r, m in enumerate(models))  # no decay: the server's model itself
    assert plain.state() == {}

    ema = Released(0.5)
    released = [ema(m, r)["w"].copy() for r, m in enumerate(models)]
    assert released[0].tolist() == [0.0, 0.0]  # round 0: the deployed model
    assert released[1].tolist() == [1.0, -1.0]  # bias-corrected: round 1's model, not halfway back to the start
    # Round 2: (0.5 * 0.5 * 1 + 0.5 * 2) / (1 - 0.5**2), the weights 0.25 and 0.5 over the rounds made so far.
    assert released[2][0] == pytest.approx((0.25 * 1 + 0.5 * 2) / 0.75)
    assert released[-1].dtype == np.float32

    # A run stopped after round 3 and resumed from its checkpoint releases what an uninterrupted one does.
    first = Released(0.5)
    for r, m in enumerate(models[:4]):
        first(m, r)
    checkpoint = {**first.state(), "momentum/w": np.zeros(2)}  # beside the optimizer's own state
    resumed = Released(0.5, checkpoint)
    assert [resumed(m, r)["w"].tolist() for r, m in enumerate(models[4:], 4)] == [x.tolist() for x in released[4:]]


def test_a_round_in_which_no_device_was_available_commits_an_empty_round(tmp_path):
    """A small fleet can have no device available in a round: the round is committed with no device rows."""
    import pandas as pd
    from flwr.app import Array, ArrayRecord

    from edgefleet.results import Results
    from server.recorder import RoundRecorder
    from simulation.population.tiers import draw_population

    results = Results(tmp_path)
    results.ensure()
    recorder = RoundRecorder(results, draw_population(4, seed=0), lambda p: {"hr@10": 0.5}, 2.5, 0, ())
    arrays = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    recorder.evaluate(0, arrays)
    recorder.on_devices(1, pd.DataFrame([]), 0)
    recorder.evaluate(1, arrays)
    recorder.on_devices(2, pd.DataFrame([{"round": 2, "device": 3, "outcome": "dropout"}]), 1)
    recorder.evaluate(2, arrays)
    assert results.completed_rounds() == 2
    rounds = results.rounds()
    assert rounds["ok"].tolist() == [0, 0] and rounds["hr@10"].tolist() == [0.5, 0.5]
    assert results.devices()[["round", "device"]].values.tolist() == [[2, 3]]
