"""The house's import rules (docs/architecture.md), checked on the source (static imports) and at import time.

Floors, top to bottom: the CLI (edgefleet/cli.py) dispatches to jobs; jobs live in simulation/, compression/,
server/ and client/; everything uses the core (edgefleet/ without the CLI). Nothing points up.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = "edgefleet/cli.py"
FORBIDDEN = {
    "dashboard": {"server", "client", "compression", "simulation", "flwr", "ray", "torch"},
    "compression": {"flwr", "ray", "server", "client", "simulation", "dashboard"},
    "client": {"server", "dashboard", "simulation"},
    "server": {"client", "dashboard", "simulation"},
    "simulation": {"dashboard"},
    # The core: no higher floor, no Flower, no Ray.
    "edgefleet": {"flwr", "ray", "server", "client", "dashboard", "simulation", "compression"},
}
# The dashboard reads run directories: of the project it imports only the file names and the result readers, and the
# config schema with its errors, with which the Launch page checks a run's settings before it starts `edgefleet`.
DASHBOARD_CORE = {"edgefleet", "edgefleet.rundir", "edgefleet.results", "edgefleet.config", "edgefleet.errors"}
# What a phone runs, and the server's evaluator and the stress sweep with it: numpy and tokenizers only.
RUNTIME = ["compression/runtime", "edgefleet/tasks/movielens/device.py", "edgefleet/tasks/movielens/device_head.py",
           "edgefleet/tasks/movielens/evaluate.py", "edgefleet/tasks/base.py", "edgefleet/tasks/optim.py"]


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py")) if (ROOT / folder).is_dir() else [ROOT / folder]


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (function-level imports too)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_arrow_points_up(package):
    bad = {}
    for path in sources(package):
        if str(path.relative_to(ROOT)) == CLI:
            continue  # the top floor
        hits = {m.split(".")[0] for m in imported(path)} & FORBIDDEN[package]
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(hits)
    assert not bad


def test_nothing_imports_the_cli():
    users = [str(p.relative_to(ROOT)) for pkg in FORBIDDEN for p in sources(pkg)
             if any(m == "edgefleet.cli" for m in imported(p)) and p.name != "__main__.py"]
    assert users == []


def test_dashboard_reads_files_only():
    project = {"edgefleet", "server", "client", "compression", "simulation"}
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imported(p) if m.split(".")[0] in project
                                             and m not in DASHBOARD_CORE)
           for p in sources("dashboard")}
    assert {k: v for k, v in bad.items() if v} == {}


def heavy_after_importing(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    """The `heavy` packages a fresh interpreter holds after importing `modules`."""
    code = f"import sys; import {', '.join(modules)}; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip())


def test_the_device_runtime_needs_no_torch():
    modules = sorted({module_name(p) for folder in RUNTIME for p in sources(folder)})
    assert "compression.runtime.model" in modules and "edgefleet.tasks.movielens.device" in modules
    assert heavy_after_importing(modules, ("torch", "transformers", "flwr", "ray")) == []


def test_importing_packages_does_no_work():
    """Importing every module's package must not load data, build models or pull in torch/transformers eagerly."""
    modules = ["edgefleet.cli", "edgefleet.config", "edgefleet.tasks", "server", "client", "simulation", "dashboard",
               "compression"]
    assert heavy_after_importing(modules, ("torch", "transformers", "ray", "flwr")) == []


def test_flower_apps_import_without_starting_anything():
    apps = ["server.app", "client.app", "server.secure", "client.secure", "simulation.reference", "simulation.engine",
            "simulation.run", "simulation.bench", "simulation.bench_privacy", "simulation.deploy"]
    assert heavy_after_importing(apps, ("torch", "transformers", "ray")) == []


def test_project_declares_the_components_simulate_runs():
    import tomllib

    from simulation.run import CLIENTAPP, SERVERAPP

    components = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": SERVERAPP, "clientapp": CLIENTAPP}


def test_run_directory_names_are_spelled_once():
    """A run directory's file names live in edgefleet/rundir.py; code elsewhere uses the constants."""
    from edgefleet import rundir

    names = {v for k, v in vars(rundir).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert {"model.eflt", "summary.json", "sim_config.json", "task.json"} <= names
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    bad = [f"{p.relative_to(ROOT)}:{i}" for pkg in FORBIDDEN for p in sources(pkg) if p.name != "rundir.py"
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert bad == []


def test_code_outside_the_tasks_asks_for_metric_names():
    """Only a task names its metrics; the jobs, apps and pages ask it (the dashboard keeps one description of the
    first task, for run directories written before tasks described themselves)."""
    from edgefleet.tasks import TASKS, get_task

    names = {m.key for t in TASKS for m in (*get_task(t).metrics, *get_task(t).device_metrics)
             if "@" in m.key}
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    allowed = ("edgefleet/tasks/", "dashboard/data.py")
    bad = [f"{p.relative_to(ROOT)}:{i}" for pkg in ("client", "server", "simulation", "dashboard", "edgefleet")
           for p in sources(pkg) if not str(p.relative_to(ROOT)).startswith(allowed)
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert bad == []
