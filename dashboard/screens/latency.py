"""The Latency page: the device clock per tier (inference, training, network), the virtual round time and
stragglers per round, and the compressed student's speed against its teacher."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.view import View, frames, need_devices, table


def render(view: View) -> None:
    st.header("Latency")
    rs, ds = frames(view)
    if need_devices(ds):
        ok = ds[ds["outcome"] == "ok"]
        parts = ok.melt(["tier"], ["infer_ms", "train_ms", "comm_ms"], "part", "ms")
        summary = parts.groupby(["tier", "part"], sort=False)["ms"].quantile([0.5, 0.95]).unstack().reset_index()
        summary.columns = ["tier", "part", "p50 (ms)", "p95 (ms)"]
        st.subheader("Device clock per tier: inference, training, network (p50)")
        st.altair_chart(charts.stacked(summary, "tier", "p50 (ms)", "part", "p50 (ms)"), width="stretch")
        st.subheader("Distribution of on-device inference latency per tier")
        st.altair_chart(charts.by_tier(ok, "infer_ms", "inference (ms, device clock)"), width="stretch")
        table(summary, "latency-per-tier")
    if len(rs):
        st.subheader("Virtual round time and stragglers per round")
        st.altair_chart(charts.line(rs, "round", "round_virtual_s", "run", "virtual round time (s)"),
                        width="stretch")
        st.altair_chart(charts.line(rs, "round", "straggler", "run", "stragglers"), width="stretch")
    for r in view.runs:
        c = r.reports.get("compression")
        if c:
            st.subheader(f"Teacher vs student ({r.name})")
            frame = pd.DataFrame([{"model": "teacher (fp32)", "ms": c["teacher"]["latency_ms_b1"]},
                                  {"model": "student (device runtime)", "ms": c["student"]["latency_ms_b1"]}])
            st.altair_chart(charts.bars(frame, "model", "ms", "batch-1 latency (ms)"), width="stretch")
            st.metric("speedup", f"{c['retention']['speedup_b1']:.1f}x")
