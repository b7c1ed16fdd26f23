"""The Stress page: measured peak memory against the budget for each variant and workload, the smallest budget
that fits against the memory model's prediction, fixed vs adaptive policy in a fleet, and the load test."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.view import View, slug, table, with_report


def render(view: View) -> None:
    st.header("Stress")
    for r in with_report(view, "stress", "edgefleet stress"):
        report = r.reports["stress"]
        points = pd.DataFrame(report.get("points", []))
        if points.empty:
            st.warning(f"{r.name}: stress_report.json holds no points")
            continue
        st.subheader(f"Measured peak vs budget ({r.name})")
        points = points.assign(series=points["variant"].astype(str) + " / " + points["workload"].astype(str),
                               budget_mb=points["budget_bytes"] / 2**20).sort_values(["series", "budget_mb"])
        st.altair_chart(charts.line(points, "budget_mb", "measured_peak_bytes", "series", "measured peak (bytes)"),
                        width="stretch")
        table(points, f"stress-{slug(r.name)}")
        mins = _min_budgets(report)
        if not mins.empty:
            st.subheader(f"Smallest budget that fits, per variant and workload ({r.name})")
            st.altair_chart(charts.grouped_bars(mins, "variant", "min_budget_mb", "workload", "smallest budget (MB)"),
                            width="stretch")
            table(mins, f"stress-min-budgets-{slug(r.name)}")
        runs = (report.get("policies") or {}).get("runs") or {}
        if isinstance(runs, dict) and runs:
            st.subheader(f"Fixed vs adaptive policy in a fleet simulation ({r.name})")
            table(pd.DataFrame([{"policy": name, **{k: v for k, v in f.items() if not isinstance(v, dict)}}
                                for name, f in runs.items() if isinstance(f, dict)]),
                  f"stress-policies-{slug(r.name)}")
        load = report.get("load") or {}
        if isinstance(load, dict) and load.get("ooms") is not None:
            st.subheader(f"Load: {load.get('devices')} devices under {load.get('budget_scale')}x their budgets "
                         f"({'survived' if load.get('survived') else 'did not finish'})")
            table(pd.DataFrame(load["ooms"]), f"stress-load-ooms-{slug(r.name)}")


def _min_budgets(report: dict) -> pd.DataFrame:
    """One row per variant and workload: the smallest budget measured to fit, the prediction and its error."""
    rows = []
    mins, errors = report.get("min_budget_bytes") or {}, report.get("prediction_error") or {}
    for variant, per in (mins.items() if isinstance(mins, dict) else []):
        for workload, m in (per.items() if isinstance(per, dict) else []):
            if not isinstance(m, dict):
                continue
            found, predicted = m.get("min_budget_bytes"), m.get("predicted_bytes")
            rows.append({"variant": variant, "workload": workload,
                         "min_budget_mb": None if found is None else found / 2**20,
                         "predicted_mb": None if predicted is None else predicted / 2**20,
                         "prediction_error": (errors.get(variant) or {}).get(workload)})
    return pd.DataFrame(rows)
