"""The Runs page: one row per selected run (what its summary, or its committed rounds so far, say), each
simulation's headline metric per round, and each run's config."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, loaders
from dashboard.view import View, frames, labelled, of, sims, table


def render(view: View) -> None:
    st.header("Runs")
    if not view.runs:
        st.info("No runs selected.")
        return
    for r in view.runs:
        for p in r.problems:
            st.warning(f"{r.name}: {p}")
    frame = pd.DataFrame([_row(r) for r in view.runs])
    metrics = {m.key for r in view.runs for m in r.task.metrics}
    table(frame.drop(columns=[c for c in frame.columns if c in metrics and frame[c].isna().all()]), "runs")
    rs, _ = frames(view)
    # Runs are compared on their own task's headline: one chart per headline among the selected runs.
    for task, runs in _by_headline(sims(view)).items():
        part = of(rs, runs)
        if len(part) and task.headline in part:
            shown, [label] = labelled(part, task, [task.headline])
            st.subheader(f"Compare: global {label} per round")
            st.altair_chart(charts.metric_per_round(shown, [label], None), width="stretch")
    for r in view.runs:
        if r.config:
            with st.expander(f"Config of {r.name}"):
                st.json(r.config)


def _row(r: data.Run) -> dict:
    s = dict(r.summary or {})
    if not s and r.config:
        s = _so_far(r)
    head = r.task.headline
    c = r.reports.get("compression", {})
    return {"run": r.name, "status": r.status, "task": r.task.name, "devices": s.get("devices"),
            "rounds": s.get("rounds"), "cohort": s.get("cohort"), f"{head} start": s.get(f"{head}_start"),
            **{m.key: s.get(m.key) for m in r.task.metrics},
            "participation": s.get("participation_rate"), "oom rate": s.get("oom_rate"),
            "latency p95 (ms)": s.get("latency_ms_p95"), "epsilon": s.get("epsilon"), "wall (s)": s.get("wall_s"),
            "artifact bytes": c.get("artifact_bytes"), f"student {head}": c.get("student", {}).get(head)}


def _so_far(r: data.Run) -> dict:
    """A run still going has no summary: what its config and its committed rounds say so far."""
    sim = r.config.get("sim", {})
    rs, _, _ = loaders.tables(r)
    head = r.task.headline
    return {"devices": sim.get("devices"), "rounds": len(rs), "cohort": sim.get("cohort"),
            f"{head}_start": (data.start_metrics(r.path) or {}).get(head),
            **{m.key: float(rs[m.key].iloc[-1]) for m in r.task.metrics if len(rs) and m.key in rs}}


def _by_headline(runs: list[data.Run]) -> dict[data.Task, list[data.Run]]:
    """Runs whose headlines are the same key and label, under the first such task."""
    groups: dict[tuple[str, str], tuple[data.Task, list[data.Run]]] = {}
    for r in runs:
        groups.setdefault((r.task.headline, r.task.headline_label), (r.task, []))[1].append(r)
    return dict(groups.values())
