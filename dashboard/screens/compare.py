"""The Compare page: the selected simulations side by side (each task's headline per round, the outcome mix per tier,
device-clock latency, memory headroom, epsilon, artifact size) and the comparison exported as CSV, as an HTML
report that draws its charts offline, and as one PNG of every chart."""

from __future__ import annotations

import numbers
import time

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.report import html_report, png_report
from dashboard.view import View, frames, of, sims
from edgefleet.config import step_size
from edgefleet.rundir import MODEL

FIT = ["ok", "straggler"]  # the devices whose work fitted their budget (the Memory page's headroom)


def render(view: View) -> None:
    st.header("Compare")
    runs = sims(view)
    if len(runs) < 2:
        st.info("Pick two or more simulation runs in the sidebar to see them side by side.")
    if not runs:
        return
    rs, ds = frames(view)
    summary, figures = comparison(runs, rs, ds)
    st.caption("Device clock: the emulated phone's time (docs/simulation.md). Headroom: budget - (model + peak) "
               "of each device whose work fitted. Filters in the sidebar apply.")
    shown = side_by_side(summary)
    st.dataframe(shown, width="stretch", height=35 * (len(shown) + 1) + 3,  # every figure, no scrolling
                 column_config={"_index": st.column_config.TextColumn(width="medium")})
    st.download_button("Download the comparison as CSV", summary.to_csv(index=False).encode(), "comparison.csv",
                       "text/csv", key="csv-comparison")
    title, intro = "EdgeFleet: runs compared", (f"{', '.join(r.name for r in runs)}; written "
                                                f"{time.strftime('%Y-%m-%d %H:%M')} by the dashboard's Compare page.")
    # Both are made when their button is clicked, not on every rerun: vl-convert takes seconds (its Vega bundle the
    # first time, then about half a second a chart for the PNG).
    st.download_button("Download the comparison as an HTML report",
                       lambda: html_report(title, intro, [("Runs", shown.reset_index())], figures).encode(),
                       "comparison.html", "text/html", key="html-comparison", on_click="ignore")
    st.download_button("Download the comparison as PNG", lambda: png_report(title, intro, figures),
                       "comparison.png", "image/png", key="png-comparison", on_click="ignore",
                       disabled=not figures)
    st.caption("The report holds the table and every chart with its data, and draws its charts with no network. "
               "The PNG is every chart below, one under another.")
    for heading, chart in figures:  # not `title`: the buttons' callables read that when clicked
        st.subheader(heading)
        st.altair_chart(chart, width="content" if isinstance(chart, alt.FacetChart) else "stretch")


def comparison(runs: list[data.Run], rs: pd.DataFrame,
               ds: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, alt.TopLevelMixin]]]:
    """A row of figures per run (the CSV) and every chart with its heading (the page, the report and the PNG)."""
    summary = pd.DataFrame([_row(r, of(rs, [r]), of(ds, [r])) for r in runs])
    return summary, _figures(runs, rs, ds, summary)


def side_by_side(summary: pd.DataFrame) -> pd.DataFrame:
    """One column per run and one row per figure, each value written as it reads best (the CSV keeps the numbers)."""
    def shown(v: object) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return ""
        if isinstance(v, numbers.Integral):
            return f"{v:,}"
        if isinstance(v, numbers.Real):
            return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
        return str(v)

    return summary.set_index("run").T.map(shown).rename_axis(index="figure", columns=None)


def _row(r: data.Run, rs: pd.DataFrame, ds: pd.DataFrame) -> dict:
    """One run's figures from its committed rounds and devices (so a run still going compares too)."""
    head, sim = r.task.headline, (r.config or {}).get("sim", {})
    start = (data.start_metrics(r.path) or {}).get(head)
    last = float(rs[head].iloc[-1]) if len(rs) and head in rs else None
    ok = ds[ds["outcome"] == "ok"] if len(ds) else ds
    fit = ds[ds["outcome"].isin(FIT)] if len(ds) else ds
    headroom = (fit["allowance_bytes"] - fit["peak_bytes"]) / 1024 if len(fit) else pd.Series(dtype=float)
    share = ds["outcome"].value_counts(normalize=True) if len(ds) else pd.Series(dtype=float)
    return {"run": r.name, "status": r.status, "task": r.task.name, "devices": sim.get("devices"),
            "cohort": sim.get("cohort"), "policy": sim.get("policy"), "server": _server(sim), "rounds": len(rs),
            "headline": r.task.headline_label, "start": start, "last": last,
            "change": None if start is None or last is None else last - start,
            "participation": share.get("ok", 0.0), "oom": share.get("oom", 0.0),
            "inference p50 (ms)": ok["infer_ms"].median() if len(ok) else None,
            "inference p95 (ms)": ok["infer_ms"].quantile(0.95) if len(ok) else None,
            "headroom p50 (KB)": headroom.median() if len(headroom) else None,
            "headroom min (KB)": headroom.min() if len(headroom) else None,
            "privacy": _privacy(r), "epsilon": float(rs["epsilon"].iloc[-1]) if "epsilon" in rs and len(rs) else None,
            "artifact bytes": _artifact_bytes(r)}


def _server(sim: dict) -> str:
    """The server's optimizer and its step (server/optimizers.py), and the released average (server/recorder.py), as
    the run was configured; a run from before the average existed released the server's model."""
    name = sim.get("server_optimizer", "fedavgm")
    lr = step_size(name, sim.get("server_lr"))
    ema = sim.get("server_ema", 0.0)
    return (f"{name} lr {lr:g}, " + (f"momentum {sim.get('server_momentum', 0):g}" if name == "fedavgm"
                                     else f"beta1 {sim.get('server_momentum', 0):g}" if name != "fedadagrad"
                                     else f"tau {sim.get('server_tau', 1e-3):g}")
            + (f", releases EMA {ema:g}" if ema else ""))


def _privacy(r: data.Run) -> str:
    p = (r.config or {}).get("privacy", {})
    parts = []
    if p.get("noise") is not None:
        parts.append(f"DP z={p['noise']}, clip {p.get('clip')}" + (" adaptive" if p.get("adaptive") else ""))
    if p.get("secagg"):
        parts.append("SecAgg+")
    return " + ".join(parts) or "none"


def _artifact_bytes(r: data.Run) -> int | None:
    """The size the compression report gives for the deployed model, else the size of the run's copy of it."""
    size = r.reports.get("compression", {}).get("artifact_bytes")
    if size is None and (r.path / MODEL).exists():
        size = (r.path / MODEL).stat().st_size
    return size


def _figures(runs: list[data.Run], rs: pd.DataFrame, ds: pd.DataFrame,
             summary: pd.DataFrame) -> list[tuple[str, alt.TopLevelMixin]]:
    out, names = [], [r.name for r in runs]  # each run keeps its colour from chart to chart
    for (key, label), group in _by_headline(runs).items():
        curve = _curve(group, of(rs, group), key, label)
        if len(curve):
            out.append((f"Global {label} per round (round 0 = the deployed model)",
                        charts.line(curve, "round", label, "run", label, names)))
    if len(ds):
        out.append(("Outcome mix per tier (share of each tier's device-rounds)", charts.outcome_mix(ds, runs=names)))
        latency = summary.rename(columns={"inference p50 (ms)": "p50", "inference p95 (ms)": "p95"}).melt(
            "run", ["p50", "p95"], "quantile", "ms").dropna()
        out.append(("On-device inference latency, device clock (p50 and p95)",
                    charts.per_run(latency, "ms", "inference (ms)", group="quantile", runs=names)))
        fit = ds[ds["outcome"].isin(FIT)]
        out.append(("Memory headroom of the devices that fitted: budget - (model + peak)",
                    charts.spread(fit.assign(headroom_kb=(fit["allowance_bytes"] - fit["peak_bytes"]) / 1024),
                                  "headroom_kb", "headroom (KB)", names)))
    if "epsilon" in rs and rs["epsilon"].notna().any():
        out.append(("Epsilon per round (runs with differential privacy)",
                    charts.line(rs.dropna(subset=["epsilon"]), "round", "epsilon", "run", "epsilon", names)))
    sizes = summary.dropna(subset=["artifact bytes"])
    if len(sizes):
        out.append(("Deployed artifact size", charts.per_run(sizes, "artifact bytes", "bytes", runs=names)))
    return out


def _by_headline(runs: list[data.Run]) -> dict[tuple[str, str], list[data.Run]]:
    """Runs compared on one curve share their headline's key and label."""
    groups: dict[tuple[str, str], list[data.Run]] = {}
    for r in runs:
        groups.setdefault((r.task.headline, r.task.headline_label), []).append(r)
    return groups


def _curve(runs: list[data.Run], rs: pd.DataFrame, key: str, label: str) -> pd.DataFrame:
    """Each run's headline per round, from round 0 (its deployed model, results/start.json) when known."""
    starts = [{"run": r.name, "round": 0, label: (data.start_metrics(r.path) or {}).get(key)} for r in runs]
    rounds = rs[["run", "round", key]].rename(columns={key: label}) if len(rs) and key in rs else pd.DataFrame()
    return pd.concat([pd.DataFrame(starts), rounds], ignore_index=True).dropna(subset=[label])
