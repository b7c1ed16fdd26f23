"""The Launch page checks a run's settings with the config schema before anything starts; its arguments are built from
the fields only; its jobs are read from the world (their process, their run directory) and stopped by SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest

from dashboard import commands, jobs
from dashboard.commands import Launch
from edgefleet.config import load_config
from edgefleet.errors import ConfigError
from edgefleet.rundir import COMPRESSION_REPORT, MODEL, SIM_CONFIG, SUMMARY
from tests.dashboard.test_app import app


def launch_page(monkeypatch, root, command="simulate"):
    at = app(monkeypatch, root)
    at.sidebar.radio[0].set_value("Launch").run()
    if command != "simulate":
        at.radio(key="launch-command").set_value(command).run()
    assert not at.exception, at.exception
    return at


def start(at):
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, at.exception
    return at


def refused(root: Path, name: str) -> None:
    """Nothing started: no run directory, no job, no config file left behind."""
    assert not (root / name).exists()
    assert jobs.read(root) == []
    assert not commands.config_file(root, name).exists()


def cli_error(settings: list[str]) -> str:
    """What `edgefleet --preset tiny --set ...` itself says of these settings."""
    with pytest.raises(ConfigError) as err:
        load_config(None, "tiny", settings)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("field, value, settings", [
    ("Devices", 0, ["sim.devices=0"]),
    ("Cohort (devices per round)", 500, ["sim.cohort=500"]),  # more than the tiny preset's 200 devices
    ("DP clipping norm", -1.0, ["privacy.clip=-1.0"]),
])
def test_an_out_of_range_value_is_the_clis_one_line_error_and_nothing_starts(monkeypatch, runs_root, field, value,
                                                                               settings):
    at = launch_page(monkeypatch, runs_root)
    at.text_input(key="launch-name-simulate").set_value("sim-new")
    next(n for n in at.number_input if n.label == field).set_value(value)
    start(at)
    assert [e.value for e in at.error] == [cli_error(settings)]
    refused(runs_root, "sim-new")


def test_bad_toml_is_one_line_and_nothing_starts(monkeypatch, runs_root):
    at = launch_page(monkeypatch, runs_root)
    at.text_input(key="launch-name-simulate").set_value("sim-new")
    at.text_area(key="launch-toml-simulate").set_value("[sim\ndevices = 5")
    start(at)
    [error] = [e.value for e in at.error]
    assert error.startswith(f"config file {commands.config_file(runs_root, 'sim-new')} is not valid TOML: ")
    assert "\n" not in error
    refused(runs_root, "sim-new")
    at.text_area(key="launch-toml-simulate").set_value("[sim]\ndevicez = 5")
    start(at)
    assert [e.value for e in at.error] == ["unknown config key 'sim.devicez'"]
    refused(runs_root, "sim-new")


def test_an_existing_run_or_a_bad_name_is_refused(monkeypatch, runs_root):
    at = launch_page(monkeypatch, runs_root, "compress")
    at.text_input(key="launch-name-compress").set_value("sim-a")
    start(at)
    assert [e.value for e in at.error] == [f"{runs_root / 'sim-a'} exists: choose a new run name"]
    at.text_input(key="launch-name-compress").set_value("../elsewhere")
    start(at)
    assert "run name '../elsewhere'" in at.error[0].value
    assert jobs.read(runs_root) == []


def test_the_arguments_are_the_fields_as_config_overrides(tmp_path):
    model = tmp_path / "compress-a" / MODEL
    launch = Launch("simulate", "sim-b", "tiny", {"sim.devices": 20, "sim.rounds": None, "sim.model": model,
                                                 "sim.policy": "adaptive", "privacy.noise": 0.5,
                                                 "privacy.secagg": True, "privacy.adaptive": None})
    plan = commands.plan(tmp_path, launch)
    assert plan.args == ["--preset", "tiny", "--set", "sim.devices=20", "--set", f'sim.model="{model}"',
                         "--set", 'sim.policy="adaptive"', "--set", "privacy.noise=0.5", "--set",
                         "privacy.secagg=true"]
    assert plan.config.sim.devices == 20 and plan.config.sim.rounds == 2 and plan.config.privacy.secagg
    # A pasted TOML is the config file under the fields, as --config is under --set.
    toml = Launch("simulate", "sim-c", None, {"sim.rounds": 4}, '[sim]\nrounds = 9\ncohort = 3\n')
    plan = commands.plan(tmp_path, toml)
    assert plan.args == ["--config", str(commands.config_file(tmp_path, "sim-c")), "--set", "sim.rounds=4"]
    assert (plan.config.sim.rounds, plan.config.sim.cohort, plan.config.preset) == (4, 3, "default")
    with pytest.raises(ConfigError, match="stress takes the presets quick, full"):
        commands.plan(tmp_path, Launch("stress", "s", "tiny"))
    with pytest.raises(ConfigError, match="unknown command"):
        commands.plan(tmp_path, Launch("teacher", "t"))
    with pytest.raises(ConfigError, match="run name '-rf'"):
        commands.plan(tmp_path, Launch("compress", "-rf"))


def test_models_on_offer_are_the_artifacts_compress_wrote(tmp_path):
    for where in ("compress-a", "sim-a", "sim-a/compress"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / MODEL).write_bytes(b"x")
    for where in ("compress-a", "sim-a/compress"):
        (tmp_path / where / COMPRESSION_REPORT).write_text("{}")
    assert sorted(p.parent.relative_to(tmp_path) for p in commands.artifacts(tmp_path)) == \
        [Path("compress-a"), Path("sim-a/compress")]


def a_job(root: Path, argv: list[str], command="simulate", name="sim-x") -> jobs.Job:
    """A job record for a process the test started itself (jobs.start would start `edgefleet`)."""
    proc = subprocess.Popen(argv)
    (root / name).mkdir(parents=True)
    job = jobs.Job(name, command, argv, str(root / name), str(root / f"{name}.log"), proc.pid,
                   psutil.Process(proc.pid).create_time(), time.time(), rounds=3)
    (root / jobs.STATE_DIR).mkdir(exist_ok=True)
    (root / jobs.STATE_DIR / jobs.JOBS).write_text(json.dumps({"jobs": [asdict(job)]}))
    return job, proc


def test_stop_sends_sigterm_once_and_the_job_reads_as_stopped(tmp_path):
    job, proc = a_job(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    assert jobs.state(job) == "running" and jobs.read(tmp_path) == [job]
    stopped = jobs.stop(tmp_path, job.name)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert stopped.stop_asked and jobs.read(tmp_path) == [stopped]  # what another tab reads
    assert jobs.state(stopped) == "stopped"
    (tmp_path / job.name / SIM_CONFIG).write_text("{}")
    assert jobs.resumable(stopped)
    (tmp_path / job.name / SUMMARY).write_text("{}")
    assert jobs.state(stopped) == "finished" and not jobs.resumable(stopped)


def test_a_reused_pid_is_never_signalled(tmp_path):
    job, proc = a_job(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    other = jobs.Job(**{**asdict(job), "pid_started": job.pid_started - 100})  # the pid's earlier owner
    (tmp_path / jobs.STATE_DIR / jobs.JOBS).write_text(json.dumps({"jobs": [asdict(other)]}))
    try:
        assert not jobs.alive(other) and jobs.state(other) == "failed"
        jobs.stop(tmp_path, job.name)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_the_page_lists_jobs_with_progress_log_and_resume(monkeypatch, runs_root):
    job, proc = a_job(runs_root, [sys.executable, "-c", "pass"], name="sim-stopped")
    proc.wait()
    (runs_root / "sim-stopped" / SIM_CONFIG).write_text("{}")
    Path(job.log).write_text("edgefleet: interrupted after 0 committed round(s); ...\n")
    at = launch_page(monkeypatch, runs_root)
    shown = " ".join(m.value for m in at.markdown)
    assert "**sim-stopped**" in shown and "**stopped**" in shown  # by a Ctrl-C: the log's last line says so
    assert any("interrupted after 0 committed round(s)" in c.value for c in at.code)
    assert [b.label for b in at.button if b.label in ("Stop", "Resume")] == ["Resume"]


def test_a_jobs_log_lines_are_not_broken_at_80_columns(tmp_path):
    """Without a terminal rich wraps at 80 columns; a job's log is read in a box that wraps lines itself, so a
    progress line must arrive whole (the browser showed `... oom=0` and `dropout=1 straggler=0` on two lines)."""
    line = "federated rounds (40 devices, cohort 6): 2/12 42 s HR@10=0.325 ok=5 oom=0 dropout=1 straggler=0"
    log = tmp_path / "job.log"
    code = f"from rich.console import Console; Console(stderr=True).print({line!r})"
    pid, _ = jobs._spawn([sys.executable, "-c", code], log)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert log.read_text().splitlines() == [line]
