"""A toy run directory as `edgefleet simulate` prepares it: a tiny artifact, a toy catalogue's fleet, profiles."""

import json
from dataclasses import replace

import pytest
import torch

from compression.distill.stages import StudentRec
from compression.quant.export import exported_state, quantize_state
from compression.runtime.artifact import write_artifact
from compression.runtime.model import RUNTIME_KIND
from compression.runtime.tokenizer import SPECIALS
from compression.student import build_encoder
from edgefleet.config import Config, StudentConfig
from edgefleet.rundir import FLEET_DATA, FLEET_DIR, POPULATION, SIM_CONFIG, write_json
from edgefleet.tasks.movielens.fleet import save_texts
from edgefleet.tasks.movielens.genre_head import held_out_items
from edgefleet.tasks.movielens.shards import assign_devices
from edgefleet.tasks.movielens.split import make_split
from edgefleet.tasks.movielens.teacher_head import RecHead
from simulation.population.tiers import draw_population

WORDS = ["movie", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "m", "##o", "##v", "##i", "##e"]


@pytest.fixture
def toy_run(tmp_path, toy_catalogue):
    torch.manual_seed(1)
    vocab = list(SPECIALS) + WORDS
    cfg = StudentConfig(embed_dim=16, hidden=32, layers=2, heads=2, ffn=48)
    student = StudentRec(build_encoder(cfg, len(vocab), 16), RecHead(32, 8, 4, 0.1), teacher_hidden=64)
    config = {"runtime": RUNTIME_KIND, "student": cfg.model_dump(), "max_len": 16, "dim": 8, "history_len": 4}
    write_artifact(tmp_path / "model.eflt", config, vocab, quantize_state(exported_state(student), 8, 16))
    fleet_dir = tmp_path / FLEET_DIR
    fleet_dir.mkdir()
    split = make_split(toy_catalogue, 0.2, seed=0)
    fleet = assign_devices(split, 10, seed=0, num_negatives=5, min_items=3)
    replace(fleet, genres=toy_catalogue.genres, genre_held_out=held_out_items(12, 0)).save(fleet_dir / FLEET_DATA)
    save_texts(fleet_dir, toy_catalogue.item_texts(), toy_catalogue.titles)
    draw_population(10, seed=0).to_parquet(fleet_dir / POPULATION)
    write_json(tmp_path / SIM_CONFIG, json.loads(Config().model_dump_json()))  # the task is the config's (MovieLens)
    return tmp_path
