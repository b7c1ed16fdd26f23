"""The import arrows of DESIGN.md §5, checked on the source (static imports) and at import time."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "dashboard": {"server", "client", "compression", "simulation", "flwr", "ray", "torch"},
    "compression": {"flwr", "ray", "server", "client", "simulation", "dashboard"},
    "client": {"server", "dashboard"},
    "server": {"client", "dashboard"},
    "edgefleet": {"flwr", "ray", "server", "client", "dashboard", "simulation"},
}
# The command line is the top of the house: it dispatches (lazily) to the packages that run each job.
ENTRY_POINT = {"edgefleet/cli.py": {"simulation", "dashboard"}}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_arrows(package):
    bad = {}
    for path in (ROOT / package).rglob("*.py"):
        hits = imported_roots(path) & FORBIDDEN[package] - ENTRY_POINT.get(str(path.relative_to(ROOT)), set())
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(hits)
    assert not bad


def heavy_after_importing(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    """The `heavy` packages a fresh interpreter holds after importing `modules`."""
    code = f"import sys; import {', '.join(modules)}; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip())


def test_importing_packages_does_no_work():
    """Importing every module must not load data, build models or pull in torch/transformers eagerly."""
    modules = ["edgefleet.cli", "edgefleet.config", "server", "client", "simulation", "dashboard", "compression"]
    assert heavy_after_importing(modules, ("torch", "transformers", "ray", "flwr")) == []


def test_flower_apps_import_without_starting_anything():
    apps = ["server.app", "client.app", "server.secure", "client.secure", "simulation.reference", "simulation.run",
            "simulation.bench", "simulation.bench_privacy"]
    assert heavy_after_importing(apps, ("torch", "transformers", "ray")) == []


def test_project_declares_the_components_simulate_runs():
    import tomllib

    from simulation.run import CLIENTAPP, SERVERAPP

    components = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": SERVERAPP, "clientapp": CLIENTAPP}
