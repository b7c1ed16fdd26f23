"""What the Launch page may start: an `edgefleet` command with settings, checked by the config schema exactly as the
CLI checks them, turned into the arguments of that command.

The arguments are built here from a command name in COMMANDS, a preset from its list, `--set section.key=value`
items whose values are numbers, booleans or a model path picked from a list, and `--config FILE` for a pasted TOML
that the page wrote itself: never a shell, never a string a user typed as a command.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.config import Config, load_config
from edgefleet.errors import ConfigError
from edgefleet.rundir import COMPRESSION_REPORT, INTERNAL_DIRS, MODEL

# Each command the page starts, with the presets the CLI offers it (edgefleet/cli.py), the first one chosen first.
COMMANDS = {"simulate": ("tiny", "default"), "stress": ("quick", "full"), "compress": ("tiny", "default")}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
STATE_DIR = ".dashboard-jobs"  # under --runs: the jobs file, each job's log and its pasted config


@dataclass(frozen=True)
class Launch:
    """One filled-in form: the command, the new run directory's name, and the settings given."""

    command: str
    name: str
    preset: str | None = None  # None: the pasted TOML's preset, else the schema's default
    settings: dict[str, object] = field(default_factory=dict)  # "section.key": value, the fields filled in
    toml: str = ""  # a pasted config file, under the settings as --config is under --set


@dataclass(frozen=True)
class Plan:
    """A checked launch: the command's arguments (after `edgefleet COMMAND`, before `--out`) and its config."""

    command: str
    name: str
    args: list[str]
    config: Config


def overrides(settings: dict[str, object]) -> list[str]:
    """`--set` items of the filled-in fields, each value written as TOML (strings and paths quoted)."""
    def toml(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else json.dumps(str(v)) if isinstance(v, (str, Path)) else str(v)

    return [f"{key}={toml(value)}" for key, value in settings.items() if value is not None]


def config_file(root: Path, name: str) -> Path:
    return root / STATE_DIR / f"{name}.toml"


def plan(root: Path, launch: Launch) -> Plan:
    """Check the name and the settings as `edgefleet` would, then the arguments; ConfigError (one line) if not."""
    if launch.command not in COMMANDS:
        raise ConfigError(f"unknown command {launch.command!r} (choose from {', '.join(COMMANDS)})")
    if launch.preset is not None and launch.preset not in COMMANDS[launch.command]:
        raise ConfigError(f"{launch.command} takes the presets {', '.join(COMMANDS[launch.command])}")
    if not NAME.fullmatch(launch.name):
        raise ConfigError(f"run name {launch.name!r}: use letters, digits, '_', '.' and '-' (up to 100), starting "
                          "with a letter or digit")
    if (root / launch.name).exists():
        raise ConfigError(f"{root / launch.name} exists: choose a new run name")
    args = [*(["--preset", launch.preset] if launch.preset else [])]
    path = None
    if launch.toml.strip():
        path = config_file(root, launch.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(launch.toml)
        args += ["--config", str(path)]
    sets = overrides(launch.settings)
    try:
        cfg = load_config(path, launch.preset, sets)
    except ConfigError:
        if path is not None:
            path.unlink()
        raise
    return Plan(launch.command, launch.name, [*args, *(a for s in sets for a in ("--set", s))], cfg)


def artifacts(root: Path) -> list[Path]:
    """Models that `compress` wrote under `root` (each beside its compression report), newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.rglob(MODEL) if (p.parent / COMPRESSION_REPORT).exists()
             and not set(p.relative_to(root).parts[:-1]) & {*INTERNAL_DIRS, STATE_DIR}]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
