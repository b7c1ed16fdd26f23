"""`edgefleet simulate --ray-address`: a tiny simulation on a two-node Ray cluster started on this host gives the same
results as a single-node run with the same seed, and devices ran on both nodes.

The cluster is two `ray start --block` processes (a head and a worker node, one CPU each) with their own temporary
directory (simulation/cluster.py `LocalRayCluster`); the fixture stops exactly the processes they started, by pid,
however the test ends.
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgefleet.cli import main
from edgefleet.results import OUTCOMES, Results
from edgefleet.rundir import STATE_DIR
from edgefleet.tasks import federated_task
from simulation.cluster import LocalRayCluster, _free_port, check_cluster
from tests.simulation.launching import committed, kill_tree, launch_until_committed
from tests.stress.conftest import small_model  # noqa: F401 (the fixture: a small deployed model, built in seconds)

pytestmark = pytest.mark.slow
TINY = ["--preset", "tiny", "--devices", "40", "--rounds", "2", "--cohort", "8"]


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="efray-", dir="/tmp"))  # short: Ray's socket paths must stay under 108
    local = LocalRayCluster(root)
    try:
        local.start_node("head", head=True)
        local.start_node("worker", head=False)
        yield local
    finally:
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, small_model, cluster):  # noqa: F811
    root = tmp_path_factory.mktemp("ray")
    shared = root / "shared"
    shared.mkdir()
    model = ["--model", str(small_model)]
    single = main(["--quiet", "simulate", *TINY, *model, "--out", str(root / "single")])
    on_cluster = main(["--quiet", "simulate", *TINY, *model, "--ray-address", cluster.address,
                       "--set", f'sim.shared_dir="{shared}"', "--out", str(root / "cluster")])
    return root, single, on_cluster


def test_the_cluster_has_two_nodes_that_see_a_directory(cluster, tmp_path):
    nodes = check_cluster(cluster.address, tmp_path, tmp_path)
    assert len(nodes) == 2 and all(n["sees"] and n["writes"] for n in nodes)
    assert sum(n["cpus"] for n in nodes) == 2


def test_a_run_on_two_nodes_equals_a_single_node_run(two_runs, cluster):
    """Devices, outcomes and updates are seeded by (seed, round, device), so they do not depend on which worker ran
    them, and the server averages the updates in device order, not in the order they arrive (which differs between
    runs): the weights, losses and global metrics are equal to the bit. Only a device's memory peak is compared with
    a tolerance: it is measured by tracemalloc in a worker whose earlier devices differ, mostly in the worker itself,
    not in a forked child, so its other threads' few allocations can fall inside it (a few hundred bytes of ~1 MB: up
    to 776 B, 1.03e-3, measured; 2e-3 relative).
    """
    root, single, on_cluster = two_runs
    assert single == 0 and on_cluster == 0
    a, b = Results(root / "single"), Results(root / "cluster")
    devices_a, devices_b = (r.devices().sort_values(["round", "device"]).reset_index(drop=True) for r in (a, b))

    # Both nodes of the cluster ran devices; the single-node run had one node.
    nodes = check_cluster(cluster.address, root, root)
    assert set(devices_b["node"].str.split("/").str[1]) == {n["node"][:12] for n in nodes}
    assert devices_a["node"].nunique() == 1
    assert len(devices_b) == 16 and set(devices_b["outcome"]) <= set(OUTCOMES)
    assert (devices_b["outcome"] == "ok").sum() >= 8

    # The devices did the same work: same devices, outcomes, plans, memory, examples, losses and own metrics.
    task = federated_task("movielens")
    same = ["round", "device", "outcome", "plan", "variant", "workload", "error", "allowance_bytes", "bytes_down",
            "bytes_up", "examples", "attempts", *(m.key for m in task.device_metrics)]
    pd.testing.assert_frame_equal(devices_a[same], devices_b[same])
    np.testing.assert_allclose(devices_a["peak_bytes"], devices_b["peak_bytes"], rtol=2e-3)
    np.testing.assert_array_equal(devices_a["loss"], devices_b["loss"])

    # The committed rounds: the same outcome counts and bytes, the same weights and global metrics.
    rounds_a, rounds_b = a.rounds(), b.rounds()
    exact = ["round", "sampled", *OUTCOMES, "bytes_up", "bytes_down"]
    pd.testing.assert_frame_equal(rounds_a[exact], rounds_b[exact])
    metrics = [m.key for m in task.metrics]
    np.testing.assert_array_equal(rounds_a[metrics].to_numpy(float), rounds_b[metrics].to_numpy(float))
    for name, weights in a.checkpoint(2).items():
        np.testing.assert_array_equal(weights, b.checkpoint(2)[name], err_msg=name)

    # The workers kept the devices' storage in the shared directory, the results stayed in the run directory.
    shared = list((root / "shared").iterdir())
    assert len(shared) == 1 and any((shared[0] / STATE_DIR).iterdir())
    assert not (root / "cluster" / STATE_DIR).exists()
    assert json.loads((root / "cluster" / "summary.json").read_text())["rounds"] == 2


def test_a_bad_address_is_one_line_and_leaves_no_run_directory(tmp_path, capsys, small_model):  # noqa: F811
    out = tmp_path / "bad"
    code = main(["--quiet", "simulate", *TINY, "--model", str(small_model), "--ray-address",
                 f"127.0.0.1:{_free_port()}", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ray_address" in err[0]
    assert not out.exists()


def test_a_killed_worker_node_costs_devices_of_one_round_only(tmp_path, small_model):  # noqa: F811
    """Kill the worker node of a fresh two-node cluster (its `ray start`, raylet and actor, by pid) once round 1 is
    committed: the devices lost with it are dropouts naming Ray's exception, all in one round, never errors; the
    launcher then waits for Ray to declare the node dead and goes on from the last committed round in a new Flower
    run on the head node alone, which loses no more devices; every round commits once."""
    import sys

    import psutil

    root = Path(tempfile.mkdtemp(prefix="efray-", dir="/tmp"))
    out = tmp_path / "run"
    with LocalRayCluster(root) as local:
        local.start_node("head", head=True)
        local.start_node("worker", head=False)
        cmd = [str(Path(sys.executable).parent / "edgefleet"), "--quiet", "simulate", "--preset", "tiny", "--devices",
               "40", "--rounds", "5", "--cohort", "8", "--model", str(small_model), "--ray-address", local.address,
               "--set", "sim.round_timeout_s=120", "--out", str(out)]
        launcher = launch_until_committed(cmd, out)
        try:
            killed_after = committed(out)
            kill_tree(psutil.Process(local.starters[1].pid))
            output = launcher.communicate(timeout=600)[0].decode()
        finally:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait(30)
    shutil.rmtree(root, ignore_errors=True)
    assert launcher.returncode == 0, output[-3000:]
    assert killed_after < 5, "the run finished before the node was killed"
    results = Results(out)
    assert list(results.rounds()["round"]) == [1, 2, 3, 4, 5]
    devices = results.devices()
    assert not devices.duplicated(["round", "device"]).any()
    after = devices[devices["round"] > killed_after]
    assert "error" not in set(after["outcome"])
    lost = after[after["error"].fillna("").str.contains("ray.exceptions")]
    assert len(lost) >= 1 and set(lost["outcome"]) == {"dropout"} and lost["round"].nunique() == 1
    later = after[after["round"] > lost["round"].iloc[0]]
    assert len(later) and (later["outcome"] == "ok").any()
    assert json.loads((out / "summary.json").read_text())["restarts"] == 1
