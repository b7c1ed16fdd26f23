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


@pytest.mark.parametrize("argv", [
    ["simulate"], ["stress", "--out", "x"], ["dashboard"], ["bench", "sim"], ["bench", "privacy"],
])
def test_unbuilt_commands_say_so_and_fail(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "not built yet" in err and err.count("\n") == 1


def test_compress_on_missing_task_files_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compress", "--train", str(tmp_path / "a.csv"), "--valid", str(tmp_path / "b.csv"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"edgefleet: error: {tmp_path / 'a.csv'}: data file not found\n"
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--train", "--valid"])
def test_compress_needs_both_task_files(flag, tmp_path, capsys):
    code = main(["compress", flag, str(tmp_path / "a.csv"), "--out", str(tmp_path / "run")])
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



def test_text_task_refuses_the_recommendation_only_method(tmp_path, capsys):
    train, valid = tmp_path / "t.csv", tmp_path / "v.csv"
    for f in (train, valid):
        f.write_text("text,label\nsunny day,weather\nbake bread,cooking\n")
    code = main(["compress", "--train", str(train), "--valid", str(valid), "--out", str(tmp_path / "run"),
                 "--set", 'distill.method="xtremedistil"'])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'cross' or 'kd'" in err
    assert not (tmp_path / "run").exists()
