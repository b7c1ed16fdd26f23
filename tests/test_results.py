"""Results are committed round by round; an interrupted round is discarded whole and redone once."""

import numpy as np
import pandas as pd

from edgefleet.results import Results


def _commit(results, r):
    devices = pd.DataFrame({"round": [r, r], "device": [1, 2], "outcome": ["ok", "oom"]})
    results.commit_round(r, devices, {"round": r, "hr@10": 0.5 + r / 100}, {"w": np.full(3, float(r))})


def test_rounds_commit_and_read_back(tmp_path):
    results = Results(tmp_path)
    results.ensure()
    assert results.completed_rounds() == 0 and results.rounds().empty
    results.write_start({"hr@10": 0.5})
    for r in (1, 2):
        _commit(results, r)
    assert results.completed_rounds() == 2
    assert list(results.rounds()["round"]) == [1, 2]
    assert results.round_row(2)["hr@10"] == results.rounds().iloc[-1]["hr@10"] == 0.52
    assert len(results.devices()) == 4
    assert (results.checkpoint(2)["w"] == 2.0).all()
    assert results.start() == {"hr@10": 0.5} and results.finished() is None


def test_a_round_without_its_checkpoint_is_not_read_and_is_discarded(tmp_path):
    results = Results(tmp_path)
    results.ensure()
    _commit(results, 1)
    _commit(results, 2)
    (tmp_path / "checkpoints" / "round-00002.npz").unlink()  # killed before round 2's commit marker
    (tmp_path / "results" / "devices" / ".round-00003.parquet.tmp").write_bytes(b"half a file")
    assert results.completed_rounds() == 1
    assert list(results.rounds()["round"]) == [1]  # readers never see the uncommitted round
    results.discard_after(1)
    assert sorted(p.name for p in (tmp_path / "results" / "devices").iterdir()) == ["round-00001.parquet"]
    _commit(results, 2)  # redone
    assert list(results.rounds()["round"]) == [1, 2] and len(results.devices()) == 4


def test_the_server_optimizers_state_is_checkpointed_beside_the_weights(tmp_path):
    results = Results(tmp_path)
    results.ensure()
    state = {"momentum/0": np.arange(3.0), "m_t/w": np.ones((2, 2))}
    results.commit_round(1, pd.DataFrame({"round": [1], "outcome": ["ok"]}), {"round": 1}, {"w": np.zeros(3)},
                         state)
    assert set(results.checkpoint(1)) == {"w"}
    got = results.optimizer_state(1)
    assert got.keys() == state.keys() and all((got[k] == v).all() for k, v in state.items())
    _commit(results, 2)
    assert results.optimizer_state(2) == {}


def test_a_round_rewritten_is_read_afresh_and_a_callers_changes_stay_its_own(tmp_path):
    results = Results(tmp_path)
    results.ensure()
    _commit(results, 1)
    table = results.rounds()
    table.loc[0, "hr@10"] = -1.0  # a caller's change to the table it was given
    assert results.rounds().loc[0, "hr@10"] == 0.51
    (tmp_path / "checkpoints" / "round-00001.npz").unlink()
    results.discard_after(0)
    results.commit_round(1, pd.DataFrame({"round": [1], "device": [7], "outcome": ["ok"]}),
                         {"round": 1, "hr@10": 0.75}, {"w": np.zeros(3)})  # the round redone, other figures
    assert results.rounds().loc[0, "hr@10"] == 0.75 and list(results.devices()["device"]) == [7]


def test_round_files_held_for_readers_stay_within_their_bytes(tmp_path):
    from edgefleet.results import _Parts

    results = Results(tmp_path)
    results.ensure()
    for r in (1, 2, 3):
        _commit(results, r)
    paths = sorted((tmp_path / "results" / "devices").glob("round-*.parquet"))
    one = int(pd.read_parquet(paths[0]).memory_usage(deep=True).sum())
    parts = _Parts(limit_bytes=2 * one)
    for p in paths:
        parts.read(p)
    assert len(parts.frames) == 2 and parts.held <= 2 * one  # the least recently read went first
    assert [k[0] for k in parts.frames] == [str(p) for p in paths[1:]]
    assert parts.read(paths[0]).equals(pd.read_parquet(paths[0]))
