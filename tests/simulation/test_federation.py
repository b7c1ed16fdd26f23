"""The yardstick's arithmetic: share of the oracle's gain and rounds to 90% of a run's final gain."""

import pytest

from edgefleet.config import load_config
from edgefleet.errors import ConfigError
from edgefleet.tasks import federated_task
from simulation.federation import RUNS, oracle_settings, rounds_to, run_bench_federation, share_of_gain
from tests.stress.conftest import small_model  # noqa: F401 (the fixture: a small deployed model, built in seconds)


def test_share_of_the_oracles_gain():
    assert share_of_gain(0.45, 0.40, 0.50) == pytest.approx(0.5)
    assert share_of_gain(0.50, 0.40, 0.50) == pytest.approx(1.0)
    assert share_of_gain(0.38, 0.40, 0.50) == pytest.approx(-0.2)  # a run below the start loses ground
    assert share_of_gain(0.45, 0.40, 0.40) is None  # an oracle that gains nothing measures nothing


def test_rounds_to_90_percent_of_the_final_gain():
    assert rounds_to([0.41, 0.45, 0.49, 0.50], 0.40) == 3  # 0.09 of the final 0.10 first at round 3
    assert rounds_to([0.50, 0.50], 0.40) == 1
    assert rounds_to([0.41, 0.39], 0.40) is None  # no final gain


def test_unknown_runs_are_one_line_before_anything_is_written(tmp_path):
    cfg = load_config(None, "tiny", ['federation.runs=["fedavg", "fedsgd"]'])
    with pytest.raises(ConfigError, match="unknown federation run"):
        run_bench_federation(cfg, tmp_path / "b", None)
    assert not (tmp_path / "b").exists()
    user_level = load_config(None, "tiny", ["privacy.noise=1.0", 'privacy.unit="user"', 'federation.runs=["dp"]'])
    with pytest.raises(ConfigError, match="dp run calibrates device-level noise"):
        run_bench_federation(user_level, tmp_path / "b", None)
    assert not (tmp_path / "b").exists()


def test_the_oracle_trains_as_its_task_says_unless_configured():
    cfg = load_config(None, "default")
    movielens, textclf = federated_task("movielens"), federated_task("textclf")
    assert (oracle_settings(cfg, movielens).epochs, oracle_settings(cfg, movielens).lr) == (6, 1e-3)
    assert (oracle_settings(cfg, textclf).epochs, oracle_settings(cfg, textclf).lr) == (100, 1e-2)
    mine = load_config(None, "default", ["federation.oracle_epochs=3", "federation.oracle_lr=0.05"])
    assert (oracle_settings(mine, textclf).epochs, oracle_settings(mine, textclf).lr) == (3, 0.05)


def test_the_configured_runs_exist():
    assert set(load_config(None, "default").federation.runs) <= set(RUNS)
    assert set(load_config(None, "tiny").federation.runs) <= set(RUNS)


@pytest.mark.slow
def test_bench_federation_end_to_end(tmp_path, small_model):  # noqa: F811
    """Start, the oracles, baselines on every user's data and real federated runs (one training item vectors too, a
    DP one calibrated to the target epsilon and its twin) on the real MovieLens fleet, into one report and the runs'
    yardsticks."""
    import json

    from edgefleet.cli import main
    from edgefleet.rundir import FEDERATION_REPORT, YARDSTICK

    out = tmp_path / "bench"
    sets = [f'sim.model="{small_model}"', "sim.devices=40", "sim.cohort=8",
            'federation.runs=["fedavgm", "residual", "nodp", "dp"]', "federation.rounds=2", "federation.dp_devices=80",
            "federation.dp_cohort=16", "federation.dp_rounds=3", "federation.dp_epsilon=20",
            "federation.full_max_steps=1", "federation.tail_rounds=2"]
    assert main(["--quiet", "bench", "federation", "--preset", "tiny", "--out", str(out),
                 *[a for s in sets for a in ("--set", s)]]) == 0
    report = json.loads((out / FEDERATION_REPORT).read_text())
    head = report["headline"]
    start, oracle = report["start"][head], report["oracle"][head]
    assert [e["epoch"] for e in report["oracle"]["epochs"]] == [0, 0.25, 0.5, 0.75, 1.0]  # 4 checks an epoch
    assert set(report["baselines"]) == {"popularity", "itemknn", "bpr_mf"} and head in report["oracle_full"]
    assert head in report["oracle_item_residual"] and report["oracle_item_residual"]["epochs"][0]["epoch"] == 0
    plain, residual, twin, dp = report["runs"]
    assert (plain["name"], residual["name"], twin["name"], dp["name"]) == ("fedavgm", "residual", "nodp", "dp")
    assert plain["epsilon"] is None and twin["epsilon"] is None and 0 < dp["epsilon"] <= 20
    dp_summary = json.loads((out / dp["seeds"][0]["dir"] / "summary.json").read_text())
    assert dp_summary["delta"] == 1e-5  # federation.dp_delta, the delta, not one over the fleet
    # The DP run and its twin share the DP fleet, cohort and rounds; the plain run keeps the configured ones.
    assert [(r["devices"], r["cohort"], r["rounds"]) for r in report["runs"]] == \
        [(40, 8, 2), (40, 8, 2), (80, 16, 3), (80, 16, 3)]
    # Devices that train item vectors too are measured against the oracle that trains them too.
    assert [r["oracle"] for r in report["runs"]] == ["oracle", "oracle_item_residual", "oracle", "oracle"]
    residual_run = json.loads((out / residual["seeds"][0]["dir"] / "sim_config.json").read_text())
    assert residual_run["sim"]["item_residual"] is True
    # The DP pair trains with federation.dp_local_optimizer (SGD unless set) at the task's own rate; the plain runs
    # with the task's own optimizer (MovieLens: Adam), left unset.
    optimizers = [json.loads((out / r["seeds"][0]["dir"] / "sim_config.json").read_text())["sim"]["local_optimizer"]
                  for r in report["runs"]]
    assert optimizers == [None, None, "sgd", "sgd"]
    for run in report["runs"]:
        (seed,) = run["seeds"]
        rounds = run["rounds"]
        assert len(seed["curve"][head]) == rounds and seed["curve"][head][-1] == pytest.approx(run[head])
        ceiling = report[run["oracle"]][head]
        expected = share_of_gain(run[head], start, ceiling)
        assert run["share_of_oracle_gain"] == (None if expected is None else pytest.approx(expected))
        # Paired on the same test rows: the run's gain lies in its interval; a share is read only when the oracle's
        # gain is above the noise.
        interval = run["share_of_oracle_gain_interval"]
        low, high = interval["gain"]
        assert low - 1e-12 <= run[head] - start <= high + 1e-12
        assert interval["measurable"] == (interval["reference_gain"][0] > 0)
        assert (interval["share"] is None) != interval["measurable"]
        assert run[f"{head}_tail"] == pytest.approx(sum(seed["curve"][head][-2:]) / 2) and run["tail_rounds"] == 2
        # The run released the average (the default): its own curve is that mode's; the server's model is scored
        # from its checkpoints.
        assert seed["server_ema"] == 0.9 and seed["release_curves"]["ema 0.9"] == seed["curve"][head]
        assert len(seed["release_curves"]["server"]) == rounds
        assert set(run["release_ablation"]) == {"ema 0.9", "server"}
        yardstick = json.loads((out / seed["dir"] / YARDSTICK).read_text())
        assert yardstick["start"][head] == start and yardstick["oracle"][head] == oracle
        assert yardstick["oracle_item_residual"][head] == report["oracle_item_residual"][head]
    # DP's cost is measured against its twin without noise, not against the configured run.
    assert dp["nonprivate_reference"] == "nodp" and twin["nonprivate_reference"] is None
    expected = share_of_gain(dp[f"{head}_tail"], start, twin[f"{head}_tail"])
    assert dp["share_of_nonprivate_gain_tail"] == (None if expected is None else pytest.approx(expected))
    low, high = dp["share_of_nonprivate_gain_interval"]["reference_gain"]
    assert low - 1e-12 <= twin[head] - start <= high + 1e-12 and twin["share_of_nonprivate_gain_interval"] is None


def test_a_stopped_bench_goes_on_where_it_stopped(tmp_path, monkeypatch):
    """Finished runs in the bench directory are read back, an interrupted one resumes, a missing one starts."""
    import json

    from edgefleet.progress import Reporter
    from edgefleet.rundir import SIM_CONFIG, SUMMARY
    from simulation import federation

    calls = []
    monkeypatch.setattr(federation, "run_simulate",
                        lambda cfg, out, reporter, resume=False: calls.append((out.name, resume)) or {"new": True})
    cfg = load_config(None, "tiny")
    finished, stopped, fresh = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for run_dir in (finished, stopped):
        run_dir.mkdir()
        (run_dir / SIM_CONFIG).write_text(cfg.model_dump_json())
    (finished / SUMMARY).write_text(json.dumps({"hr@10": 0.5}))
    quiet = Reporter(enabled=False)
    assert federation._run(cfg, finished, quiet) == {"hr@10": 0.5}
    federation._run(cfg, stopped, quiet)
    federation._run(cfg, fresh, quiet)
    assert calls == [("b", True), ("c", False)]
    # A run made with other settings (here: fewer rounds) is neither read back under this row nor resumed.
    longer = federation._sim(cfg, rounds=cfg.sim.rounds + 5)
    for run_dir in (finished, stopped):
        with pytest.raises(ConfigError, match=rf"other settings: sim.rounds {cfg.sim.rounds} \(asked"):
            federation._run(longer, run_dir, quiet)
    assert len(calls) == 2
    # Settings are compared as written: a run from before a setting existed holds its default, and a run whose
    # other settings today's checks would refuse (a DP cohort above a later DP fleet) still reads back.
    written = json.loads(cfg.model_dump_json())
    del written["sim"]["item_residual"]
    written["federation"].update(dp_devices=10, dp_cohort=1000)
    written["sim"]["server_lr"] = 1.0  # what unset means for FedAvgM
    (finished / SIM_CONFIG).write_text(json.dumps(written))
    assert federation._run(cfg, finished, quiet) == {"hr@10": 0.5}
    with pytest.raises(ConfigError, match=r"sim.server_lr 1.0 \(asked 2.0\)"):
        federation._run(federation._sim(cfg, server_lr=2.0), finished, quiet)
