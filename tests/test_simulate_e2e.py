"""`edgefleet simulate --preset tiny` end to end: the real data, a real compressed model, Flower on Ray; a run
interrupted with Ctrl-C and resumed, with no round lost or written twice and no process left behind; and the same
apps on Flower's Deployment Engine."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from client.audit import AUDIT_ENV
from edgefleet.cli import main
from edgefleet.config import load_config
from edgefleet.progress import Reporter
from edgefleet.results import OUTCOMES, Results
from edgefleet.rundir import prepare
from edgefleet.tasks import federated_task
from simulation.launch import FlowerSim, write_app
from simulation.prepare import prepare_fleet
from simulation.run import CLIENTAPP, SERVERAPP, run_simulate
from tests.conftest import cache_copy

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
def tiny_run(tmp_path_factory, tiny_build):
    """The run with a temporary directory and a home of its own, both empty before: what lands in them afterwards
    was written outside the run directory by this run (and no other test's, which may run beside it). The temporary
    directory's path is short, as /tmp's is: Ray's socket paths under it must stay under 108 characters. It
    compresses its model with the tiny build's trained models (a copy of the session's cache)."""
    root = tmp_path_factory.mktemp("sim")
    out = root / "run"
    cache = cache_copy(tiny_build, root / "artifacts")
    places = {"TMPDIR": Path(tempfile.mkdtemp(prefix="eft-", dir="/tmp")), "HOME": root / "home"}
    places["HOME"].mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for name, place in places.items():
            mp.setenv(name, str(place))
        mp.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        code = main(["--quiet", "simulate", "--preset", "tiny", "--out", str(out), "--set", cache])
    left = {name: sorted(os.listdir(place)) for name, place in places.items()}
    shutil.rmtree(places["TMPDIR"])
    return out, code, left


def test_simulate_tiny(tiny_run):
    out, code, left = tiny_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["devices"] == 200 and summary["rounds"] == 2 and summary["cohort"] == 16
    assert summary["epsilon"] is None
    # Round 0 is the deployed model: the same figure `compress` reported for it on the same users.
    report = json.loads((out / "compress" / "compression_report.json").read_text())
    assert summary["hr@10_start"] == pytest.approx(report["student"]["hr@10"])
    # Genre tagging too, at most a borderline tag apart (the runtime's and the task's sigmoid round differently).
    assert summary["genre_f1_start"] == pytest.approx(report["genre"]["student"]["micro_f1"], abs=0.005)
    results = Results(out)
    rounds, devices = results.rounds(), results.devices()
    assert list(rounds["round"]) == [1, 2]
    for _, row in rounds.iterrows():
        assert sum(row[o] for o in OUTCOMES) == row["sampled"] == 16
    assert set(devices["outcome"]) <= set(OUTCOMES)
    assert not devices.duplicated(["round", "device"]).any()
    ok = devices[devices["outcome"] == "ok"]
    assert (ok["peak_bytes"] <= ok["allowance_bytes"]).all() and (ok["virtual_ms"] > 0).all()
    assert {"tier", "budget_bytes", "infer_ms", "train_ms", "bytes_up", "bytes_down", "loss", "hit",
            "tag_f1"} <= set(devices)
    assert rounds["genre_f1"].between(0, 1).all() and rounds["device_genre_f1"].notna().all()
    # Nothing left running, nothing written outside the run directory (its temporary directory and home).
    assert processes_of(out) == []
    assert left == {"TMPDIR": [], "HOME": []}


def test_interrupt_and_resume(tiny_run, tmp_path):
    first, code, _ = tiny_run
    assert code == 0
    out = tmp_path / "r"
    # Enough rounds that the run cannot finish between the first commit and the signal (a tiny round takes ~1 s).
    cmd = [sys.executable, "-m", "edgefleet", "--quiet", "simulate", "--preset", "tiny", "--rounds", "12",
           "--model", str(first / "model.eflt"), "--out", str(out)]
    # As from a terminal: Ctrl-C is not ignored, even when this test runs under a shell's background job (which
    # starts with SIGINT ignored, inherited by every child).
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while Results(out).completed_rounds() < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
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
    assert list(rounds["round"]) == list(range(1, 13))
    assert not devices.duplicated(["round", "device"]).any()
    assert sorted(devices["round"].unique()) == list(range(1, 13)) and done < 12
    assert json.loads((out / "summary.json").read_text())["rounds"] == 12
    assert processes_of(out) == []
    assert main(["--quiet", "simulate", "--resume", str(out)]) == 2  # finished: nothing to resume


def test_the_same_apps_run_on_the_deployment_engine(tiny_run, tmp_path):
    """A SuperLink without --simulation and two SuperNodes give the simulation engine's outcomes and weights."""
    first, code, _ = tiny_run
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


def audited_run(tiny_run, tmp_path: Path, monkeypatch, *flags: str) -> tuple[Path, list[dict]]:
    """A tiny DP run (noise 1, clip 0.1) of the tiny run's model with every outgoing message audited."""
    first, code, _ = tiny_run
    assert code == 0
    audit, out = tmp_path / "audit", tmp_path / "run"
    audit.mkdir()
    monkeypatch.setenv(AUDIT_ENV, str(audit))
    assert main(["--quiet", "simulate", "--preset", "tiny", "--model", str(first / "model.eflt"),
                 "--dp-noise", "1.0", "--dp-clip", "0.1", *flags, "--out", str(out)]) == 0
    records = [pickle.loads(p.read_bytes()) for p in audit.glob("*.pkl")]
    assert records, "no outgoing message was audited"
    return out, records


def personal_vectors(run_dir: Path) -> list[np.ndarray]:
    vectors = []
    for path in (run_dir / "device_state").glob("*.npz"):
        with np.load(path) as z:
            vectors += [z["state"].copy(), z["prev_state"].copy()]
    vectors = [v for v in vectors if np.abs(v).max() > 0]
    assert vectors, "no device kept a personal vector"
    return vectors


def floats_sent(record: dict) -> list[np.ndarray]:
    """Every float payload of one outgoing message: arrays, and numeric lists in configs or metrics."""
    out = [a for arrays in record["arrays"].values() for a in arrays.values() if a.dtype.kind == "f"]
    for group in ("configs", "metrics"):
        for values in record[group].values():
            for v in values.values():
                if isinstance(v, list) and v and all(isinstance(x, float) for x in v):
                    out.append(np.asarray(v))
    return out


def never_sent(vectors: list[np.ndarray], records: list[dict]) -> None:
    for record in records:
        for sent in floats_sent(record):
            flat = sent.ravel()
            for v in vectors:
                if len(flat) >= len(v):  # the personal vector as any contiguous run of a payload
                    windows = np.lib.stride_tricks.sliding_window_view(flat, len(v))
                    assert not np.isclose(windows, v, rtol=0, atol=1e-7).all(axis=1).any()


def test_dp_run_sends_only_the_shared_head(tiny_run, tmp_path, monkeypatch):
    """Client-level DP without SecAgg: every message the devices sent holds the shared heads' arrays and scalar
    telemetry, never the personal vector; epsilon is accounted per round."""
    out, records = audited_run(tiny_run, tmp_path, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    rounds = Results(out).rounds()
    assert summary["epsilon"] == pytest.approx(rounds["epsilon"].iloc[-1]) and summary["epsilon"] > 0
    assert rounds["epsilon"].is_monotonic_increasing and summary["delta"] == pytest.approx(1 / 200)
    assert rounds["noise_std"].tolist() == pytest.approx([1.0 * 0.1 / 16] * 2)
    for record in records:
        for arrays in record["arrays"].values():
            assert set(arrays) <= set(federated_task("movielens").device.shared_keys)  # both heads
    assert any(record["arrays"] for record in records)
    never_sent(personal_vectors(out), records)


def test_dp_with_secagg_end_to_end(tiny_run, tmp_path, monkeypatch):
    """DP + SecAgg+ on the tiny preset: the run completes with epsilon per round, the devices send masked integers
    in the field's width (no float array at all), and the personal vectors never leave."""
    out, records = audited_run(tiny_run, tmp_path, monkeypatch, "--secagg")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epsilon"] > 0 and summary["privacy"]["secagg"] is True
    results = Results(out)
    rounds, devices = results.rounds(), results.devices()
    assert list(rounds["round"]) == [1, 2] and (rounds["secagg_contributors"] > 0).all()
    for _, row in rounds.iterrows():
        assert sum(row[o] for o in OUTCOMES) == row["sampled"]
    assert not devices.duplicated(["round", "device"]).any()
    head = sum(v.size for v in Results(out).checkpoint(2).values())
    sent = devices[devices["bytes_up"] > 0]["bytes_up"]
    assert len(sent) and (sent == 2 * (head + 1)).all()  # 2-byte field elements: half of float32
    masked = [r for r in records if any("masked_params" in c for c in r["configs"].values())]
    assert masked
    for record in records:
        assert not floats_sent(record)
        assert all(not arrays for arrays in record["arrays"].values())
    never_sent(personal_vectors(out), records)
    assert processes_of(out) == []
