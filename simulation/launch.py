"""Run a Flower app on Flower's simulation engine (Ray backend) with every process and file inside the run directory.

`FlowerSim` starts a SuperLink in simulation mode on a free port, points a private FLWR_HOME at it, submits the app
with `flwr run` and follows the run. Flower's own launcher (`flwr run <app> local`) would start a SuperLink on a
fixed port that outlives the run and is shared between runs; starting it ourselves gives each run its own, lets two
runs coexist, and lets us stop exactly the processes we started: the SuperLink's whole tree, by pid, including any
descendant seen while the run went (Ray's processes detach into their own sessions).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Mapping

import psutil

from edgefleet.errors import EdgeFleetError
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import FLWR_HOME, LOGS, PIDS, TMP, atomic_write
from edgefleet.tasks.base import Metric
from simulation.certs import make_supernode_key, make_tls

APP_PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "1.0.0"

[tool.flwr.app]
publisher = "edgefleet"

[tool.flwr.app.components]
serverapp = "{serverapp}"
clientapp = "{clientapp}"

[tool.flwr.app.config]
run-dir = ""
data-dir = ""
expect-devices = 0
stop-on-lost-node = 0
"""


MAX_RAY_TMPDIR = 40


def _die_with_parent() -> None:
    """In the SuperLink's child process: get SIGTERM if the launcher dies, even by SIGKILL (Linux)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def terminate(procs: list[psutil.Process], grace_s: float = 10.0) -> None:
    """SIGTERM `procs`, then SIGKILL those still running after `grace_s`."""
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(procs, timeout=grace_s)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(still, timeout=5)


def tmp_link(run_dir: Path) -> Path | None:
    """Ray's temporary directory is reached through this short symlink when the run directory's path is too long:
    Ray's socket paths add ~66 characters and must stay under 108."""
    real = run_dir / TMP
    if len(str(real)) <= MAX_RAY_TMPDIR:
        return None
    return Path(tempfile.gettempdir()) / f"edgefleet-{hashlib.sha1(str(real).encode()).hexdigest()[:10]}"


def still_running(seen: Mapping[int | str, float]) -> list[psutil.Process]:
    """The processes of `seen` (pid -> start time) that still run: the same start time, not a recycled pid."""
    alive = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(int(pid))
            if p.create_time() == created:
                alive.append(p)
        except psutil.Error:
            pass
    return alive


def reap_leftovers(run_dir: Path) -> int:
    """Stop what an earlier launcher of this run directory started and could not stop (it was killed)."""
    link = tmp_link(run_dir)
    if link is not None and link.is_symlink():
        link.unlink()
    path = run_dir / LOGS / PIDS
    if not path.exists():
        return 0
    alive = still_running(json.loads(path.read_text()))
    terminate(alive)
    return len(alive)


class SimulationFailed(EdgeFleetError):
    """The Flower run ended in failure; the message says where its log is."""


def ended_early(status: str, committed: int, log: Path, resume: str) -> SimulationFailed:
    """The one line for a run that ended before its last round: what ended it, what is kept, how to go on."""
    what = "the SuperLink stopped" if status == "superlink-exited" else f"the Flower run ended with status {status!r}"
    return SimulationFailed(f"{what} after {committed} committed round(s), which are kept; see {log}; continue "
                            f"with: {resume}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def follow_rounds(sim: "FlowerSim", results: Results, reporter: Reporter, title: str, total: int, headline: Metric,
                  on_commit: Callable[[int], None] = lambda r: None, stop: Callable[[], bool] = lambda: False) -> str:
    """Follow a submitted run round by round on the reporter's progress bar, calling `on_commit` for each newly
    committed round, until it finished or `stop()` holds; returns Flower's last status."""
    with reporter.stage(title, total=total) as advance:
        shown = [results.completed_rounds()]
        if shown[0]:
            advance(shown[0])

        def tick() -> None:
            done = results.completed_rounds()
            if done > shown[0]:
                last = results.round_row(done)
                advance(done - shown[0], **{headline.label: float(last[headline.key])},
                        **{k: int(last[k]) for k in ("ok", "oom", "dropout", "straggler")})
                for r in range(shown[0] + 1, done + 1):
                    on_commit(r)
                shown[0] = done

        return sim.follow(lambda: results.finished() is not None or stop(), tick)


def write_app(app_dir: Path, name: str, serverapp: str, clientapp: str) -> Path:
    """A Flower app directory holding only its pyproject: the components live in the installed project."""
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "pyproject.toml").write_text(APP_PYPROJECT.format(name=name, serverapp=serverapp, clientapp=clientapp))
    return app_dir


class FlowerSim:
    """One SuperLink and one run; use as a context manager so that everything is stopped however it ends.

    With `supernodes` > 0 it is Flower's Deployment Engine instead: a SuperLink without `--simulation` and that many
    `flower-supernode` processes on this host (each runs the ClientApp in a subprocess per message); with
    `superlink` ("host:port", insecure) it joins that running SuperLink instead of starting one, and stops the run
    there (`flwr stop`) if it ends early, never the SuperLink itself. With `ray_address` the simulation engine joins
    that Ray cluster (simulation/cluster.py) instead of starting its own Ray: the workers are the cluster's, and the
    cluster stops them when the run ends.
    """

    def __init__(self, run_dir: Path, workers: int, supernodes: int = 0, ray_address: str | None = None,
                 superlink: str | None = None, device_dirs: list[Path] | None = None, tls: bool = False,
                 supernode_auth: bool = False, root_certificates: Path | None = None):
        self.run_dir = run_dir.resolve()
        self.workers = workers
        self.ray_address = ray_address
        self.n_supernodes = supernodes
        self.device_dirs = device_dirs  # SuperNode i holds the data of the device in device_dirs[i]
        # TLS (simulation/certs.py): the CA the SuperNodes and the `flwr` CLI verify the SuperLink with; made here for
        # a SuperLink started here, the owner's for one joined. With `supernode_auth` the SuperLink admits only the
        # SuperNodes whose keys were registered.
        self.tls, self.supernode_auth = tls, supernode_auth
        self.ca: Path | None = root_certificates
        self.deployed = supernodes > 0 or superlink is not None  # Flower's Deployment Engine, not its simulation
        self.supernodes: list[subprocess.Popen] = []
        self.home = self.run_dir / FLWR_HOME
        self.joined = superlink
        self.address = superlink or f"127.0.0.1:{_free_port()}"
        self.bin = Path(sys.executable).parent
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLWR_"))}
        short_tmp = self._short_tmp()
        self.env.update({
            "FLWR_HOME": str(self.home),
            "RAY_TMPDIR": str(short_tmp),  # Ray's socket paths must stay under ~107 characters
            "TMPDIR": str(short_tmp),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_TELEMETRY_ENABLED": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DEDUP_LOGS": "0",
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
        })
        if ray_address:  # Flower's `init-args` cannot carry an address; `ray.init()` reads this one
            self.env["RAY_ADDRESS"] = ray_address
        self.superlink: subprocess.Popen | None = None
        self.seen: dict[int, float] = {}  # pid -> create_time of every process of this run ever seen
        self.peak_rss = 0
        self.run_id: str | None = None
        self.last_status = ""  # what `follow` last returned

    def _short_tmp(self) -> Path:
        self.link = tmp_link(self.run_dir)  # created in __enter__, removed by `stop`
        return self.link or self.run_dir / TMP

    def __enter__(self) -> "FlowerSim":
        reap_leftovers(self.run_dir)
        for d in (self.home, self.run_dir / TMP, self.run_dir / LOGS):
            d.mkdir(parents=True, exist_ok=True)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            self.link.symlink_to(self.run_dir / TMP, target_is_directory=True)
        if self.joined is None:
            # The SuperLink's state belongs to one launch: a resumed run submits a new Flower run, and the database
            # of a launch that was killed would list its dead SuperNodes as connected.
            for stale in self.home.glob("state.db*"):
                stale.unlink()
            host, port = self.address.rsplit(":", 1)
            security = ["--insecure"]
            if self.tls:
                files = make_tls(self.home / "certs", [host, "localhost"])
                self.ca = files.ca
                security = ["--ssl-ca-certfile", str(files.ca), "--ssl-certfile", str(files.cert), "--ssl-keyfile",
                            str(files.key), *(["--enable-supernode-auth"] if self.supernode_auth else [])]
            self.superlink = self._spawn("superlink", [
                "flower-superlink", *security, *([] if self.deployed else ["--simulation"]), "--isolation",
                "subprocess", "--host", host, "--port", port, "--database", str(self.home / "state.db"),
                "--log-file", str(self.run_dir / LOGS / "superlink.log"), "--disable-runtime-dependency-installation"])
        deadline = time.monotonic() + 60
        while not self._healthy():
            if (self.superlink is not None and self.superlink.poll() is not None) or time.monotonic() > deadline:
                raise SimulationFailed(f"the Flower SuperLink at {self.address} did not answer"
                                       + ("" if self.joined else f"; see {self.run_dir / 'logs'}"))
            time.sleep(0.2)
        connection = f"root-certificates = {json.dumps(str(self.ca))}" if self.ca else "insecure = true"
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "edgefleet"\n\n[superlink.edgefleet]\naddress = "{self.address}"\n'
            f"{connection}\n")
        # Each names its partition as Flower's examples do (or its device's own directory), and itself
        # (`supernode`) for the device rows.
        for i in range(self.n_supernodes):
            data = (f"device-dir={json.dumps(str(self.device_dirs[i]))}" if self.device_dirs else
                    f"partition-id={i} num-partitions={self.n_supernodes}")
            security = ["--root-certificates", str(self.ca)] if self.ca else ["--insecure"]
            if self.supernode_auth:
                security += ["--auth-supernode-private-key", str(self._register(f"supernode-{i}"))]
            self.supernodes.append(self._spawn(f"supernode-{i}", [
                "flower-supernode", *security, "--superlink", self.address, "--isolation",
                "subprocess", "--host", "127.0.0.1", "--port", str(_free_port()),
                "--node-config", f"{data} supernode={i}"]))
        return self

    def _register(self, name: str) -> Path:
        """A key pair for one SuperNode, its public key registered with the SuperLink; returns the private key."""
        private, public = make_supernode_key(self.home / "keys", name)
        done = self._cli("supernode", "register", str(public), "edgefleet", "--name", name)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise SimulationFailed(f"flwr supernode register {name} failed: {lines[-1] if lines else 'no answer'}")
        return private

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.run_dir / LOGS / f"{name}.out", "ab") as log:
            proc = subprocess.Popen([str(self.bin / argv[0]), *argv[1:]], env=self.env, cwd=self.run_dir, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self._track(extra=[proc])
        return proc

    def _healthy(self) -> bool:
        scheme, context = ("https", ssl.create_default_context(cafile=str(self.ca))) if self.ca else ("http", None)
        try:
            with urllib.request.urlopen(f"{scheme}://{self.address}/health", timeout=1, context=context) as r:
                return r.status == 200
        except OSError:
            return False

    def _cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "flwr"), *args], env=self.env, cwd=self.run_dir, capture_output=True,
                              text=True, timeout=timeout)

    def submit(self, app_dir: Path, supernodes: int, run_config: dict[str, str]) -> str:
        overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
        # Joining a cluster, Ray refuses `num_cpus`: the cluster's CPUs decide how many workers run.
        cpus = "" if self.ray_address else f" init-args-num-cpus={self.workers}"
        federation = [] if self.deployed else [
            "--federation-config", f"num-supernodes={supernodes} client-resources-num-cpus=1{cpus}"]
        done = self._cli("run", str(app_dir.resolve()), "edgefleet", "--format", "json", "--run-config", overrides,
                         *federation)
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            answer = {"error-message": done.stderr or done.stdout}
        if not answer.get("success"):
            lines = str(answer.get("error-message", "")).strip().splitlines()
            raise SimulationFailed(f"flwr run failed: {lines[-1] if lines else 'no answer'}")
        self.run_id = str(answer["run-id"])
        return self.run_id

    def status(self) -> str:
        """Flower's status of the run, e.g. 'running' or 'finished:completed' / 'finished:failed'."""
        done = self._cli("ls", "edgefleet", "--run-id", str(self.run_id), "--format", "json", timeout=60)
        try:
            return str(json.loads(done.stdout)["runs"][0]["status"])
        except (ValueError, KeyError, IndexError):
            return "unknown"

    def save_log(self) -> Path:
        path = self.run_dir / LOGS / "flower-run.log"
        try:
            done = self._cli("log", str(self.run_id), "edgefleet", "--show", timeout=60)
            path.write_text(done.stdout + done.stderr)
        except subprocess.TimeoutExpired:
            pass
        return path

    def _track(self, extra: list[subprocess.Popen] = ()) -> int:
        """Remember every process of this run and return the tree's RSS (launcher included)."""
        procs = [psutil.Process()]
        for started in [self.superlink, *self.supernodes, *extra]:
            if started is None:
                continue
            try:
                root = psutil.Process(started.pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        rss, known = 0, len(self.seen)
        for p in procs:
            try:
                if p.pid != os.getpid():
                    self.seen.setdefault(p.pid, p.create_time())
                rss += p.memory_info().rss
            except psutil.Error:
                pass
        if len(self.seen) > known:  # so that a later launcher can stop them if this one is killed
            path = self.run_dir / LOGS / PIDS
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(self.seen)))
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def follow(self, until: Callable[[], bool], on_tick: Callable[[], None], poll_s: float = 0.5,
               status_every_s: float = 10.0, status_at_most_s: float = 60.0) -> str:
        """Poll until `until()` holds or Flower says the run finished; returns Flower's last status.

        Asking Flower starts a `flwr` process (about a CPU-second, taken from the run on a small host), so the wait
        between two questions doubles from `status_every_s` to `status_at_most_s`: a run that fails at its start
        is seen within seconds, one that fails later within a minute."""
        asked_at, wait_s = time.monotonic(), status_every_s
        status = "running"
        while True:
            self._track()
            on_tick()
            if until():
                status = "finished:completed"
            elif self.superlink is not None and self.superlink.poll() is not None:
                status = "superlink-exited"
            elif time.monotonic() - asked_at > wait_s:
                status, asked_at = self.status(), time.monotonic()
                wait_s = min(2 * wait_s, max(status_at_most_s, status_every_s))
            if status.startswith("finished") or status == "superlink-exited":
                self.last_status = status
                return status
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM every process of the run (the SuperLink first, so it stops launching), then SIGKILL leftovers.
        A second Ctrl-C while this runs is ignored: stopping half-way would leave processes behind."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._track()
            if self.joined and self.run_id is not None and not self.last_status.startswith("finished"):
                try:  # the SuperLink is not ours to stop, the run is
                    self._cli("stop", self.run_id, "edgefleet", timeout=60)
                except subprocess.TimeoutExpired:
                    pass
            if self.superlink is not None and self.superlink.poll() is None:
                self.superlink.send_signal(signal.SIGTERM)
            terminate(still_running(self.seen))
            if self.superlink is not None:
                try:
                    self.superlink.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.superlink.kill()
            if self.link is not None and self.link.is_symlink():
                self.link.unlink()
        finally:
            signal.signal(signal.SIGINT, previous)
