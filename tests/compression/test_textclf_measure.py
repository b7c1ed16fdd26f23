"""Every student figure of a classifier's report comes from the device runtime on the written artifact; the
metrics by hand; the report's keys and ratios."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from compression.runtime import load_model
from compression.runtime.artifact import read_artifact
from compression.runtime.tokenizer import SPECIALS, build_wordpiece
from compression.student import build_encoder
from compression.teacher.two_tower import encode_texts
from compression.textclf.job import build_report, deploy
from compression.textclf.measure import latency
from compression.textclf.models import Encoded, TextStudent, scores
from edgefleet.config import Config
from edgefleet.progress import Reporter
from edgefleet.rundir import MODEL
from edgefleet.tasks.textclf.data import TextTask
from edgefleet.tasks.textclf.evaluate import macro_f1

WORDS = ["good", "bad", "film", "very", "dull", "fun", "plot", "##ly"]
TEXTS = ["very good film", "bad plot", "fun film", "dull plot", "very bad film", "good fun", "dull", "very fun plot"]
Y = np.array([0, 1, 0, 1, 1, 0, 1, 0])


def test_scores_by_hand():
    logits = np.eye(3)[[0, 1, 1, 1]]  # predictions 0, 1, 1, 1 for labels 0, 0, 1, 2
    got = scores(logits, np.array([0, 0, 1, 2]), 3)
    # F1 per class: 0: 2/(2+0+1); 1: 2/(2+2+0); 2: 0/(0+0+1)
    assert got == {"accuracy": 0.5, "macro_f1": pytest.approx((2 / 3 + 1 / 2 + 0) / 3)}


def test_latency_is_the_median_of_every_call():
    calls = []
    figures = latency(calls.append, ["a", "b", "c"], repeats=2)
    assert calls == ["a", "b", "c"] * 2
    assert set(figures) == {"latency_ms_b1", "latency_ms_b1_p95", "texts", "repeats"}
    assert (figures["texts"], figures["repeats"]) == (3, 2)
    assert 0 <= figures["latency_ms_b1"] <= figures["latency_ms_b1_p95"]


@pytest.fixture
def setup(tmp_path):
    """A tiny trained-looking student, the config that names it, and the task it was made for."""
    cfg = Config.model_validate({"task": {"name": "textclf"}, "teacher": {"max_len": 16},
                                 "student": {"embed_dim": 16, "hidden": 32, "layers": 1, "heads": 1, "ffn": 32},
                                 "quant": {"qat_steps": 0}, "measure": {"latency_texts": 4, "latency_repeats": 2}})
    torch.manual_seed(0)
    vocab = list(SPECIALS) + WORDS
    student = TextStudent(build_encoder(cfg.student, len(vocab), 16), n_classes=2, teacher_hidden=64).eval()
    task = TextTask(labels=["neg", "pos"], train_texts=TEXTS, train_y=Y, valid_texts=TEXTS, valid_y=Y,
                    test_texts=TEXTS, test_y=Y, report={"rows": {"train": 8, "valid": 8, "test": 8},
                                                        "source": {"test": "test.csv"}})
    valid = Encoded(torch.from_numpy(Y), torch.zeros(8, 1, 1), torch.ones(8, 1), encode_texts(
        build_wordpiece(vocab, 16), TEXTS))
    run = SimpleNamespace(splits={"valid": valid}, vocab=SimpleNamespace(tokens=vocab, report={"kept": len(vocab)}),
                          distiller=None, transfer_report={"texts": 8}, teacher_log=[])
    return cfg, task, run, student


def test_deployed_figures_are_the_runtimes_on_the_written_artifact(setup, tmp_path):
    cfg, task, run, student = setup
    path = tmp_path / MODEL
    figures = deploy(cfg, task, run, "bert/cross", student, 8, path, TEXTS[:4], Reporter(enabled=False))
    assert set(figures) >= {"accuracy", "macro_f1", "latency_ms_b1", "latency_ms_b1_p95", "peak_mem_bytes",
                            "artifact_bytes", "weight_bytes", "bits", "quantization", "valid_accuracy"}
    model = load_model(read_artifact(path))
    predicted = model.predict(TEXTS)
    truth = [task.labels[i] for i in Y]
    assert figures["accuracy"] == np.mean([p == t for p, t in zip(predicted, truth)])
    assert figures["macro_f1"] == macro_f1(Y, np.array([task.labels.index(p) for p in predicted]), 2)
    assert figures["artifact_bytes"] == path.stat().st_size and figures["bits"] == 8
    assert figures["quantization"] == "ptq" and set(figures["valid_accuracy"]) == {"ptq"}  # qat_steps 0
    assert figures["peak_mem_bytes"] > 0 and figures["texts"] == 4 and figures["repeats"] == 2
    assert model.config["labels"] == ["neg", "pos"] and model.config["student"]["kind"] == "bert"


def test_the_report_has_the_recommenders_keys_and_the_tasks_metrics(setup, tmp_path):
    cfg, task, run, student = setup
    deployed = deploy(cfg, task, run, "bert/cross", student, 8, tmp_path / MODEL, TEXTS[:4], Reporter(False))
    deployed |= {"accuracy": 0.6, "macro_f1": 0.5, "latency_ms_b1": 0.5}
    teacher = {"accuracy": 0.8, "macro_f1": 0.4, "latency_ms_b1": 10.0, "params": 1000}
    ablation = {"bert/cross": {"float": {"accuracy": 0.7, "macro_f1": 0.6}, "deployed": deployed, "params": 12}}
    report = build_report(cfg, task, run, teacher, {"bert/cross": (student, {"method": "cross"})}, "bert/cross",
                          ablation, {"int8": deployed}, tmp_path)
    assert {"artifact_bytes", "artifact_path", "teacher", "student", "retention", "speedup_b1", "size_breakdown",
            "ablation", "quantization", "transfer_set", "labels", "rows", "evaluated_on", "vocab"} <= set(report)
    s = report["student"]
    assert (s["accuracy"], s["macro_f1"], s["params"], s["variant"]) == (0.6, 0.5, 12, "bert/cross")
    assert s["evaluated_with"] == "device runtime on the artifact" and "peak_mem_bytes" in s
    assert report["retention"] == {"accuracy": pytest.approx(0.75), "macro_f1": pytest.approx(1.25),
                                   "speedup_b1": pytest.approx(20.0)}
    assert report["speedup_b1"] == pytest.approx(20.0)
    assert report["artifact_bytes"] == (tmp_path / MODEL).stat().st_size == sum(report["size_breakdown"].values())
    assert report["evaluated_on"].startswith("the 8 test rows (test.csv)")
