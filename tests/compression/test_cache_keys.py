"""The caches of trained models hit: a teacher's and a student's key (compression/teacher/two_tower.py `teacher_key`,
compression/pipeline.py `_cache_key`) change with what changes the model and with nothing else."""

import dataclasses
import json

import pytest

from compression import pipeline
from compression.teacher import two_tower
from edgefleet.cli import main
from edgefleet.config import load_config
from edgefleet.rundir import COMPRESS_DIR
from edgefleet.rundir import COMPRESSION_REPORT as REPORT
from tests.conftest import cache_copy

# Settings that change no trained model: which variants a run trains, how the report measures, where the cache is,
# and everything a fleet does with the model.
NEITHER = [
    ["distill.ablation=false"],
    ["measure.latency_texts=7", "measure.latency_repeats=5"],
    ["quant.bits=4", "quant.qat_steps=0", "quant.int4_group=64"],
    ["baselines.bpr_epochs=3"],
    ["task.max_eval_users=50"],
    ['artifacts_dir="elsewhere"'],
    ["sim.devices=10000", "sim.rounds=3", "sim.cohort=100", "sim.workers=4", 'sim.model="m.eflt"'],
    ["privacy.noise=1.0", "privacy.secagg=true"],
    ["stress.devices=50", "stress.cohort=10", "stress.fleet=false"],
    ["federation.rounds=5", "federation.oracle_epochs=2", "federation.full_epochs=1"],
]
# Later stages: they read the teacher and leave it as it is.
STUDENT_ONLY = [["vocab.size=1024"], ["student.hidden=64"], ["distill.epochs=2"], ["distill.lr=0.01"],
                ["distill.transfer_size=500"], ['distill.method="kd"']]
# The teacher's training and the data it is picked on; a student starts from the teacher, so it changes too.
BOTH = [["teacher.epochs=2"], ["teacher.lr=0.001"], ["teacher.max_len=24"], ["task.seed=1"], ["task.k=5"],
        ["task.num_negatives=49"], ["task.server_fraction=0.2"], ["task.min_train_items=2"]]


MODEL_DIGEST = two_tower.model_digest  # the real one, for the end-to-end test


@pytest.fixture(autouse=True)
def fixed_model_files(monkeypatch):
    monkeypatch.setattr(two_tower, "model_digest", lambda: "minilm-files")


def _keys(catalogue, overrides: list[str]) -> tuple[str, str]:
    """(teacher key, key of the configured student) for the tiny preset with `overrides`."""
    cfg = load_config(None, "tiny", overrides)
    teacher = two_tower.teacher_key(cfg, catalogue)
    return teacher, pipeline._cache_key(cfg, teacher, cfg.distill.method, cfg.student)


@pytest.mark.parametrize("overrides", NEITHER, ids=lambda o: o[0].split("=")[0])
def test_keys_ignore_what_changes_no_model(toy_catalogue, overrides):
    assert _keys(toy_catalogue, overrides) == _keys(toy_catalogue, [])


@pytest.mark.parametrize("overrides", STUDENT_ONLY, ids=lambda o: o[0].split("=")[0])
def test_student_settings_change_the_student_key_only(toy_catalogue, overrides):
    (teacher, student), (base_teacher, base_student) = _keys(toy_catalogue, overrides), _keys(toy_catalogue, [])
    assert teacher == base_teacher
    assert student != base_student


@pytest.mark.parametrize("overrides", BOTH, ids=lambda o: o[0].split("=")[0])
def test_teacher_settings_change_both_keys(toy_catalogue, overrides):
    changed, base = _keys(toy_catalogue, overrides), _keys(toy_catalogue, [])
    assert changed[0] != base[0] and changed[1] != base[1]


def test_keys_change_with_the_data_and_the_model_files(toy_catalogue, monkeypatch):
    base = _keys(toy_catalogue, [])
    other_data = dataclasses.replace(toy_catalogue, source_digest="other")
    assert _keys(other_data, [])[0] != base[0]
    monkeypatch.setattr(two_tower, "model_digest", lambda: "other-files")
    assert _keys(toy_catalogue, [])[0] != base[0]


def test_the_preset_name_is_not_in_the_keys(toy_catalogue):
    cfg = load_config(None, "tiny")
    renamed = cfg.model_copy(update={"preset": "default"})
    assert two_tower.teacher_key(renamed, toy_catalogue) == two_tower.teacher_key(cfg, toy_catalogue)
    teacher = two_tower.teacher_key(cfg, toy_catalogue)
    assert pipeline._cache_key(renamed, teacher, "cross", cfg.student) == \
        pipeline._cache_key(cfg, teacher, "cross", cfg.student)


def test_an_ablation_variant_is_the_configured_student_of_that_method(toy_catalogue):
    """bert/kd trained as a comparison beside a cross run is the student a run configured for bert/kd trains."""
    cross, kd = load_config(None, "tiny"), load_config(None, "tiny", ['distill.method="kd"'])
    teacher = two_tower.teacher_key(cross, toy_catalogue)
    as_ablation = pipeline._cache_key(cross, teacher, "kd", cross.student)
    assert as_ablation == pipeline._cache_key(kd, teacher, "kd", kd.student)
    assert as_ablation != pipeline._cache_key(cross, teacher, "cross", cross.student)
    bilstm = cross.student.model_copy(update={"kind": "bilstm"})
    assert pipeline._cache_key(cross, teacher, "xtremedistil", bilstm) != \
        pipeline._cache_key(cross, teacher, "xtremedistil", cross.student)


# Stage names of training (teacher/job.py, distill/stages.py); QAT fine-tunes the quantized copy every run by design.
TRAINING_STAGES = ("teacher epoch", "representation matching", "distillation", "plain KD", "score matching",
                   "task fine-tuning")


def _entries(root) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.mark.slow
def test_simulate_after_compress_trains_nothing(tiny_build, tmp_path, monkeypatch):
    """`compress` trains the teacher and the students (the ablation on: the session's tiny build, on an empty
    cache); `simulate` with no model then compresses one with the same settings (the ablation off, its own fleet
    settings) on a copy of that cache: every model comes from the cache."""
    monkeypatch.setattr(two_tower, "model_digest", MODEL_DIGEST)  # the session's build keyed the real files
    artifacts = tmp_path / "artifacts"
    cache = cache_copy(tiny_build, artifacts)
    first = json.loads((tiny_build[0] / REPORT).read_text())
    assert any(s["name"].startswith("teacher epoch") for s in first["stages"])  # it did train: the check can fail
    before = _entries(artifacts)

    assert main(["--quiet", "simulate", "--preset", "tiny", "--devices", "40", "--rounds", "1", "--cohort", "8",
                 "--out", str(tmp_path / "s"), "--set", cache]) == 0
    second = json.loads((tmp_path / "s" / COMPRESS_DIR / REPORT).read_text())
    assert second["config"]["distill"]["ablation"] is False
    trained = [s["name"] for s in second["stages"] if any(t in s["name"] for t in TRAINING_STAGES)]
    assert trained == []
    assert _entries(artifacts) == before  # no entry added, none rewritten
    main_name = first["student"]["variant"]
    assert second["training"][main_name] == first["training"][main_name]  # the log saved with the cached student
