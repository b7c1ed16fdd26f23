"""The Memory page: each device's measured peak against its budget, the headroom of those that fit, outcomes per
tier and round, why devices ran out of memory, and which fallback rung each ended on."""

from __future__ import annotations

import streamlit as st

from dashboard import charts
from dashboard.view import View, frames, need_devices, table


def render(view: View) -> None:
    st.header("Memory")
    _, ds = frames(view)
    if not need_devices(ds):
        return
    tried = ds[ds["outcome"].isin(["ok", "oom", "straggler"])].copy()
    st.subheader("Budget vs measured peak (model + work) per device; the dashed line is the budget")
    st.altair_chart(charts.budget_vs_peak(tried), width="stretch")
    ok = tried[tried["outcome"] != "oom"].assign(headroom_kb=lambda f: (f["allowance_bytes"] - f["peak_bytes"]) / 1024)
    st.subheader("Headroom left by devices that fit")
    st.altair_chart(charts.histogram(ok, "headroom_kb", "headroom (KB)"), width="stretch")
    st.subheader("Outcomes per tier and per round")
    st.altair_chart(charts.outcomes_by(ds, "tier"), width="stretch")
    st.altair_chart(charts.outcomes_by(ds, "round"), width="stretch")
    oom = ds[ds["outcome"] == "oom"]
    if len(oom) and "error" in oom:
        st.subheader("Why devices ran out of memory")
        reasons = oom.assign(reason=oom["error"].fillna("").str.replace(r"[\d,]+ B", "N B", regex=True))
        table(reasons.groupby(["tier", "reason"], sort=False).size().reset_index(name="device-rounds"), "oom-reasons")
    st.subheader("Fallback policy: which rung each device ended on")
    plans = tried.assign(plan=tried["plan"].fillna("").replace("", "none fitted"))
    counts = plans.groupby(["tier", "plan"], sort=False).size().reset_index(name="device-rounds")
    st.altair_chart(charts.stacked(counts, "tier", "device-rounds", "plan", "device-rounds"), width="stretch")
    table(counts, "fallback-per-tier")
