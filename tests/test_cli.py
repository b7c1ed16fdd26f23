"""The CLI surface: every design subcommand is listed, errors are one line with a non-zero exit."""

import subprocess
import sys

import pytest

from edgefleet.cli import main
from tests.conftest import cache_copy

DESIGN_COMMANDS = ["teacher", "compress", "simulate", "deploy", "stress", "dashboard", "bench", "demo"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name in DESIGN_COMMANDS:
        assert name in text


@pytest.mark.parametrize("extra, message", [
    (["--dp-noise", "-1"], "privacy.noise"),
    (["--dp-noise", "1", "--dp-clip", "0"], "privacy.clip"),
    (["--dp-adaptive"], "privacy.adaptive clipping is part of DP"),
    (["--secagg", "--set", "sim.update_bits=8"], "quantizes updates itself"),
    (["--secagg", "--cohort", "2", "--devices", "10"], "cohort of at least 3"),
])
def test_bad_privacy_settings_exit_2_with_one_line(extra, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["simulate", "--preset", "tiny", *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--local", "2", "--cohort", "3"], "give --cohort 2 or --local 3"),
    (["--cohort", "3"], "start at least one SuperNode"),
    (["--superlink", "http://host:9092", "--cohort", "3"], "give the SuperLink's HOST:PORT"),
])
def test_deploy_that_cannot_run_exits_2_with_one_line(extra, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["deploy", "--preset", "tiny", *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_compress_on_missing_task_files_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compress", "--train", str(tmp_path / "a.csv"), "--valid", str(tmp_path / "b.csv"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"edgefleet: error: {tmp_path / 'a.csv'}: data file not found\n"
    assert not out.exists()


def test_compress_valid_without_train_is_one_line(tmp_path, capsys):
    code = main(["compress", "--valid", str(tmp_path / "a.csv"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--train" in err and "--valid" in err


def test_bad_config_key_exits_2_with_one_line(tmp_path, capsys):
    code = main(["teacher", "--out", str(tmp_path / "run"), "--set", "teacher.epochz=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "edgefleet: error: unknown config key 'teacher.epochz'\n"
    assert not (tmp_path / "run").exists()


def test_usage_error_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "edgefleet", "teacher"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--out" in proc.stderr


def test_finished_run_is_never_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    report = run / "teacher_report.json"
    report.write_text('{"kept": true}')
    code = main(["teacher", "--preset", "tiny", "--out", str(run)])
    assert code == 2
    assert "finished" in capsys.readouterr().err
    assert report.read_text() == '{"kept": true}'



def test_text_task_without_test_rows_is_refused_and_leaves_no_run(tmp_path, capsys):
    train, valid = tmp_path / "t.csv", tmp_path / "v.csv"
    for f in (train, valid):
        f.write_text("text,label\nsunny day,weather\nbake bread,cooking\n")
    code = main(["--quiet", "compress", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "run"),
                 "--set", "task.test_fraction=0"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("edgefleet: error: no test rows")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["simulate"], "simulate needs --out DIR"),
    (["simulate", "--out", "{tmp}/r", "--devices", "10", "--cohort", "20"], "sim.cohort (20) cannot exceed"),
    (["simulate", "--out", "{tmp}/r", "--devices", "0"], "config value 'sim.devices'"),
    (["simulate", "--resume", "{tmp}/nothing"], "not a simulation run directory"),
    (["simulate", "--resume", "{tmp}/r", "--devices", "5"], "--resume DIR takes its config from DIR"),
    (["simulate", "--out", "{tmp}/r", "--set", 'sim.population="{tmp}/p.csv"', "--model", "{tmp}/m.eflt"],
     "population file {tmp}/p.csv lacks column(s): dropout"),
    (["simulate", "--out", "{tmp}/r", "--model", "{tmp}/m.eflt"], "{tmp}/m.eflt"),
])
def test_simulate_bad_input_is_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "p.csv").write_text("tier,budget_bytes,cpu_factor,down_bps,up_bps,availability\nx,1,1,1,1,1\n")
    (tmp_path / "m.eflt").write_bytes(b"not a model")
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "sim_config.json").exists()


def test_dashboard_bad_input_is_one_line(tmp_path, capsys):
    assert main(["dashboard", "--runs", str(tmp_path / "none")]) == 2
    assert main(["dashboard", "--runs", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "no such directory" in err and "not a TCP port" in err and err.count("\n") == 2


def test_a_simulation_that_fails_in_preparation_leaves_no_run_directory(tmp_path, capsys):
    bad = tmp_path / "profiles.csv"
    bad.write_text("tier,budget_bytes\nram-2gb,1\n")
    out = tmp_path / "run"
    code = main(["--quiet", "simulate", "--preset", "tiny", "--set", f'sim.population="{bad}"', "--out", str(out)])
    assert code == 2 and "lacks column(s)" in capsys.readouterr().err
    assert not out.exists()


def test_demo_refuses_a_bad_setting_before_it_makes_a_run_directory(tmp_path, capsys):
    assert main(["--quiet", "demo", "--runs", str(tmp_path), "--set", "sim.cohort=0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_plain_demo_is_the_quick_build_labelled_so(tmp_path, capsys, monkeypatch):
    """No jobs run here: the three steps are stubbed; what is checked is the build chosen and how it is named."""
    from edgefleet import cli

    seen = {}
    monkeypatch.setattr(cli, "cmd_teacher", lambda args: seen.setdefault("teacher", cli._load(args)))
    monkeypatch.setattr(cli, "cmd_compress", lambda args: seen.setdefault("compress", cli._load(args)))
    monkeypatch.setattr(cli, "_simulate", lambda cfg, out, reporter: seen.setdefault("simulate", (cfg, out)) and 0)
    earlier = tmp_path / "demo-quick-earlier"
    earlier.mkdir()
    assert main(["--quiet", "demo", "--runs", str(tmp_path)]) == 0
    assert seen["teacher"].preset == seen["compress"].preset == seen["simulate"][0].preset == "demo"
    sim_cfg, sim_out = seen["simulate"]
    run = sim_out.parent
    assert run.parent == tmp_path and run.name.startswith("demo-quick-") and run != earlier
    assert sim_cfg.sim.model == run / "model.eflt"
    out = capsys.readouterr().out
    assert out.count("[quick build]") == 3 and "make demo FULL=1" in out
    assert list(earlier.iterdir()) == []


def test_the_quick_build_says_what_the_full_build_changes():
    import tomllib

    from edgefleet.cli import _full_build_note
    from edgefleet.config import CONFIGS, load_config

    note = _full_build_note(load_config(None, "demo"))
    assert "make demo FULL=1" in note and "--preset default" in note
    changed = tomllib.loads((CONFIGS / "demo.toml").read_text())
    for section, values in changed.items():
        for key in values:
            assert f"{section}.{key} " in note
    assert "distill.ablation false -> true" in note
    assert "student." not in note and "privacy." not in note  # the demo keeps them as the full build has them


def test_a_demo_stopped_midway_leaves_no_run_directory(tmp_path, monkeypatch):
    from edgefleet import cli

    def teacher(args):
        args.out.mkdir(parents=True)
        (args.out / "teacher_report.json").write_text("{}")

    def stopped(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_teacher", teacher)
    monkeypatch.setattr(cli, "cmd_compress", stopped)
    assert main(["--quiet", "demo", "--runs", str(tmp_path)]) != 0
    assert list(tmp_path.iterdir()) == []


def test_two_demos_in_the_same_second_get_two_run_directories(tmp_path):
    from edgefleet.cli import _new_dir

    first = _new_dir(tmp_path, "demo-quick-20260101-000000")
    first.mkdir()
    second = _new_dir(tmp_path, "demo-quick-20260101-000000")
    assert second.name == "demo-quick-20260101-000000-2" and not second.exists()


@pytest.mark.slow
def test_demo_end_to_end_on_the_tiny_build(tiny_build, tmp_path, capsys):
    """Teacher, compression and a federated simulation of that model, into one new run directory (the models
    trained once, by the session's tiny build: a copy of its cache)."""
    cache = cache_copy(tiny_build, tmp_path / "artifacts")
    runs = tmp_path / "runs"
    assert main(["--quiet", "demo", "--preset", "tiny", "--runs", str(runs), "--set", cache]) == 0
    (run,) = runs.iterdir()
    assert run.name.startswith("demo-tiny-")
    for report in ("teacher_report.json", "compression_report.json", "model.eflt", "sim/summary.json"):
        assert (run / report).is_file(), report
    out = capsys.readouterr().out
    assert "[tiny build] 3/3" in out and f"dashboard --runs {run}" in out and "make demo FULL=1" in out
