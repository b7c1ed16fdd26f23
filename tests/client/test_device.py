"""One device's round: outcomes, the fallback ladder, the personal state, and what leaves the device."""

from dataclasses import replace

import numpy as np
import pytest

from client.device import LADDER, WALL_PARTS, DeviceJob, run_device
from client.storage import PersonalState
from client.worker import worker
from compression.runtime.artifact import read_artifact
from compression.runtime.update_codec import decode_update
from edgefleet.config import load_config
from edgefleet.tasks import federated_task
from server.app import device_job


def job(**kw):
    """Device 2 of the toy fleet, roomy, on a slow phone and link; small batches and a fast head, as the server sends
    them."""
    cfg = load_config(overrides=["sim.negatives=4", "sim.batch_size=4", "sim.lr=0.01"])
    profile = {"device": 2, "server-round": 1, "budget-bytes": 64 << 20, "cpu-factor": 3.0, "down-bps": 8e6,
               "up-bps": 1e6, "dropout": 0.0}
    return replace(DeviceJob.from_config({**device_job(cfg), **profile}), **kw)


@pytest.fixture
def setup(toy_run):
    tensors = read_artifact(toy_run / "model.eflt").tensors
    return worker(str(toy_run)), federated_task("movielens").shared_params(tensors)  # both heads, as the server sends


def test_a_roomy_device_trains_and_reports(setup):
    w, shared = setup
    report = run_device(w, job(), shared)
    assert report.outcome == "ok" and report.plan == "full"
    assert report.examples == len(w.fleet.device_items(2)) - 1
    assert np.isfinite(report.loss) and report.measured["hit"] in (0.0, 1.0)
    assert report.infer_ms == pytest.approx(3.0 * report.host_infer_ms)
    assert report.bytes_down == sum(v.nbytes for v in shared.values())
    assert report.bytes_up == sum(v.nbytes for v in report.update.values())
    comm = 1e3 * (8 * report.bytes_down / 8e6 + 8 * report.bytes_up / 1e6)
    assert report.comm_ms == pytest.approx(comm)
    assert report.virtual_ms == pytest.approx(report.infer_ms + report.train_ms + comm)
    new = decode_update(report.update, shared)
    assert set(new) == set(shared) and any(not np.array_equal(new[k], shared[k]) for k in shared)
    assert 0 < report.peak_bytes <= report.allowance_bytes


def test_the_update_holds_the_shared_head_only(setup):
    w, shared = setup
    report = run_device(w, job(), shared)
    assert set(report.update) == set(shared)
    state = np.load(w.run_dir / "device_state" / "2.npz")
    assert not any(np.array_equal(state["state"].ravel(), v.ravel()) for v in report.update.values())


def test_int8_updates_are_smaller_and_close(setup):
    w, shared = setup
    full = run_device(w, job(), shared)
    small = run_device(w, job(update_bits=8, device=3), shared)
    ref = run_device(w, job(device=3), shared)
    assert small.bytes_up < full.bytes_up / 3
    got, want = decode_update(small.update, shared), decode_update(ref.update, shared)
    for k in shared:
        step = np.abs(want[k] - shared[k]).max() / 127
        assert np.abs(got[k] - want[k]).max() <= step / 2 + 1e-6, k


def test_a_model_that_does_not_fit_is_an_oom(setup):
    w, shared = setup
    report = run_device(w, job(budget_bytes=w.model_bytes - 1), shared)
    assert report.outcome == "oom" and report.update is None
    assert report.error == "the model alone exceeds the budget" and report.workload == "training"


def test_the_ladder_falls_back_to_inference_only(setup):
    w, shared = setup
    roomy = run_device(w, job(), shared)
    # Between what inference needs and what training needs.
    budget = w.model_bytes + (roomy.peak_bytes * 3) // 4
    ladder = run_device(w, job(budget_bytes=budget), shared)
    none = run_device(w, job(budget_bytes=budget, fallback="none"), shared)
    assert none.outcome == "oom" and none.attempts == 1
    assert "allowance" in none.error or "failed" in none.error
    assert ladder.outcome == "ok" and ladder.plan != "full" and ladder.attempts > 1
    if ladder.plan == "inference-only":
        assert ladder.update is None and not np.isnan(ladder.measured["hit"])
    assert [p.name for p in LADDER][-1] == "inference-only"


def test_dropout_is_decided_by_the_seed(setup):
    w, shared = setup
    outcomes = [run_device(w, job(dropout=0.5, server_round=r), shared).outcome for r in range(1, 41)]
    assert set(outcomes) == {"ok", "dropout"}
    again = [run_device(w, job(dropout=0.5, server_round=r), shared).outcome for r in range(1, 41)]
    assert outcomes == again


def test_personal_state_persists_and_a_redone_round_starts_from_before(tmp_path):
    state = PersonalState(tmp_path / "d.npz", 3)
    assert (state.load(1) == 0).all()
    state.save(np.full(3, 1.0), 1)
    state.save(np.full(3, 2.0), 2)
    assert (state.load(3) == 2.0).all()
    assert (state.load(2) == 1.0).all()  # round 2 is being redone after an interruption
    state.save(np.full(3, 5.0), 2)  # redone
    assert (state.load(3) == 5.0).all() and (state.load(2) == 1.0).all()
    stored = PersonalState(tmp_path / "d.npz", 3)  # what the file holds, as a later round's device reads it
    assert (stored.load(3) == 5.0).all() and (stored.load(2) == 1.0).all()



def test_reusing_encoder_outputs_changes_nothing_a_device_reports_but_host_work(setup):
    w, shared = setup
    fresh = run_device(w, job(encoder_cache=0), shared)
    w.encodings.vectors.clear()
    first = run_device(w, job(), shared)
    again = run_device(w, job(), shared)  # every text of this device is now in the worker's cache
    for other in (first, again):
        assert (other.measured, other.loss) == (fresh.measured, fresh.loss)
        # numpy serves small buffers from a cache whose state depends on earlier work: a few hundred bytes of noise.
        assert other.peak_bytes == pytest.approx(fresh.peak_bytes, rel=0.03)
        for k in fresh.update:
            np.testing.assert_array_equal(other.update[k], fresh.update[k])
    # The device is charged the encode time measured when the worker first encoded its texts.
    assert again.host_infer_ms == pytest.approx(first.host_infer_ms, rel=0.5)


def test_a_device_whose_work_has_known_shapes_reports_what_the_capped_run_would(setup):
    w, shared = setup
    w.peaks.peaks.clear()
    capped = run_device(w, job(reuse_peaks=0), shared)
    first = run_device(w, job(), shared)  # the first of its shapes in this worker: traced under the cap
    known = run_device(w, job(), shared)
    assert not capped.peak_reused and not first.peak_reused and known.peak_reused
    assert first.wall["traced"] > 0 and known.wall["traced"] == known.wall["fork"] == 0
    assert known.peak_bytes == first.peak_bytes and known.outcome == first.outcome == "ok"
    assert (known.measured, known.loss, known.examples) == (capped.measured, capped.loss, capped.examples)
    for k in capped.update:
        np.testing.assert_array_equal(known.update[k], capped.update[k])
    # Weights in another dtype are other work: measured afresh, not given the float32 peak.
    wide = run_device(w, job(), {k: v.astype(np.float64) for k, v in shared.items()})
    assert not wide.peak_reused and wide.peak_bytes > known.peak_bytes
    # Under a budget the known peak does not fit, the device steps down the ladder as a capped one does.
    tight = job(budget_bytes=w.model_bytes + (first.peak_bytes * 3) // 4)
    assert run_device(w, tight, shared).plan == run_device(w, replace(tight, reuse_peaks=0), shared).plan != "full"


def test_the_small_batch_rung_accumulates_to_the_same_update(setup):
    from edgefleet.tasks.movielens.device import LocalItems

    w, shared = setup
    j = job(batch_size=4)
    own = w.fleet.device_items(2)
    tagged = np.setdiff1d(own, w.fleet.genre_held_out)
    local = LocalItems(np.concatenate([[w.fleet.test[0]], w.fleet.negatives[0], own, [w.fleet.valid[0]], [0, 1],
                                       w.fleet.n_items + tagged]),
                       n_eval=1 + w.fleet.negatives.shape[1], n_hist=len(own) + 1, n_neg=2,
                       genres=w.fleet.genres[tagged])
    encoded, _, _ = w.encodings.table(local.texts, None, reuse=True)
    personal = np.zeros(w.task.device.personal_size(shared), np.float32)
    runs = [w.task.device.work(shared, personal, encoded, local, plan.train, j, plan.batch_div, w.model.config,
                               np.random.default_rng(0)) for plan in LADDER[:2]]
    (_, full, p_full), (_, small, p_small) = runs
    for k in full:
        np.testing.assert_allclose(small[k], full[k], rtol=1e-4, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(p_small, p_full, rtol=1e-4, atol=1e-6)



def test_a_device_tags_and_trains_genres_on_its_own_titles_but_never_the_held_out_ones(setup):
    w, shared = setup
    fleet, n = w.fleet, w.fleet.n_items
    for device in range(fleet.n_devices):
        local = w.task.device.local_data(fleet, device, len(w.texts), 4, np.random.default_rng(0))
        user_row = fleet.user_row(int(fleet.device_user[device]))
        own = set(fleet.device_items(device).tolist()) | {int(fleet.valid[user_row])}
        titles = local.texts[local.n_items:] - n
        assert set(titles.tolist()) == own - set(fleet.genre_held_out.tolist())
        assert (local.genres == fleet.genres[titles]).all() and local.texts[:local.n_items].max() < n
    report = run_device(w, job(), shared)
    assert 0.0 <= report.measured["tag_f1"] <= 1.0
    new = decode_update(report.update, shared)
    assert not np.array_equal(new["genre.weight"], shared["genre.weight"])
    # A device whose items are all held out of genre training tags nothing and leaves the genre head as it was.
    held_all = replace(fleet, genre_held_out=np.arange(n))
    local = w.task.device.local_data(held_all, 2, len(w.texts), 4, np.random.default_rng(0))
    encoded, _, _ = w.encodings.table(local.texts, None, reuse=True)
    personal = np.zeros(w.task.device.personal_size(shared), np.float32)
    out, new, _ = w.task.device.work(shared, personal, encoded, local, True, job(), 1, w.model.config,
                                     np.random.default_rng(0))
    assert np.isnan(out["tag_f1"]) and out["examples"] > 0
    for k in ("genre.weight", "genre.bias"):
        np.testing.assert_array_equal(new[k], shared[k])


def test_the_host_timings_are_kept_apart_from_what_the_device_reports(setup):
    w, shared = setup
    report = run_device(w, job(), shared)
    assert set(report.wall) == set(WALL_PARTS) and min(report.wall.values()) >= 0 and report.wall["rerun"] > 0
    assert not set(report.metrics()) & {"wall", *WALL_PARTS}


def test_with_item_vectors_a_device_updates_the_rows_of_the_items_it_trained_on_only(setup):
    """sim.item_residual: the server sends the whole item table; the device trains the rows of its own items and
    training negatives (gathered under its cap), and the reply carries the table with only those rows moved."""
    w, _ = setup
    cfg = load_config(overrides=["sim.item_residual=true"])
    tensors = read_artifact(w.run_dir / "model.eflt").tensors
    shared = federated_task("movielens").trained_params(tensors, cfg.sim, w.fleet)
    table = shared["head.item_residual"]
    assert table.shape == (w.fleet.n_items, len(shared["head.item_head.bias"])) and not table.any()
    report = run_device(w, job(item_residual=1), shared)
    assert report.outcome == "ok" and report.bytes_down == sum(v.nbytes for v in shared.values())
    # Only the moved rows go back, with their indices (compression/runtime/update_codec.py).
    assert {"head.item_residual|rows", "head.item_residual|values"} <= set(report.update)
    assert report.bytes_up == sum(v.nbytes for v in report.update.values()) < report.bytes_down
    moved = np.flatnonzero(np.abs(decode_update(report.update, shared)["head.item_residual"]).sum(1))
    rng = np.random.default_rng([job().seed, 1, 2, 0xDE71CE])
    rng.random()  # the dropout draw
    local = w.task.device.local_data(w.fleet, 2, len(w.texts), job().negatives, rng)
    trained = local.texts[local.n_eval:local.n_items]  # its items (with the validation item) and negatives
    assert len(moved) > 0 and set(moved) <= set(trained)
    assert not set(moved) & set(local.texts[:local.n_eval])  # the evaluation candidates are never trained
    heads = run_device(w, job(), federated_task("movielens").shared_params(tensors))
    assert report.peak_bytes > heads.peak_bytes and report.predicted_bytes > heads.predicted_bytes
