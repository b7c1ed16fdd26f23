"""`edgefleet deploy --local 3`: a SuperLink and three SuperNodes on loopback run the tiny preset's rounds, write
`simulate`'s summary, and leave no process behind."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from edgefleet.cli import main
from edgefleet.config import load_config
from edgefleet.results import Results
from edgefleet.rundir import (
    DEVICES_DIR,
    FLEET_DATA,
    FLEET_DIR,
    LOGS,
    MODEL,
    PIDS,
    SHARD,
    STATE_DIR,
    SUMMARY,
)
from edgefleet.tasks.movielens.fleet import FleetData
from simulation.launch import still_running
from simulation.run import summarize
from tests.simulation.launching import committed, kill_tree, launch_until_committed
from tests.stress.conftest import small_model  # noqa: F401 (the fixture: a small deployed model, built in seconds)

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def alive(run_dir: Path) -> list[int]:
    """The processes the launcher started (logs/pids.json: pid and start time) that still run."""
    return [p.pid for p in still_running(json.loads((run_dir / LOGS / PIDS).read_text()))]


def test_deploy_local_runs_every_round_on_three_supernodes(small_model, tmp_path):  # noqa: F811
    out = tmp_path / "dep"
    flags = ["--preset", "tiny", "--model", str(small_model), "--devices", "12", "--rounds", "2", "--cohort", "3"]
    assert main(["--quiet", "deploy", "--local", "3", *flags, "--out", str(out)]) == 0

    summary = json.loads((out / SUMMARY).read_text())
    results = Results(out)
    assert summary["rounds"] == results.completed_rounds() == 2
    assert (summary["engine"], summary["supernodes"], summary["cohort"]) == ("deployment", 3, 3)
    cfg = load_config(preset="tiny", overrides=[f'sim.model="{small_model}"', "sim.devices=12", "sim.rounds=2",
                                                "sim.cohort=3"])
    assert set(summary) == set(summarize(cfg, results, 0.0, 0.0, 0)) | {"engine", "supernodes", "superlink",
                                                                        "device_data", "tls", "supernode_auth"}

    devices = results.devices()
    ran_on = devices.groupby("round")["node"].apply(lambda nodes: [str(n).rsplit("/", 1)[-1] for n in nodes])
    assert all(len(set(names)) == len(names) <= 3 for names in ran_on)  # one device a round per SuperNode
    assert set().union(*ran_on) == {"supernode-0", "supernode-1", "supernode-2"}

    assert len(json.loads((out / LOGS / PIDS).read_text())) >= 4  # the SuperLink and three SuperNodes at least
    assert alive(out) == []


def test_devices_that_own_their_data_give_the_shared_runs_results(small_model, tmp_path):  # noqa: F811
    """`deploy --own-data` (over TLS, SuperNodes authenticated): each of 4 SuperNodes is one device that reads only
    its own directory (its shard of the fleet) and gets the model from the server's first message; the checkpoints
    and every device's outcome and figures equal those of the same run on 2 plain SuperNodes that read the shared
    run directory."""
    flags = ["--preset", "tiny", "--model", str(small_model), "--devices", "4", "--rounds", "3", "--cohort", "2"]
    own, shared = tmp_path / "own", tmp_path / "shared"
    assert main(["--quiet", "deploy", "--own-data", "--tls", "--supernode-auth", *flags, "--out", str(own)]) == 0
    assert main(["--quiet", "deploy", "--local", "2", *flags, "--out", str(shared)]) == 0

    summary = json.loads((own / SUMMARY).read_text())
    assert (summary["device_data"], summary["supernodes"], summary["rounds"]) == ("own", 4, 3)
    assert (summary["tls"], summary["supernode_auth"]) == (True, True)
    assert "insecure" not in (own / "flwr" / "config.toml").read_text()
    assert len(list((own / "flwr" / "keys").glob("*.pub"))) == 4
    a, b = Results(own), Results(shared)
    for r in (1, 2, 3):
        got, want = a.checkpoint(r), b.checkpoint(r)
        assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want)
    columns = ["round", "device", "outcome", "hit", "loss", "examples", "peak_bytes"]
    rows_a, rows_b = (r.devices().sort_values(["round", "device"])[columns].reset_index(drop=True) for r in (a, b))
    pd.testing.assert_frame_equal(rows_a.drop(columns="peak_bytes"), rows_b.drop(columns="peak_bytes"))
    # tracemalloc's peak of one device's work varies by tens of bytes of ~1 MB with what its process ran before
    np.testing.assert_allclose(rows_a["peak_bytes"], rows_b["peak_bytes"], rtol=1e-3)
    assert (rows_a["outcome"] == "ok").any()

    # Each device's own directory: its shard (one device), the model the server sent, its personal state.
    assert not (own / STATE_DIR).exists() or not any((own / STATE_DIR).iterdir())
    trained = set(rows_a.loc[rows_a["outcome"] == "ok", "device"])
    for d in range(4):
        home = own / DEVICES_DIR / str(d)
        fleet = FleetData.load(home / FLEET_DIR / FLEET_DATA)
        assert fleet.n_devices == 1 and json.loads((home / FLEET_DIR / SHARD).read_text()) == {"device": d}
        assert (home / MODEL).read_bytes() == (own / MODEL).read_bytes()
        assert (home / STATE_DIR / f"{d}.npz").exists() == (d in trained)
    ran_on = rows_a.merge(a.devices()[["round", "device", "node"]], on=["round", "device"])
    ran_on = ran_on[ran_on["outcome"] != "dropout"]
    assert all(str(n).endswith(f"supernode-{d}") for n, d in zip(ran_on["node"], ran_on["device"]))
    assert alive(own) == []


def test_own_data_refuses_what_it_cannot_run(small_model, tmp_path, capsys):  # noqa: F811
    flags = ["--preset", "tiny", "--model", str(small_model), "--devices", "4", "--cohort", "2"]
    assert main(["deploy", "--own-data", "--local", "3", *flags, "--out", str(tmp_path / "a")]) != 0
    assert "one SuperNode per device" in capsys.readouterr().err
    assert main(["simulate", *flags, "--set", 'sim.device_data="own"', "--out", str(tmp_path / "b")]) != 0
    assert "edgefleet deploy --own-data" in capsys.readouterr().err
    assert main(["deploy", "--own-data", *flags, "--cohort", "3", "--set", "privacy.secagg=true", "--out",
                 str(tmp_path / "c")]) != 0
    assert "legacy workflow" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_tls_superlink_admits_only_registered_supernodes(tmp_path):
    """`sim.tls` + `sim.supernode_auth` as FlowerSim starts them: the SuperLink answers HTTPS verified with the run's
    CA and not plain HTTP; its SuperNode, whose key was registered, is online; one with an unregistered key is
    refused and exits."""
    from simulation.certs import make_supernode_key
    from simulation.launch import FlowerSim, _free_port

    run = tmp_path / "tls"
    run.mkdir()
    with FlowerSim(run, 1, supernodes=1, tls=True, supernode_auth=True) as fs:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{fs.address}/health", timeout=5)
        assert fs._healthy()  # https, verified with the CA made for the run
        private, _ = make_supernode_key(run / "rogue", "rogue")
        rogue = fs._spawn("rogue", ["flower-supernode", "--root-certificates", str(fs.ca),
                                    "--auth-supernode-private-key", str(private), "--superlink", fs.address,
                                    "--max-retries", "2", "--max-wait-time", "20", "--host", "127.0.0.1",
                                    "--port", str(_free_port())])
        assert rogue.wait(90) != 0
        assert "Failed to activate SuperNode" in (run / LOGS / "rogue.out").read_text()
        listed = json.loads(fs._cli("supernode", "list", "edgefleet", "--format", "json").stdout)["nodes"]
        assert len(listed) == 1
    assert alive(run) == []


def test_tls_options_refuse_what_they_cannot_do(small_model, tmp_path, capsys):  # noqa: F811
    flags = ["--preset", "tiny", "--model", str(small_model), "--devices", "4", "--cohort", "2"]
    assert main(["deploy", "--supernode-auth", "--local", "2", *flags, "--out", str(tmp_path / "a")]) != 0
    assert "needs sim.tls" in capsys.readouterr().err
    assert main(["deploy", "--tls", "--superlink", "127.0.0.1:1", *flags, "--out", str(tmp_path / "b")]) != 0
    assert "--root-certificates" in capsys.readouterr().err
    assert main(["simulate", *flags, "--set", "sim.tls=true", "--out", str(tmp_path / "c")]) != 0
    assert "edgefleet deploy --tls" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.fixture
def superlink(tmp_path):
    """A SuperLink started as its owner would, on a free port; stopped by its pid."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "superlink"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLWR_"))}
    env.update(FLWR_HOME=str(home), TMPDIR=str(home), FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    with open(home / "superlink.out", "wb") as log:
        proc = subprocess.Popen([str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port",
                                 str(port), "--disable-runtime-dependency-installation"], env=env, cwd=home,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (home / "superlink.out").read_text()
                time.sleep(0.3)
        yield f"127.0.0.1:{port}", proc
    finally:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
        for p in tree:
            p.terminate()
        _, left = psutil.wait_procs(tree, timeout=10)
        for p in left:
            p.kill()


def test_deploy_joins_a_running_superlink_and_leaves_it_running(small_model, superlink, tmp_path):  # noqa: F811
    address, proc = superlink
    out = tmp_path / "dep"
    assert main(["--quiet", "deploy", "--superlink", address, "--local", "2", "--preset", "tiny", "--model",
                 str(small_model), "--devices", "8", "--rounds", "1", "--cohort", "2", "--out", str(out)]) == 0
    summary = json.loads((out / SUMMARY).read_text())
    assert (summary["rounds"], summary["superlink"], summary["supernodes"]) == (1, address, 2)
    assert alive(out) == []  # the SuperNodes it started
    assert proc.poll() is None  # the SuperLink is its owner's


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone, or a zombie already (a ClientApp process that just ended)
        return ""


def test_a_supernode_killed_mid_run_is_a_dropout_and_the_run_goes_on(small_model, tmp_path):  # noqa: F811
    """Kill one of three SuperNodes once round 1 is committed: its devices are dropouts (its node unavailable, no
    reply in the round, or no free slot), never errors; the run goes on with the two left and commits every round."""
    out = tmp_path / "dep"
    cmd = [str(BIN / "edgefleet"), "--quiet", "deploy", "--local", "3", "--preset", "tiny", "--model", str(small_model),
           "--devices", "12", "--rounds", "4", "--cohort", "3", "--set", "sim.round_timeout_s=120",
           "--set", "sim.node_wait_s=5", "--out", str(out)]
    launcher = launch_until_committed(cmd, out)
    try:
        victim, = [p for p in psutil.Process(launcher.pid).children(recursive=True) if "supernode=1" in _cmdline(p)]
        killed_after = committed(out)
        kill_tree(victim)
        output = launcher.communicate(timeout=600)[0].decode()
    finally:
        if launcher.poll() is None:
            launcher.terminate()
            launcher.wait(30)
    assert launcher.returncode == 0, output[-3000:]
    results = Results(out)
    assert results.completed_rounds() == 4
    devices = results.devices()
    after = devices[devices["round"] > killed_after]
    assert "error" not in set(after["outcome"])
    lost = after[(after["outcome"] == "dropout")
                 & after["error"].fillna("").str.contains("unavailable|no reply|no free slot", case=False)]
    assert len(lost) >= 1
    # Once the round in flight at the kill is over, no device answers from the dead SuperNode.
    answered = after[(after["round"] > killed_after + 1) & (after["outcome"] != "dropout")]
    assert not answered["node"].astype(str).str.endswith("supernode-1").any()
    assert alive(out) == []


def test_a_killed_deploy_launcher_resumes_after_its_last_committed_round(small_model, tmp_path):  # noqa: F811
    """SIGKILL the launcher once round 1 is committed (its SuperLink and SuperNodes die with it), then
    `deploy --resume DIR --local 3`: every round commits once, no device row is written twice, nothing is left."""
    out = tmp_path / "dep"
    cmd = [str(BIN / "edgefleet"), "--quiet", "deploy", "--local", "3", "--preset", "tiny", "--model", str(small_model),
           "--devices", "12", "--rounds", "3", "--cohort", "3", "--out", str(out)]
    launcher = launch_until_committed(cmd, out)
    launcher.kill()
    launcher.wait(30)
    killed_after = Results(out).completed_rounds()
    assert killed_after < 3, "the run finished before the launcher was killed"
    assert main(["--quiet", "deploy", "--resume", str(out), "--local", "3"]) == 0
    results = Results(out)
    assert results.completed_rounds() == 3 and list(results.rounds()["round"]) == [1, 2, 3]
    devices = results.devices()
    assert not devices.duplicated(["round", "device"]).any()
    assert set(devices["device"]) <= set(range(12))  # every row names the device it was sent to
    assert json.loads((out / SUMMARY).read_text())["rounds"] == 3
    assert alive(out) == []


def test_a_killed_superlink_ends_the_run_with_its_rounds_kept_and_resume_goes_on(small_model, tmp_path):  # noqa: F811
    """SIGKILL the SuperLink alone (and the ServerApp it runs) once round 1 is committed: the launcher stops its
    SuperNodes and says how to go on, with the committed rounds kept; `deploy --resume` commits the rest once each."""
    out = tmp_path / "dep"
    cmd = [str(BIN / "edgefleet"), "--quiet", "deploy", "--local", "2", "--preset", "tiny", "--model", str(small_model),
           "--devices", "8", "--rounds", "3", "--cohort", "2", "--out", str(out)]
    launcher = launch_until_committed(cmd, out)
    try:
        superlink, = [p for p in psutil.Process(launcher.pid).children(recursive=True)
                      if "flower-superlink" in _cmdline(p)]
        kill_tree(superlink)
        output = launcher.communicate(timeout=300)[0].decode()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(30)
    kept = Results(out).completed_rounds()
    assert launcher.returncode != 0 and 1 <= kept < 3, output[-3000:]
    assert "the SuperLink stopped after" in output and f"edgefleet deploy --resume {out} --local 2" in output
    assert alive(out) == []  # its SuperNodes too

    assert main(["--quiet", "deploy", "--resume", str(out), "--local", "2"]) == 0
    results = Results(out)
    assert list(results.rounds()["round"]) == [1, 2, 3]
    assert not results.devices().duplicated(["round", "device"]).any()
    assert alive(out) == []


def test_deploy_resume_refuses_run_options(capsys):
    assert main(["deploy", "--resume", "x", "--local", "2", "--rounds", "3"]) != 0
    assert "takes its config from DIR" in capsys.readouterr().err
