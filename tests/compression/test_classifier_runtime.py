"""The text-classifier runtime: the same numbers as the PyTorch student the artifact was written from."""

import numpy as np
import torch

from compression.quant.export import exported_state, load_quantized, quantize_state
from compression.runtime import load_model
from compression.runtime.artifact import read_artifact, write_artifact
from compression.runtime.classifier import ClassifierModel
from compression.runtime.tokenizer import SPECIALS, build_wordpiece
from compression.student import build_encoder
from compression.textclf.models import TextStudent
from edgefleet.config import StudentConfig

WORDS = ["good", "bad", "film", "very", "##ly"]


def test_the_runtime_classifies_like_the_student(tmp_path):
    torch.manual_seed(0)
    vocab = list(SPECIALS) + WORDS
    cfg = StudentConfig(embed_dim=16, hidden=32, layers=2, heads=2, ffn=48)
    student = TextStudent(build_encoder(cfg, len(vocab), 16), n_classes=3, teacher_hidden=64).eval()
    config = {"runtime": "text-classifier", "student": cfg.model_dump(), "max_len": 16, "labels": ["a", "b", 7]}
    write_artifact(tmp_path / "m.eflt", config, vocab, quantize_state(exported_state(student), 8, 16))
    model = load_model(read_artifact(tmp_path / "m.eflt"))
    assert isinstance(model, ClassifierModel) and model.labels == ["a", "b", 7]
    ids = build_wordpiece(vocab, 16).encode("very good film").ids
    with torch.no_grad():  # the student with the artifact's (quantized) weights: what the file holds
        load_quantized(student, read_artifact(tmp_path / "m.eflt").tensors)
        want, _ = student(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool))
    got = model.logits(model.encode("very good film")[None])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
    assert model.predict(["very good film"]) == [model.labels[int(want.argmax())]]
