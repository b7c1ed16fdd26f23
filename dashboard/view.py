"""What every page shares: the sidebar's choice (View), the selected runs' tables filtered by it, a table with its
CSV download, and the runs grouped by the task whose metrics they report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, loaders


@dataclass
class View:
    """What the sidebar chose: the runs and the filters every page applies."""

    runs: list[data.Run]
    tiers: list[str] | None
    rounds: tuple[int, int] | None
    root: Path | None = None  # the --runs folder (the Launch page starts runs into it)


def sims(view: View) -> list[data.Run]:
    return [r for r in view.runs if r.is_simulation]


def frames(view: View) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Round rows and device rows of the selected simulations, one `run` column apart, filtered by the sidebar."""
    rounds, devices = [], []
    for r in sims(view):
        rs, ds, problems = loaders.tables(r)
        for p in problems:
            st.warning(f"{r.name}: {p}")
        if r.status == "running":
            st.info(f"{r.name} is still running: {len(rs)} round(s) committed so far; this page follows it.")
        rounds.append(rs)
        devices.append(ds)
    rs = pd.concat([x for x in rounds if len(x)], ignore_index=True) if any(len(x) for x in rounds) else pd.DataFrame()
    ds = pd.concat([x for x in devices if len(x)], ignore_index=True) if any(len(x) for x in devices) \
        else pd.DataFrame()
    if len(ds) and view.tiers:
        ds = ds[ds["tier"].isin(view.tiers)]
    if view.rounds is not None:
        lo, hi = view.rounds
        rs = rs[rs["round"].between(lo, hi)] if len(rs) else rs
        ds = ds[ds["round"].between(lo, hi)] if len(ds) else ds
    return rs, ds


def by_task(runs: list[data.Run]) -> dict[data.Task, list[data.Run]]:
    """The runs grouped by their task, in the order first seen: runs of different tasks share no metric."""
    groups: dict[data.Task, list[data.Run]] = {}
    for r in runs:
        groups.setdefault(r.task, []).append(r)
    return groups


def of(frame: pd.DataFrame, runs: list[data.Run]) -> pd.DataFrame:
    """The rows of `frame` that belong to `runs`."""
    return frame[frame["run"].isin([r.name for r in runs])] if len(frame) else frame


def present(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Those of `columns` that `frame` has: a chart or table shows what the run wrote and skips the rest."""
    return [c for c in columns if c in frame.columns]


def labelled(frame: pd.DataFrame, task: data.Task, keys: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """`frame` with the metric columns `keys` renamed to the task's labels (what a chart's legend shows)."""
    names = {k: task.label(k) for k in keys}
    return frame.rename(columns=names), [names[k] for k in keys]


def listing(words: list[str]) -> str:
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"


def slug(name: str) -> str:
    """A run name as part of a file name."""
    return name.replace("/", "-")


def table(frame: pd.DataFrame, name: str) -> None:
    st.dataframe(frame, width="stretch", hide_index=True)
    st.download_button(f"Download {name} as CSV", frame.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                       key=f"csv-{name}")


def need_devices(ds: pd.DataFrame) -> bool:
    if ds.empty:
        st.info("No device results yet: choose a simulation run (edgefleet simulate) in the sidebar, or wait for its "
                "first round.")
        return False
    return True


def with_report(view: View, kind: str, job: str) -> list[data.Run]:
    """The selected runs holding a `kind` report; none is a hint at the job that writes one."""
    found = [r for r in view.runs if kind in r.reports]
    if not found:
        st.info(f"No {kind} report in the selected runs ({job} writes {data.REPORTS[kind]}).")
    return found
