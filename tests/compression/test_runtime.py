"""The numpy device runtime computes what the torch student computes, from the artifact alone."""

import numpy as np
import pytest
import torch

from compression.distill.stages import StudentRec
from compression.quant.export import exported_state, load_quantized, quantize_state
from compression.runtime.artifact import ArtifactError, read_artifact, write_artifact
from compression.runtime.encoders import encoder_class
from compression.runtime.memory_model import ModelDims
from compression.runtime.model import RUNTIME_KIND, DeviceModel, measure_inference
from compression.runtime.tokenizer import build_wordpiece
from compression.student import build_encoder
from edgefleet.config import StudentConfig
from edgefleet.tasks.movielens.teacher_head import RecHead, pad_histories

TEXTS = ["Toy Story (1995) Comedy", "GoldenEye (1995) Action", "Star Wars (1977) Action Drama", "toys"]


def make(tmp_path, toy_vocab, bits, keep_ratio=1.0, kind="bert"):
    torch.manual_seed(1)
    cfg = StudentConfig(kind=kind, embed_dim=16, hidden=32, layers=2, heads=2, ffn=48, lstm_hidden=16,
                        keep_ratio=keep_ratio, prune_after=1)
    student = StudentRec(build_encoder(cfg, len(toy_vocab), 16), RecHead(32, 8, 4, 0.1), teacher_hidden=64)
    with torch.no_grad():
        student.head.recency.copy_(torch.randn(4))
    tensors = quantize_state(exported_state(student), bits, 16)
    load_quantized(student, tensors)
    config = {"runtime": RUNTIME_KIND, "student": cfg.model_dump(), "max_len": 16, "dim": 8, "history_len": 4}
    path = tmp_path / f"m{bits}.eflt"
    write_artifact(path, config, toy_vocab, tensors)
    return student, DeviceModel.load(path)


def torch_items(student, toy_vocab, texts, keep_ratio):
    tok = build_wordpiece(toy_vocab, 16)
    out = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok.encode(t).ids])
            pooled = student.encoder(ids, torch.ones_like(ids), keep_ratio).pooled
            items, prior = student.head.item_vectors(pooled)
            out.append((items[0].numpy(), float(prior[0])))
    return out


@pytest.mark.parametrize("bits, keep_ratio, kind", [(8, 1.0, "bert"), (4, 1.0, "bert"), (8, 0.5, "bert"),
                                                     (8, 1.0, "bilstm"), (4, 1.0, "bilstm")])
def test_runtime_matches_torch(tmp_path, toy_vocab, bits, keep_ratio, kind):
    student, device = make(tmp_path, toy_vocab, bits, keep_ratio, kind)
    for (t_vec, t_prior), text in zip(torch_items(student, toy_vocab, TEXTS, keep_ratio), TEXTS):
        vec, prior = device.item_vector(text)
        assert np.abs(vec - t_vec).max() < 1e-4
        assert prior == pytest.approx(t_prior, abs=1e-4)


def test_user_vector_scores_and_topk_match_torch(tmp_path, toy_vocab):
    student, device = make(tmp_path, toy_vocab, 8)
    items, prior = device.item_vectors(TEXTS)
    history = np.array([2, 0, 1, 3, 2])  # longer than history_len: only the last 4 count
    ids, mask = pad_histories([history], 4)
    with torch.no_grad():
        t_items = torch.from_numpy(items)
        users = student.head.user_vectors(t_items[ids], mask)
        ref = student.head.logits(users, t_items, torch.from_numpy(prior))[0].numpy()
    got = device.scores(device.user_vector(items[history]), items, prior)
    assert np.abs(got - ref).max() < 1e-4
    top = device.recommend(items[history], items, prior, k=2, exclude=[int(np.argmax(ref))])
    assert list(top) == list(np.argsort(-ref)[1:3])


def test_measure_inference_reports_latency_and_memory(tmp_path, toy_vocab):
    _, device = make(tmp_path, toy_vocab, 8)
    items, prior = device.item_vectors(TEXTS)
    m = measure_inference(device, TEXTS, items[[0, 1]], items, prior, repeats=2)
    assert m["texts"] == 4 and m["latency_ms_b1"] > 0 and m["peak_mem_bytes"] > 0


def test_artifact_for_another_runtime_is_refused(tmp_path, toy_vocab):
    path = tmp_path / "other.eflt"
    write_artifact(path, {"runtime": "something-else"}, toy_vocab, {})
    with pytest.raises(ArtifactError, match="runtime"):
        DeviceModel.load(path)


def test_runtime_genre_head_matches_torch(tmp_path, toy_vocab):
    student, device = make(tmp_path, toy_vocab, 8)
    tok = build_wordpiece(toy_vocab, 16)
    ids = torch.tensor([tok.encode("Star Wars").ids])
    with torch.no_grad():
        ref = torch.sigmoid(student.genre(student.encoder(ids, torch.ones_like(ids), 1.0).pooled))[0].numpy()
    got = device.genre_probs("Star Wars")
    assert got.shape == (19,) and np.abs(got - ref).max() < 1e-5


def test_unknown_encoder_kind_is_refused(tmp_path, toy_vocab):
    student, _ = make(tmp_path, toy_vocab, 8)
    path = tmp_path / "odd.eflt"
    config = {"runtime": RUNTIME_KIND, "student": {"kind": "gru"}, "max_len": 16}
    write_artifact(path, config, toy_vocab, quantize_state(exported_state(student), 8, 16))
    with pytest.raises(ArtifactError, match="gru"):
        DeviceModel.load(path)


def test_an_unknown_encoder_name_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^unknown student encoder 'gru'; known: bert, bilstm$"):
        encoder_class("gru")


def _arrays(x) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return [x]
    items = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else ()
    return [a for item in items for a in _arrays(item)]


@pytest.mark.parametrize("kind", ["bert", "bilstm"])
def test_resident_bytes_are_what_the_loaded_encoder_holds_beyond_the_word_table(tmp_path, toy_vocab, kind):
    _, device = make(tmp_path, toy_vocab, 8, kind=kind)
    artifact = read_artifact(tmp_path / "m8.eflt")
    dims = ModelDims.from_artifact(artifact.config, artifact.vocab, {n: q.shape for n, q in artifact.tensors.items()})
    held = sum(a.nbytes for a in _arrays(vars(device.encoder)))
    assert type(device.encoder).resident_bytes(dims) == held
