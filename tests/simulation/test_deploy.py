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

import psutil
import pytest

from edgefleet.cli import main
from edgefleet.config import load_config
from edgefleet.results import Results
from edgefleet.rundir import LOGS, PIDS, SUMMARY
from simulation.launch import still_running
from simulation.run import summarize
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
    assert set(summary) == set(summarize(cfg, results, 0.0, 0.0, 0)) | {"engine", "supernodes", "superlink"}

    devices = results.devices()
    ran_on = devices.groupby("round")["node"].apply(lambda nodes: [str(n).rsplit("/", 1)[-1] for n in nodes])
    assert all(len(set(names)) == len(names) <= 3 for names in ran_on)  # one device a round per SuperNode
    assert set().union(*ran_on) == {"supernode-0", "supernode-1", "supernode-2"}

    assert len(json.loads((out / LOGS / PIDS).read_text())) >= 4  # the SuperLink and three SuperNodes at least
    assert alive(out) == []


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
