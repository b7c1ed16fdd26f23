"""The typed config: presets, TOML, overrides, one-line errors, and the reference page generated from it."""

from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from edgefleet.config import (
    CONFIGS,
    STRESS_VARIANTS,
    Config,
    PresetName,
    VariantConfig,
    load_config,
    preset_names,
    reference_markdown,
)
from edgefleet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_precedence_preset_then_file_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('preset = "tiny"\n[teacher]\nepochs = 4\nlr = 0.5\n')
    cfg = load_config(f, overrides=["teacher.lr=0.25", "task.seed=9"])
    assert cfg.preset == "tiny"
    assert cfg.teacher.max_steps_per_epoch == 6  # from the tiny preset
    assert cfg.teacher.epochs == 4  # file beats preset
    assert cfg.teacher.lr == 0.25  # --set beats file
    assert cfg.task.seed == 9


@pytest.mark.parametrize("text, message", [
    ("[teacher]\nepoch = 3\n", "unknown config key 'teacher.epoch'"),
    ("[task]\nserver_fraction = 1.5\n", "task.server_fraction"),
    ("[teacher]\nlr = 'fast'\n", "teacher.lr"),
    ("[nonsense]\nx = 1\n", "unknown config key 'nonsense'"),
    ("teacher = [", "not valid TOML"),
    ('preset = "huge"\n', "unknown preset"),
    ("[federation]\ndp_devices = 500\ndp_cohort = 1000\n", "dp_cohort .1000. cannot exceed federation.dp_devices"),
])
def test_bad_config_is_one_line(tmp_path, text, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(f)
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["teacher.lr"])


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(Exception):
        cfg.teacher.lr = 1.0


def test_the_presets_are_the_files_in_configs_and_each_says_what_it_is_for():
    assert set(preset_names()) == set(get_args(PresetName)) == {"default", "demo", "tiny", "quick", "full"}
    for name in preset_names():
        text = (CONFIGS / f"{name}.toml").read_text()
        assert text.startswith(f"# {name}: ") and "Copy this file" in text
        assert load_config(preset=name).preset == name


def test_the_default_preset_is_the_schema():
    assert load_config() == load_config(preset="default") == Config()


def test_tiny_is_the_real_job_in_a_few_steps():
    cfg = load_config(preset="tiny")
    assert (cfg.sim.devices, cfg.sim.rounds, cfg.sim.cohort) == (200, 2, 16)
    assert (cfg.teacher.epochs, cfg.teacher.max_steps_per_epoch, cfg.teacher.batch_size) == (1, 6, 16)
    assert (cfg.distill.max_steps_per_epoch, cfg.distill.transfer_size, cfg.quant.qat_steps) == (4, 400, 2)
    assert cfg.task.max_eval_users == 120 and cfg.sim.lr == Config().sim.lr  # what tiny leaves out is the default


def test_quick_sweeps_seven_variants_at_64_kb_on_the_median_device():
    s = load_config(preset="quick").stress
    assert (s.resolution_kb, s.history_quantile) == (64, 0.5)
    assert [v.name for v in s.sweep] == ["int8", "int4", "vocab-1024", "keep-0.5", "len-16", "batch-8",
                                         "int4-v512-len16-b4"]
    assert s.sweep == tuple(v for v in STRESS_VARIANTS if v.name not in ("vocab-512", "batch-2"))
    assert (s.devices, s.load_devices) == (300, 1000)


def test_full_runs_the_large_fleets_over_every_variant():
    s = load_config(preset="full").stress
    assert (s.devices, s.rounds, s.cohort) == (1000, 5, 100)
    assert (s.load_devices, s.load_cohort, s.load_rounds) == (10000, 200, 2)
    assert s.sweep == STRESS_VARIANTS and s.resolution_kb == 16


def test_an_unknown_preset_is_one_line_naming_the_files():
    with pytest.raises(ConfigError) as err:
        load_config(preset="huge")
    assert str(err.value) == "unknown preset 'huge' (choose from default, demo, full, quick, tiny)"


def test_set_overrides_a_preset_and_replaces_its_lists():
    cfg = load_config(preset="quick", overrides=["stress.resolution_kb=32", 'stress.variants=[{name = "int8"}]'])
    assert cfg.stress.resolution_kb == 32 and cfg.stress.history_quantile == 0.5
    assert [v.name for v in cfg.stress.sweep] == ["int8"]


def test_the_reference_page_is_the_schema_rendered():
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text() == reference_markdown(), "run: .venv/bin/python -m edgefleet.config > docs/configuration.md"


def test_every_key_says_what_it_means():
    sections = [Config, VariantConfig, *(f.annotation for f in Config.model_fields.values()
                                        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))]
    bare = [f"{model.__name__}.{key}" for model in sections for key, f in model.model_fields.items()
            if not f.description and not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))]
    assert bare == []


def test_the_reference_page_renders_type_default_and_meaning():
    page = reference_markdown()
    assert "| `devices` | integer (≥ 1, ≤ 1000000) | `1000` | emulated devices in the fleet |" in page
    assert "| `noise` | float (≥ 0) | *unset* | noise multiplier z; unset: no differential privacy |" in page
    assert "| `fallback` | `\"ladder\"` or `\"none\"` | `\"ladder\"` |" in page
    assert "empty: int8, int8-b8, int4-v512-len16-b4 |" in page  # the adaptive ladder, named from the schema
    for section in ("task", "teacher", "sim", "privacy", "stress"):
        assert f"## `[{section}]`" in page
