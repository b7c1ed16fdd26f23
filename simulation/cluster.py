"""Flower's simulation engine on an existing Ray cluster (`sim.ray_address`), and the directory its workers read.

Flower's Ray backend passes its `init-args` to `ray.init`, but the federation config of Flower 1.41 carries only
`num-cpus`, `num-gpus`, the logging level and log-to-driver there, not an address. `ray.init()` without an address
reads `RAY_ADDRESS`, so the launcher sets it in the SuperLink's environment (simulation/launch.py) and gives no
`num-cpus` (Ray refuses it when joining a cluster): the cluster's CPUs decide how many workers run at once.

Every worker reads the model, the fleet and the run's config, and keeps the devices' own storage, in one directory
that every node must see at the same path: the run directory itself (one host, or a run directory on a shared
mount), or, with `sim.shared_dir`, a copy of what workers need in a folder of that shared mount, while the results
stay in the run directory on the launcher's host. Devices move between nodes from round to round, so their storage
must be shared too: copying the inputs to each node would not be enough.

Before a run, `check_cluster` joins the cluster from a child process (so that Ray's signal handlers and threads
never enter the launcher) and asks every alive node to read a token the launcher has just written into that
directory: a bad address, or a node that does not see the directory, is one line of error before anything starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from edgefleet.config import Config
from edgefleet.errors import EdgeFleetError
from edgefleet.rundir import FLEET_DIR, MODEL, SIM_CONFIG, TMP, VARIANTS_DIR

# What a worker reads from the directory (client/worker.py); it writes the devices' storage beside them.
WORKER_INPUTS = (SIM_CONFIG, MODEL, FLEET_DIR, VARIANTS_DIR)
PROBE_TIMEOUT_S = 180


class ClusterError(EdgeFleetError):
    """The Ray cluster cannot be reached, or one of its nodes does not see the run's data."""


def data_dir(cfg: Config, run_dir: Path) -> Path | None:
    """The folder of `sim.shared_dir` that holds this run's worker inputs; None: the workers read the run directory.
    Named after the run directory's path, so a resumed run finds its devices' storage again."""
    if cfg.sim.shared_dir is None:
        return None
    shared = Path(cfg.sim.shared_dir).resolve()
    if not shared.is_dir():
        raise ClusterError(f"sim.shared_dir {shared}: no such directory here (mount it on this host and every node)")
    key = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:10]
    folder = shared / f"edgefleet-{run_dir.name}-{key}"
    folder.mkdir(exist_ok=True)
    return folder


def ship(run_dir: Path, dest: Path) -> None:
    """Copy what workers read into `dest` (again on a resume: the same files); the devices' storage there stays."""
    for name in WORKER_INPUTS:
        src = run_dir / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / name)


def check_cluster(address: str, directory: Path, run_dir: Path) -> list[dict]:
    """Every alive node of the cluster at `address` reads and can write `directory`; returns the nodes, else raises
    ClusterError with the reason in one line."""
    host, _, port = address.rpartition(":")
    try:  # Ray itself retries an unreachable address for minutes
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise ClusterError(f"sim.ray_address {address}: nothing answers there ({exc.strerror or exc}); give the "
                           "address `ray start --head` printed")
    (run_dir / TMP).mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLWR_"))}
    env.update(RAY_TMPDIR=str(run_dir / TMP), RAY_USAGE_STATS_ENABLED="0")
    fd, token_path = tempfile.mkstemp(prefix=".probe-", dir=directory)
    token = secrets.token_hex(16)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    try:
        done = subprocess.run([sys.executable, "-m", "simulation.cluster", address, token_path, token], env=env,
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"sim.ray_address {address}: no answer from the cluster within {PROBE_TIMEOUT_S} s")
    finally:
        os.unlink(token_path)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ClusterError(lines[-1] if lines else f"sim.ray_address {address}: the cluster check failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alive_nodes(address: str, run_dir: Path) -> int | None:
    """How many nodes of the cluster Ray holds alive now (asked from a child process); None: no answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLWR_"))}
    env.update(RAY_TMPDIR=str(run_dir / TMP), RAY_USAGE_STATS_ENABLED="0")
    try:
        done = subprocess.run([sys.executable, "-m", "simulation.cluster", "--alive", address], env=env,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def wait_for_fewer_nodes(address: str, before: int, run_dir: Path, timeout_s: float = 180) -> None:
    """Wait until Ray has declared a node of the `before` alive ones dead (its health checks take seconds to tens of
    seconds), so that a new Flower run does not count that node's CPUs; at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = alive_nodes(address, run_dir)
        if alive is not None and alive < before:
            return
        time.sleep(2.0)


def _count_alive(address: str) -> int:
    import ray

    ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    return sum(1 for n in ray.nodes() if n["Alive"])


def _probe(address: str, token_path: str, token: str) -> list[dict]:
    """In the child process: join the cluster and look for the token on every alive node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # ConnectionError, ValueError, ...: all mean the same to the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"sim.ray_address {address}: cannot join a Ray cluster there ({reason})")

    def look(path: str, expected: str) -> dict:
        import os
        import socket

        try:
            with open(path) as f:
                seen = f.read() == expected
        except OSError:
            seen = False
        return {"host": socket.gethostname(), "sees": seen, "writes": os.access(os.path.dirname(path), os.W_OK)}

    remote = ray.remote(num_cpus=0)(look)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    answers = ray.get([remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                       .remote(token_path, token) for n in nodes], timeout=PROBE_TIMEOUT_S - 30)
    found = [{"node": n["NodeID"], "ip": n["NodeManagerAddress"], "cpus": n["Resources"].get("CPU", 0), **a}
             for n, a in zip(nodes, answers)]
    blind = [f"{n['host']} ({n['ip']})" for n in found if not (n["sees"] and n["writes"])]
    if blind:
        where = os.path.dirname(token_path)
        raise SystemExit(f"sim.ray_address {address}: node {', '.join(blind)} cannot read and write {where}; "
                         "name a directory every node mounts with sim.shared_dir")
    if not sum(n["cpus"] for n in found):
        raise SystemExit(f"sim.ray_address {address}: the cluster has no CPUs for workers")
    return found


if __name__ == "__main__":
    print(_count_alive(sys.argv[2]) if sys.argv[1] == "--alive" else json.dumps(_probe(*sys.argv[1:4])))


class LocalRayCluster:
    """Ray nodes started on this host (`ray start --block`, one CPU each, in their own temporary directory), for
    `bench scale` and the cluster tests. Every process they start is remembered by pid and start time, and `stop`
    ends exactly those: never a process by name, never another cluster's."""

    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLWR_"))}
        self.env.update(RAY_TMPDIR=str(root), TMPDIR=str(root), RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1",
                        OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        self.starters: list[subprocess.Popen] = []
        self.seen: dict[int, float] = {}

    def __enter__(self) -> "LocalRayCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start_node(self, name: str, head: bool, timeout_s: float = 180) -> None:
        """Start the head (first) or one more worker node, and wait until Ray says it runs."""
        ray = str(Path(sys.executable).parent / "ray")
        where = ["--head", "--port", str(self.port), "--temp-dir", str(self.root), "--include-dashboard", "false",
                 "--ray-client-server-port", str(_free_port())] if head else ["--address", self.address]
        out = self.root / f"{name}.out"
        with open(out, "wb") as log:
            self.starters.append(subprocess.Popen(
                [ray, "start", "--block", *where, "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                 "--dashboard-agent-listen-port", str(_free_port()), "--disable-usage-stats"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + timeout_s
        while b"Ray runtime started" not in out.read_bytes():
            self.track()
            if self.starters[-1].poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ClusterError(f"the local Ray node {name!r} did not start: {out.read_text()[-500:]}")
            time.sleep(0.5)
        self.track()

    def track(self) -> None:
        """Remember every process the `ray start` commands have started so far."""
        for starter in self.starters:
            try:
                root = psutil.Process(starter.pid)
                for p in [root, *root.children(recursive=True)]:
                    self.seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                pass

    def mine(self) -> list[psutil.Process]:
        from simulation.launch import still_running

        return still_running(self.seen)

    def stop(self) -> None:
        """SIGTERM what the nodes started, then SIGKILL what is left after 20 s."""
        from simulation.launch import terminate

        self.track()
        terminate(self.mine(), grace_s=20)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
