"""End to end on the real MovieLens-100K and the real all-MiniLM-L6-v2 (tiny preset: a few steps)."""

import json

import pytest

from edgefleet.cli import main

pytestmark = pytest.mark.slow


def test_teacher_command_on_real_data(tmp_path, capsys):
    out = tmp_path / "run"
    artifacts = tmp_path / "artifacts"
    argv = ["--quiet", "teacher", "--preset", "tiny", "--out", str(out), "--set", f'artifacts_dir="{artifacts}"']
    assert main(argv) == 0
    report = json.loads((out / "teacher_report.json").read_text())

    proto = report["protocol"]
    assert (proto["users"], proto["items"], proto["interactions"]) == (943, 1682, 100000)
    assert proto["server_users"] == 94 and proto["device_users"] == 849
    assert proto["negatives"] == 99 and proto["evaluated_on"]["users"] == 120
    for name, m in [("teacher", report["teacher"]), *report["baselines"].items()]:
        for key in ("hr@10", "ndcg@10", "mrr"):
            assert 0.0 <= m[key] <= 1.0, (name, key)
            assert 0.0 <= m["full"][key] <= m[key] + 1e-9, (name, key)  # 1681 candidates rank no easier than 100
        assert m["ndcg@10"] <= m["hr@10"]
    assert set(report["baselines"]) == {"popularity", "itemknn", "bpr_mf", "minilm_zero_shot"}
    assert report["teacher"]["params"] > 22_000_000  # the real MiniLM, not a stand-in
    assert report["teacher"]["cached"] is False
    assert "HR@10" in capsys.readouterr().out

    # A second run with the same config reuses the cached teacher and reproduces its figures exactly.
    again = tmp_path / "run2"
    assert main(["--quiet", "teacher", "--preset", "tiny", "--out", str(again),
                 "--set", f'artifacts_dir="{artifacts}"']) == 0
    second = json.loads((again / "teacher_report.json").read_text())
    assert second["teacher"]["cached"] is True
    assert second["teacher"]["hr@10"] == report["teacher"]["hr@10"]
    assert second["baselines"]["popularity"]["hr@10"] == report["baselines"]["popularity"]["hr@10"]
