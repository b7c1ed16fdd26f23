"""What the dashboard knows of a run directory, read from its files only (never from the code that wrote them).

Every reader returns data or a short reason; nothing here raises on a missing, partial or corrupt file, because a
run may be half-written while the dashboard looks at it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from edgefleet.results import FINISHED, Results
from edgefleet.rundir import (
    BENCH_SIM,
    COMPRESSION_REPORT,
    FLEET_DIR,
    INTERNAL_DIRS,
    POPULATION,
    PRIVACY_REPORT,
    RESULTS,
    SIM_CONFIG,
    STRESS_REPORT,
    SUMMARY,
    TASK,
    TEACHER_REPORT,
    YARDSTICK,
)

REPORTS = {"compression": COMPRESSION_REPORT, "teacher": TEACHER_REPORT, "stress": STRESS_REPORT,
           "privacy": PRIVACY_REPORT, "bench_sim": BENCH_SIM}
MARKERS = (SUMMARY, SIM_CONFIG, RESULTS, *REPORTS.values())


@dataclass(frozen=True)
class Metric:
    """One figure of a task: its key in result files and what people call it."""

    key: str
    label: str
    round_key: str | None = None  # device metrics only: the round row's column holding their mean over devices


@dataclass(frozen=True)
class Task:
    """What a run's task calls its figures, read from its task.json: pages ask this and never spell a metric."""

    name: str
    title: str
    headline: str  # the key runs are compared on
    metrics: tuple[Metric, ...]  # global metrics: round-row columns, summary and report keys
    device_metrics: tuple[Metric, ...] = ()  # the first is the device's own measure of the headline

    @property
    def headline_label(self) -> str:
        return self.label(self.headline)

    @property
    def device_headline(self) -> Metric | None:
        return self.device_metrics[0] if self.device_metrics else None

    def label(self, key: str) -> str:
        """The printed name of a column: a metric, its full-ranking variant, a device metric or its round mean."""
        for m in self.metrics:
            if key == m.key:
                return m.label
            if key == f"full_{m.key}":
                return f"{m.label} (full ranking)"
        return next((m.label for m in self.device_metrics if key in (m.key, m.round_key)), key)

    @classmethod
    def from_json(cls, data: dict) -> Task:
        """The task.json a job wrote; KeyError, TypeError or ValueError when it is not one."""
        def metrics(items: list) -> tuple[Metric, ...]:
            return tuple(Metric(str(m["key"]), str(m.get("label") or m["key"]), m.get("round_key")) for m in items)

        task = cls(str(data["name"]), str(data.get("title") or data["name"]), str(data["headline"]),
                   metrics(data["metrics"]), metrics(data.get("device_metrics") or []))
        if task.headline not in {m.key for m in task.metrics}:
            raise ValueError(f"headline {task.headline!r} is not one of its metrics")
        return task


# Runs written before jobs wrote task.json were all MovieLens runs; this is the only place the dashboard names
# that task's metrics.
LEGACY_TASK = Task(
    name="movielens", title="MovieLens-100K recommendation", headline="hr@10",
    metrics=(Metric("hr@10", "HR@10"), Metric("ndcg@10", "NDCG@10"), Metric("mrr", "MRR")),
    device_metrics=(Metric("hit", "HR@10 on the device", "device_hr@10"),
                    Metric("ndcg", "NDCG@10 on the device", "device_ndcg@10")))


@dataclass
class Run:
    """One run directory as found on disk."""

    path: Path
    name: str
    status: str  # finished, running, empty, corrupt
    problems: list[str] = field(default_factory=list)
    summary: dict | None = None
    config: dict | None = None
    reports: dict[str, dict] = field(default_factory=dict)
    task: Task = LEGACY_TASK

    @property
    def is_simulation(self) -> bool:
        return self.config is not None or self.summary is not None


def read_json(path: Path) -> tuple[dict | None, str | None]:
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path.name} cannot be read ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, None


# The entries of a yardstick.json (`bench federation` writes one into each run it makes), under the names the pages
# give them: the deployed model, and the same model trained centrally on every device user's data.
REFERENCES = {"start": "start (deployed)", "oracle": "oracle (shared heads, central)",
              "oracle_item_residual": "oracle_item_residual (heads + item vectors, central)",
              "oracle_full": "oracle_full (whole student, central)"}


def yardstick(path: Path) -> tuple[dict[str, dict[str, float]] | None, str | None]:
    """The run's reference figures, {entry of REFERENCES: {metric key: value}}, less the entries it leaves null or
    does not hold (oracle_full when the bench did not train it, oracle_item_residual from a bench before it); None
    without a yardstick.json, or with a reason if it is not one."""
    raw, err = read_json(path / YARDSTICK)
    if raw is None:
        return None, err
    found = {}
    for entry in REFERENCES:
        metrics = raw.get(entry)
        if metrics is None:
            continue
        if not isinstance(metrics, dict) or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in metrics.values()):
            return None, f"{YARDSTICK} is not a yardstick ({entry!r} is not a table of metric values)"
        found[entry] = {k: float(v) for k, v in metrics.items() if v is not None}
    return found, None


def read_task(folder: Path) -> tuple[Task | None, str | None]:
    data, err = read_json(folder / TASK)
    if data is None:
        return None, err
    try:
        return Task.from_json(data), None
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"{TASK} does not describe a task ({type(exc).__name__}: {exc})"


def signature(path: Path) -> tuple:
    """Changes whenever a file the dashboard reads under `path` changes: the cache key of every loader."""
    out = []
    for sub in (path, path / RESULTS, path / RESULTS / "rounds", path / RESULTS / "devices", path / "compress"):
        if sub.is_dir():
            for f in sorted(sub.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    st = f.stat()
                    out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


def find_runs(root: Path) -> list[Path]:
    """Run directories under `root` (itself included), newest first."""
    if not root.is_dir():
        return []
    candidates = [root, *[p for p in root.rglob("*") if p.is_dir() and p.name not in INTERNAL_DIRS]]
    runs = [p for p in candidates if any((p / m).exists() for m in MARKERS) and p.name != RESULTS]
    return sorted(set(runs), key=lambda p: p.stat().st_mtime, reverse=True)


def load_run(path: Path, root: Path) -> Run:
    name = str(path.relative_to(root)) if path != root else path.name
    run = Run(path=path, name=name, status="empty")
    run.summary, err = read_json(path / SUMMARY)
    problems = [err] if err else []
    run.config, err = read_json(path / SIM_CONFIG)
    problems += [err] if err else []
    # A simulation's model came from a compression run: its report sits beside the model the config names.
    model = ((run.config or {}).get("sim") or {}).get("model")
    sources = (path, path / "compress", *([Path(model).parent] if model else []))
    own = False  # a report the run wrote itself, not the one beside the model it deployed
    for kind, file in REPORTS.items():
        for where in sources:
            data, err = read_json(where / file)
            if data is not None:
                run.reports.setdefault(kind, data)
                own |= where in sources[:2]
            problems += [err] if err else []
    # The task is the run's own; a run without one takes it from the model it deployed, else it predates task.json.
    for where in sources:
        task, err = read_task(where)
        problems += [err] if err else []
        if task is not None:
            run.task = task
            break
    run.problems = problems
    finished = (path / RESULTS / FINISHED).exists()
    if problems:
        run.status = "corrupt"
    elif run.summary is not None or own:  # a simulation is not finished by its model's compression report
        run.status = "finished"
    elif run.config is not None:
        run.status = "finished" if finished else "running"
    return run


def rounds_table(path: Path) -> tuple[pd.DataFrame, str | None]:
    try:
        return Results(path).rounds(), None
    except Exception as exc:  # a half-written or foreign file: say so on the page, never a traceback
        return pd.DataFrame(), f"round results cannot be read ({type(exc).__name__}: {exc})"


def devices_table(path: Path) -> tuple[pd.DataFrame, str | None]:
    try:
        return Results(path).devices(), None
    except Exception as exc:
        return pd.DataFrame(), f"device results cannot be read ({type(exc).__name__}: {exc})"


def start_metrics(path: Path) -> dict | None:
    return read_json(path / RESULTS / "start.json")[0]


def tiers(path: Path) -> list[str]:
    """The device tiers of a simulation's population (built-in or from a profile file)."""
    try:
        return sorted(pd.read_parquet(path / FLEET_DIR / POPULATION, columns=["tier"])["tier"].unique())
    except Exception:  # no fleet yet, or not a simulation: no tiers to offer
        return []
