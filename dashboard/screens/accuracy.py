"""The Accuracy page: the task's global metrics per round (against the start and the oracles of `bench federation`
when the runs carry its yardstick), the devices' own measure against the global one, and the devices' measure per
tier; runs of different tasks get a section each."""

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
        _section(task, runs, of(rs, runs), of(ds, runs), start, name)


def _section(task: data.Task, runs: list[data.Run], rs: pd.DataFrame, ds: pd.DataFrame, start: dict | None,
             name: str) -> None:
    keys = present(rs, [m.key for m in task.metrics])
    if keys:
        shown, labels = labelled(rs, task, keys)
        st.subheader(f"Global {listing(labels)} per round (round 0 = the deployed model)")
        yardstick, note = _yardstick(runs)
        refs = _references(yardstick, task, keys)
        if refs is None:
            st.altair_chart(charts.metric_per_round(shown, labels, _start(start, task, keys)), width="stretch")
        else:  # a chart per metric: three rules for each of several metrics would crowd one chart
            columns = st.columns(2)
            for i, label in enumerate(labels):
                chart = charts.against_references(shown, label, _start(start, task, keys),
                                                  refs[refs["metric"] == label])
                columns[i % 2].altair_chart(chart, width="stretch")
        if note:
            st.caption(note)
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


def _yardstick(runs: list[data.Run]) -> tuple[dict | None, str | None]:
    """The one yardstick the runs carry (the runs of one bench share theirs) and a note on it; none when no run carries
    one, or when they carry different ones, which would put several oracles on one chart with nothing to say whose."""
    found: dict[str, dict] = {}
    for r in runs:
        held, err = data.yardstick(r.path)
        if err:
            st.warning(f"{r.name}: {err}")
        if held:
            found[r.name] = held
    marks = list(found.values())
    distinct = [m for i, m in enumerate(marks) if m not in marks[:i]]
    if len(distinct) > 1:
        return None, (f"No reference rules: {', '.join(found)} carry different yardsticks (from different `bench "
                      "federation` runs); pick the runs of one bench to see its start and oracles.")
    if not distinct:
        return None, None
    whose = "" if len(found) == len(runs) else f" of {', '.join(found)} (the other runs carry none)"
    return distinct[0], (f"Grey dotted rules: the yardstick{whose} that `bench federation` measured on the device "
                         "users' test items: the deployed model, and the same model trained centrally on all their "
                         "training data (oracle: its shared heads; oracle_item_residual: the heads and a vector "
                         "per item; oracle_full: the whole student).")


def _references(yardstick: dict | None, task: data.Task, keys: list[str]) -> pd.DataFrame | None:
    """The yardstick's figures of the drawn metrics, one row per rule, under the labels the chart shows."""
    if not yardstick:
        return None
    rows = [{"reference": data.REFERENCES[entry], "metric": task.label(k), "value": metrics[k]}
            for entry, metrics in yardstick.items() for k in keys if k in metrics]
    return pd.DataFrame(rows, columns=["reference", "metric", "value"])
