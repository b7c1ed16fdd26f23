"""The Accuracy page: the task's global metrics per round, the devices' own measure against the global one, and
the devices' measure per tier; runs of different tasks get a section each."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.view import View, by_task, frames, labelled, listing, need_devices, of, present, sims, slug, table


def render(view: View) -> None:
    st.header("Accuracy")
    rs, ds = frames(view)
    if rs.empty:
        st.info("No committed rounds yet in the selected runs.")
        return
    groups = by_task(sims(view))
    for task, runs in groups.items():
        st.caption(f"{task.title}: {', '.join(r.name for r in runs)}")
        # Round 0 (the deployed model) is drawn for a single run only: each run deployed its own.
        start = data.start_metrics(runs[0].path) if len(runs) == 1 else None
        name = "accuracy" if len(groups) == 1 else f"accuracy-{slug(task.name)}"
        _section(task, of(rs, runs), of(ds, runs), start, name)


def _section(task: data.Task, rs: pd.DataFrame, ds: pd.DataFrame, start: dict | None, name: str) -> None:
    keys = present(rs, [m.key for m in task.metrics])
    if keys:
        shown, labels = labelled(rs, task, keys)
        st.subheader(f"Global {listing(labels)} per round (round 0 = the deployed model)")
        st.altair_chart(charts.metric_per_round(shown, labels, _start(start, task, keys)), width="stretch")
    device = task.device_headline
    if device is not None and device.round_key in rs and task.headline in rs:
        shown, labels = labelled(rs, task, [task.headline, device.round_key])
        st.subheader(f"On-device vs global {task.headline_label}")
        st.altair_chart(charts.metric_per_round(shown, labels, None), width="stretch")
    if device is not None and need_devices(ds) and device.key in ds:
        ok = ds[ds["outcome"] == "ok"]
        tier = ok.groupby("tier", sort=False)[[device.key]].mean().reset_index()
        st.subheader(f"{device.label} per tier (each device on its own data)")
        st.altair_chart(charts.bars(tier, "tier", device.key, device.label), width="stretch")
    columns = ["run", "round", *keys, *[f"full_{k}" for k in keys],
               *[m.round_key for m in task.device_metrics if m.round_key], "train_loss"]
    table(rs[present(rs, columns)], name)


def _start(start: dict | None, task: data.Task, keys: list[str]) -> dict | None:
    """start.json's metrics under the labels the chart shows."""
    return {task.label(k): start.get(k) for k in keys} if start else None
