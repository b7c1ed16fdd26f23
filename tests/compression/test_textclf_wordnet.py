"""`compress --train --valid --test --unlabeled` on real data (WordNet definitions by topic, from Debian's
wordnet-base) at the tiny preset: the report has the recommender's keys and the task's metrics, and every student
figure is what the device runtime computes on the artifact."""

import json

import numpy as np
import pandas as pd
import pytest

from compression.runtime import load_model
from compression.runtime.artifact import read_artifact
from edgefleet.cli import main
from edgefleet.rundir import COMPRESSION_REPORT, MODEL
from edgefleet.tasks.textclf.corpora import write_corpus
from edgefleet.tasks.textclf.evaluate import macro_f1

pytestmark = pytest.mark.slow


def test_compress_wordnet_every_student_figure_from_the_runtime(tmp_path, capsys):
    data = tmp_path / "wordnet"
    write_corpus("wordnet", data, per_class=40, seed=0, valid_fraction=0.15, test_fraction=0.15)
    other = tmp_path / "other"  # definitions of another seed: some are this seed's test texts and must stay out
    write_corpus("wordnet", other, per_class=40, seed=1, valid_fraction=0.15, test_fraction=0.15)
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(pd.read_csv(other / "train.csv")["text"]) + "\n")
    out = tmp_path / "run"
    code = main(["--quiet", "compress", "--preset", "tiny", *(f"--{p}={data / f'{p}.csv'}" for p in
                                                              ("train", "valid", "test")),
                 f"--unlabeled={unlabeled}", "--out", str(out), "--set", f'artifacts_dir="{tmp_path / "cache"}"'])
    assert code == 0
    assert "retention accuracy" in capsys.readouterr().out
    report = json.loads((out / COMPRESSION_REPORT).read_text())
    for key in ("artifact_bytes", "artifact_path", "teacher", "student", "retention", "speedup_b1", "size_breakdown",
                "stages", "ablation", "quantization", "transfer_set", "evaluated_on", "rows", "labels", "config"):
        assert key in report, key
    t, s, r = report["teacher"], report["student"], report["retention"]
    for figures in (t, s):
        assert {"accuracy", "macro_f1", "latency_ms_b1", "params"} <= set(figures)
    assert s["peak_mem_bytes"] > 0 and s["evaluated_with"] == "device runtime on the artifact"
    assert report["rows"]["test"] == 60 and report["evaluated_on"].startswith("the 60 test rows")

    test = pd.read_csv(data / "test.csv")
    model = load_model(read_artifact(out / MODEL))
    predicted = model.predict(list(test["text"]))
    assert s["accuracy"] == pytest.approx(float(np.mean(np.array(predicted) == test["label"].to_numpy())))
    index = {label: i for i, label in enumerate(model.labels)}
    assert s["macro_f1"] == pytest.approx(macro_f1(test["label"].map(index).to_numpy(),
                                                   np.array([index[p] for p in predicted]), len(index)))
    assert r["accuracy"] == pytest.approx(s["accuracy"] / t["accuracy"])
    assert r["macro_f1"] == pytest.approx(s["macro_f1"] / t["macro_f1"])
    assert r["speedup_b1"] == report["speedup_b1"] == pytest.approx(t["latency_ms_b1"] / s["latency_ms_b1"])
    assert report["artifact_bytes"] == (out / MODEL).stat().st_size == sum(report["size_breakdown"].values())
    assert t["accuracy"] > 0.5  # ten classes: chance is 0.1

    assert set(report["ablation"]) == {"bert/cross", "bert/kd", "bilstm/xtremedistil"}
    assert report["ablation"]["bert/cross"]["deployed"]["accuracy"] == s["accuracy"]
    budgets = {v["budget"]["task_steps"] for v in report["ablation"].values()}
    assert len(budgets) == 1 or report["config"]["distill"]["epochs"] == 1  # equal budget from two epochs up
    assert set(report["quantization"]) == {"int8", "int4"}
    assert report["quantization"]["int4"]["artifact_bytes"] < report["artifact_bytes"]
    transfer = report["transfer_set"]
    assert transfer["unlabeled"] > 0 and transfer["texts"] == transfer["train"] + transfer["unlabeled"] + \
        transfer["views"]
    stages = [st["name"] for st in report["stages"]]
    assert any(n.startswith("logit matching (bilstm/xtremedistil)") for n in stages)
