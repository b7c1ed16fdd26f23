"""The CLI surface: every design subcommand is listed, errors are one line with a non-zero exit."""

import subprocess
import sys

import pytest

from edgefleet.cli import main

DESIGN_COMMANDS = ["teacher", "compress", "simulate", "stress", "dashboard", "bench", "demo"]


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
