"""The Compression page: the deployed artifact's size, how much of the teacher's quality the student keeps on
each of the task's metrics, its speed, the size of each part, quantization, and the time of each stage."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.view import View, slug, table, with_report


def render(view: View) -> None:
    st.header("Compression")
    for r in with_report(view, "compression", "edgefleet compress"):
        c = r.reports["compression"]
        retention = c.get("retention", {})
        kept = [m for m in r.task.metrics if m.key in retention]
        st.subheader(r.name)
        cols = st.columns(2 + len(kept))
        cols[0].metric("artifact", f"{c['artifact_bytes']:,} B")
        for col, m in zip(cols[1:], kept):
            col.metric(f"{m.label} retention", f"{retention[m.key]:.3f}")
        cols[-1].metric("speedup (batch 1)", f"{retention['speedup_b1']:.1f}x")
        sizes = pd.DataFrame([{"part": k, "bytes": v} for k, v in c.get("size_breakdown", {}).items()])
        if len(sizes):
            st.altair_chart(charts.bars(sizes, "part", "bytes", "bytes"), width="stretch")
        quant = c.get("quantization", {})
        if quant:
            table(pd.DataFrame([{"bits": k, **{m.key: v.get(m.key) for m in r.task.metrics if m.key in v},
                                 "weight bytes": v.get("weight_bytes")} for k, v in quant.items()]),
                  f"quantization-{slug(r.name)}")
        stages = pd.DataFrame(c.get("stages", []))
        if len(stages):
            st.altair_chart(charts.bars(stages, "name", "seconds", "seconds"), width="stretch")
