"""`edgefleet compress --preset tiny` end to end on the real data and MiniLM; the artifact it writes is verified."""

import json

import pytest

from compression.runtime.model import DeviceModel
from edgefleet.cli import main
from tests.conftest import cache_copy

pytestmark = pytest.mark.slow


def test_compress_report_artifact_and_corruption(tiny_build, tmp_path, capsys):
    """The session's tiny build (tests/conftest.py: compress on an empty cache), then compress again on its cache."""
    out = tiny_build[0]
    report = json.loads((out / "compression_report.json").read_text())
    assert any(s["name"].startswith("teacher epoch") for s in report["stages"])  # it trained: on an empty cache
    for key in ("artifact_bytes", "artifact_path", "teacher", "student", "retention", "size_breakdown", "stages"):
        assert key in report
    for side in ("teacher", "student"):
        for key in ("hr@10", "ndcg@10", "latency_ms_b1", "params"):
            assert report[side][key] > 0, (side, key)
    assert report["student"]["peak_mem_bytes"] > 0
    assert set(report["retention"]) >= {"hr@10", "ndcg@10", "speedup_b1"}
    assert report["retention"]["hr@10"] == pytest.approx(report["student"]["hr@10"] / report["teacher"]["hr@10"])
    assert sum(report["size_breakdown"].values()) == report["artifact_bytes"]
    assert report["artifact_bytes"] < 1_910_000
    assert report["student"]["params"] < report["teacher"]["params"] / 20
    assert set(report["ablation"]) == {"bert/cross", "bert/kd", "bilstm/xtremedistil"}
    assert set(report["quantization"]) == {"int8", "int4"}
    assert report["quantization"]["int4"]["weight_bytes"] < report["quantization"]["int8"]["weight_bytes"]
    assert report["vocab"]["kept"] < 30522 and report["vocab"]["unk_rate"] == 0.0
    assert all(s["seconds"] >= 0 for s in report["stages"])

    # The runtime loads the artifact without torch models and ranks for a user.
    model = DeviceModel.load(out / "model.eflt")
    items, prior = model.item_vectors(["Toy Story (1995) Animation Children's Comedy", "Heat (1995) Action Crime"])
    assert items.shape == (2, report["config"]["teacher"]["dim"])

    # A corrupted copy is refused with one line.
    bad = tmp_path / "bad.eflt"
    data = bytearray((out / "model.eflt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(Exception, match="SHA-256") as err:
        DeviceModel.load(bad)
    assert "\n" not in str(err.value)

    # A second run reuses the cached teacher and students (no training) and measures afresh.
    cache = cache_copy(tiny_build, tmp_path / "artifacts")
    again = tmp_path / "run2"
    capsys.readouterr()
    assert main(["--quiet", "compress", "--preset", "tiny", "--out", str(again), "--set", cache]) == 0
    assert "speedup" in capsys.readouterr().out
    second = json.loads((again / "compression_report.json").read_text())
    assert second["student"]["hr@10"] == report["student"]["hr@10"]
    assert not any("epoch" in s["name"] for s in second["stages"] if "QAT" not in s["name"])

    # distill.deploy = "best" ships the variant with the best validation HR@10 among those whose artifact fits the
    # budget: one byte under the configured BERT's artifact leaves both BERTs out.
    best = tmp_path / "run3"
    budget = report["artifact_bytes"] - 1
    assert main(["--quiet", "compress", "--preset", "tiny", "--out", str(best), "--set", cache,
                 "--set", 'distill.deploy="best"', "--set", f"distill.deploy_max_bytes={budget}"]) == 0
    third = json.loads((best / "compression_report.json").read_text())
    chosen, candidates = third["deployment"]["chosen"], third["deployment"]["candidates"]
    assert set(candidates) == set(report["ablation"])
    assert not candidates["bert/cross"]["fits"] and not candidates["bert/kd"]["fits"]
    fits = {n: c["valid_hr@10"] for n, c in candidates.items() if c["fits"]}
    if fits:
        assert chosen in fits and fits[chosen] == max(fits.values()) and third["deployment"]["fits_budget"]
    else:
        assert chosen == min(candidates, key=lambda n: candidates[n]["artifact_bytes"])
    assert third["student"]["variant"] == chosen
    assert third["artifact_bytes"] == candidates[chosen]["artifact_bytes"] == (best / "model.eflt").stat().st_size
    assert DeviceModel.load(best / "model.eflt").config["student"]["kind"] == chosen.split("/")[0]
    assert not any("epoch" in s["name"] for s in third["stages"] if "QAT" not in s["name"])
