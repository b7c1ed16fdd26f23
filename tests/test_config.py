"""The typed config: presets, TOML, overrides and one-line errors."""

import pytest

from edgefleet.config import load_config
from edgefleet.errors import ConfigError


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
