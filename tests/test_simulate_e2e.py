"""`edgefleet simulate --preset tiny` end to end: the real data, a real compressed model, Flower on Ray; a run
interrupted with Ctrl-C and resumed, with no round lost or written twice and no process left behind; and the same
apps on Flower's Deployment Engine."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from edgefleet.cli import main
from edgefleet.config import load_config
from edgefleet.progress import Reporter
from edgefleet.results import OUTCOMES, Results
from edgefleet.rundir import prepare
from simulation.launch import FlowerSim, write_app
from simulation.prepare import prepare_fleet
from simulation.run import CLIENTAPP, SERVERAPP, run_simulate

pytestmark = pytest.mark.slow
SUMMARY_KEYS = ("devices", "rounds", "cohort", "hr@10", "ndcg@10", "hr@10_start", "participation_rate", "oom_rate",
                "latency_ms_p50", "latency_ms_p95", "wall_s", "device_rounds_per_s", "peak_rss_bytes", "epsilon")


def processes_of(run_dir: Path) -> list[psutil.Process]:
    home = str((run_dir / "flwr").resolve())
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("FLWR_HOME") == home:
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    out = root / "run"
    before = {p: set(os.listdir(p)) for p in (Path.home(), Path("/tmp")) if p.exists()}
    code = main(["--quiet", "simulate", "--preset", "tiny", "--out", str(out),
                 "--set", f'artifacts_dir="{root / "artifacts"}"'])
    after = {p: set(os.listdir(p)) for p in before}
    return out, code, before, after


def test_simulate_tiny(tiny_run):
    out, code, before, after = tiny_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["devices"] == 200 and summary["rounds"] == 2 and summary["cohort"] == 16
    assert summary["epsilon"] is None
    # Round 0 is the deployed model: the same figure `compress` reported for it on the same users.
    report = json.loads((out / "compress" / "compression_report.json").read_text())
    assert summary["hr@10_start"] == pytest.approx(report["student"]["hr@10"])
    results = Results(out)
    rounds, devices = results.rounds(), results.devices()
    assert list(rounds["round"]) == [1, 2]
    for _, row in rounds.iterrows():
        assert sum(row[o] for o in OUTCOMES) == row["sampled"] == 16
    assert set(devices["outcome"]) <= set(OUTCOMES)
    assert not devices.duplicated(["round", "device"]).any()
    ok = devices[devices["outcome"] == "ok"]
    assert (ok["peak_bytes"] <= ok["allowance_bytes"]).all() and (ok["virtual_ms"] > 0).all()
    assert {"tier", "budget_bytes", "infer_ms", "train_ms", "bytes_up", "bytes_down", "loss", "hit"} <= set(devices)
    # Nothing left running, nothing written outside the run directory.
    assert processes_of(out) == []
    for place in before:  # pytest's own directory aside
        assert after[place] - before[place] <= {"pytest-of-root"}, place
    assert not list(Path("/tmp").glob("edgefleet-*"))


def test_interrupt_and_resume(tiny_run, tmp_path):
    first, code, _, _ = tiny_run
    assert code == 0
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "edgefleet", "--quiet", "simulate", "--preset", "tiny", "--rounds", "4",
           "--model", str(first / "model.eflt"), "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while Results(out).completed_rounds() < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert Results(out).completed_rounds() >= 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    assert processes_of(out) == []
    assert not (out / "summary.json").exists()
    done = Results(out).completed_rounds()

    # A started run is resumed, never started again over itself.
    assert main(["--quiet", "simulate", "--out", str(out), "--rounds", "5"]) == 2
    assert main(["--quiet", "simulate", "--resume", str(out)]) == 0
    results = Results(out)
    rounds, devices = results.rounds(), results.devices()
    assert list(rounds["round"]) == [1, 2, 3, 4]
    assert not devices.duplicated(["round", "device"]).any()
    assert sorted(devices["round"].unique()) == [1, 2, 3, 4] and done < 4
    assert json.loads((out / "summary.json").read_text())["rounds"] == 4
    assert processes_of(out) == []
    assert main(["--quiet", "simulate", "--resume", str(out)]) == 2  # finished: nothing to resume


def test_the_same_apps_run_on_the_deployment_engine(tiny_run, tmp_path):
    """A SuperLink without --simulation and two SuperNodes give the simulation engine's outcomes and weights."""
    first, code, _, _ = tiny_run
    assert code == 0
    cfg = load_config(preset="tiny", overrides=[
        "sim.devices=20", "sim.cohort=2", "sim.rounds=2", "sim.deadline_s=1e6", f'sim.model="{first / "model.eflt"}"'])
    quiet = Reporter(enabled=False)
    sim_dir, dep_dir = tmp_path / "sim", tmp_path / "dep"
    run_simulate(cfg, sim_dir, quiet)

    prepare_fleet(cfg, prepare(dep_dir, "summary.json"), quiet)
    app = write_app(dep_dir / "app", "edgefleet", SERVERAPP, CLIENTAPP)
    with FlowerSim(dep_dir, workers=1, supernodes=2) as deployment:
        deployment.submit(app, 2, {"run-dir": str(dep_dir.resolve())})
        status = deployment.follow(lambda: Results(dep_dir).finished() is not None, lambda: None)
    assert status == "finished:completed", deployment.save_log()
    assert processes_of(dep_dir) == []

    columns = ["round", "device", "outcome", "plan", "examples", "bytes_up"]
    got, want = (Results(d).devices()[columns].sort_values(["round", "device"]).reset_index(drop=True)
                 for d in (dep_dir, sim_dir))
    assert got.equals(want)
    for name, weights in Results(sim_dir).checkpoint(2).items():
        assert (Results(dep_dir).checkpoint(2)[name] == weights).all(), name
