"""The Privacy page: epsilon spent and the clipping norm per round of each DP simulation, and the
privacy-utility curve of a privacy benchmark on its task's headline metric."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, loaders
from dashboard.view import View, present, sims, slug, table

COLUMNS = ("round", "epsilon", "delta", "noise_std", "clip_norm", "unclipped_fraction", "contributed",
           "secagg_contributors", "secagg_s", "bytes_up")


def render(view: View) -> None:
    st.header("Privacy")
    shown = False
    for r in sims(view):
        rs, _, _ = loaders.tables(r)
        if len(rs) and ("epsilon" in rs.columns or "secagg_contributors" in rs.columns):
            _per_round(r, rs)
            shown = True
        elif r.summary is not None or len(rs):
            st.info(f"{r.name}: no differential privacy and no secure aggregation in this run (epsilon: none); "
                    f"`edgefleet simulate --dp-noise Z --dp-clip C [--secagg]` adds them.")
            shown = True
    for r in view.runs:
        curve = r.reports.get("privacy")
        if curve and isinstance(curve.get("points"), list):
            _curve(r, curve)
            shown = True
    if not shown:
        st.info("No privacy figures in the selected runs.")


def _per_round(r: data.Run, rs: pd.DataFrame) -> None:
    privacy = (r.config or {}).get("privacy", {})
    if "epsilon" in rs.columns:
        st.subheader(f"Epsilon per round ({r.name})")
        done = (r.summary or {}).get("privacy") or {}
        sampling = done.get("sampling", "poisson")
        st.caption(f"{done.get('mechanism', 'client-level DP')}, noise multiplier {privacy.get('noise')}, delta "
                   f"{rs['delta'].iloc[-1]:.2g}, {sampling} sampling at rate {rs['sampling_rate'].iloc[-1]:.4f}"
                   + (", SecAgg+" if privacy.get("secagg") else ""))
        if done.get("guarantee"):  # device-level, and whether one user holds several devices (summary.json)
            st.caption(f"Guarantee: {done['guarantee']}.")
        st.altair_chart(charts.line(rs.assign(run=r.name), "round", "epsilon", "run", "epsilon"), width="stretch")
        if rs["clip_norm"].nunique() > 1:  # adaptive clipping
            st.altair_chart(charts.line(rs.assign(run=r.name), "round", "clip_norm", "run", "clipping norm"),
                            width="stretch")
    else:
        st.subheader(f"SecAgg+ without DP ({r.name})")
    table(rs[present(rs, list(COLUMNS))], f"privacy-{slug(r.name)}")


def _curve(r: data.Run, curve: dict) -> None:
    """The benchmark's points: its task's headline against epsilon, beside the non-private run."""
    head, label = r.task.headline, r.task.headline_label
    points = pd.DataFrame(curve["points"])
    st.subheader(f"Privacy-utility curve ({r.name})")
    base = (curve.get("non_private") or {}).get(head)
    if base is not None:
        st.caption(f"non-private federated run: {label} {base:.4f}")
    drawn = points.dropna(subset=["epsilon"])
    drawn = drawn[drawn["epsilon"] > 0]
    if len(drawn) and head in drawn:
        tooltip = present(drawn, ["label", "epsilon", *[m.key for m in r.task.metrics]])
        st.altair_chart(charts.privacy_utility(drawn, base, head, label, tooltip), width="stretch")
    table(points, f"privacy-curve-{slug(r.name)}")
