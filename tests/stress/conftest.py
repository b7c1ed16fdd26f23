"""A small deployed model on the real fleet data: the stress sweep's code paths in seconds."""

import pytest
import torch

from compression.distill.stages import StudentRec
from compression.quant.export import exported_state, quantize_state
from compression.runtime.artifact import write_artifact
from compression.runtime.model import RUNTIME_KIND
from compression.runtime.tokenizer import SPECIALS
from compression.student import build_encoder
from edgefleet.config import StudentConfig
from edgefleet.tasks.movielens.teacher_head import RecHead

WORDS = ["the", "a", "of", "love", "man", "story", "comedy", "drama", "action", "thriller", "(", ")", "199", "##5",
         "##6", "##7", "s", "t", "##e", "##s", "##a", "##o", "##r", "##n", "##i"]


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """hidden 64, head dim 64, history 10, INT8: every tensor kind of the real student at a fraction of its size."""
    torch.manual_seed(3)
    vocab = list(SPECIALS) + WORDS
    cfg = StudentConfig(embed_dim=32, hidden=64, layers=2, heads=2, ffn=128)
    student = StudentRec(build_encoder(cfg, len(vocab), 24), RecHead(64, 64, 10, 0.1), teacher_hidden=96)
    config = {"runtime": RUNTIME_KIND, "student": cfg.model_dump(), "max_len": 24, "dim": 64, "history_len": 10,
              "bits": 8, "int4_group": 16}
    path = tmp_path_factory.mktemp("model") / "model.eflt"
    write_artifact(path, config, vocab, quantize_state(exported_state(student), 8, 16))
    return path


@pytest.fixture(scope="session")
def small_fleet(tmp_path_factory, small_model):
    """A run directory as `simulate` prepares it: the small model and 30 devices of the real MovieLens fleet."""
    from edgefleet.config import load_config
    from edgefleet.progress import Reporter
    from simulation.prepare import prepare_fleet

    cfg = load_config(preset="tiny", overrides=[f'sim.model="{small_model}"', "sim.devices=30", "sim.cohort=10"])
    run = tmp_path_factory.mktemp("fleet")
    prepare_fleet(cfg, run, Reporter(enabled=False))
    return run
