"""The dashboard's pages: each lays out what the loaders read and the chart builders draw."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard import charts, data, loaders


@dataclass
class View:
    """What the sidebar chose: the runs and the filters every page applies."""

    runs: list[data.Run]
    tiers: list[str] | None
    rounds: tuple[int, int] | None


def _sims(view: View) -> list[data.Run]:
    return [r for r in view.runs if r.is_simulation]


def _frames(view: View) -> tuple[pd.DataFrame, pd.DataFrame]:
    rounds, devices = [], []
    for r in _sims(view):
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


def _table(frame: pd.DataFrame, name: str) -> None:
    st.dataframe(frame, width="stretch", hide_index=True)
    st.download_button(f"Download {name} as CSV", frame.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                       key=f"csv-{name}")


def _need_devices(ds: pd.DataFrame) -> bool:
    if ds.empty:
        st.info("No device results yet: choose a simulation run (edgefleet simulate) in the sidebar, or wait for its "
                "first round.")
        return False
    return True


def runs_page(view: View) -> None:
    st.header("Runs")
    if not view.runs:
        st.info("No runs selected.")
        return
    rows = []
    for r in view.runs:
        s = dict(r.summary or {})
        if not s and r.config:  # still running: what its config and committed rounds say so far
            sim = r.config.get("sim", {})
            rs, _, _ = loaders.tables(r)
            s = {"devices": sim.get("devices"), "rounds": len(rs), "cohort": sim.get("cohort"),
                 "hr@10_start": (data.start_metrics(r.path) or {}).get("hr@10"),
                 "hr@10": float(rs["hr@10"].iloc[-1]) if len(rs) else None,
                 "ndcg@10": float(rs["ndcg@10"].iloc[-1]) if len(rs) else None}
        c = r.reports.get("compression", {})
        rows.append({"run": r.name, "status": r.status, "devices": s.get("devices"), "rounds": s.get("rounds"),
                     "cohort": s.get("cohort"), "hr@10 start": s.get("hr@10_start"), "hr@10": s.get("hr@10"),
                     "ndcg@10": s.get("ndcg@10"), "participation": s.get("participation_rate"),
                     "oom rate": s.get("oom_rate"), "latency p95 (ms)": s.get("latency_ms_p95"),
                     "epsilon": s.get("epsilon"), "wall (s)": s.get("wall_s"),
                     "artifact bytes": c.get("artifact_bytes"), "student hr@10": c.get("student", {}).get("hr@10")})
        for p in r.problems:
            st.warning(f"{r.name}: {p}")
    _table(pd.DataFrame(rows), "runs")
    rs, _ = _frames(view)
    if len(rs):
        st.subheader("Compare: global HR@10 per round")
        st.altair_chart(charts.metric_per_round(rs, ["hr@10"], None), width="stretch")
    for r in view.runs:
        if r.config:
            with st.expander(f"Config of {r.name}"):
                st.json(r.config)


def accuracy_page(view: View) -> None:
    st.header("Accuracy")
    rs, ds = _frames(view)
    if rs.empty:
        st.info("No committed rounds yet in the selected runs.")
        return
    start = None
    if len(_sims(view)) == 1:
        start = data.start_metrics(_sims(view)[0].path)
    st.subheader("Global HR@10 and NDCG@10 per round (device-owned users; round 0 = the deployed model)")
    st.altair_chart(charts.metric_per_round(rs, ["hr@10", "ndcg@10"], start), width="stretch")
    st.subheader("On-device vs global HR@10")
    st.altair_chart(charts.metric_per_round(rs, ["hr@10", "device_hr@10"], None), width="stretch")
    if _need_devices(ds):
        ok = ds[ds["outcome"] == "ok"]
        tier = ok.groupby("tier", sort=False)[["hit", "ndcg"]].mean().reset_index()
        st.subheader("On-device HR@10 per tier (each device on its own items)")
        st.altair_chart(charts.bars(tier, "tier", "hit", "on-device HR@10"), width="stretch")
    _table(rs[["run", "round", "hr@10", "ndcg@10", "mrr", "full_hr@10", "device_hr@10", "train_loss"]], "accuracy")


def latency_page(view: View) -> None:
    st.header("Latency")
    rs, ds = _frames(view)
    if _need_devices(ds):
        ok = ds[ds["outcome"] == "ok"]
        parts = ok.melt(["tier"], ["infer_ms", "train_ms", "comm_ms"], "part", "ms")
        summary = parts.groupby(["tier", "part"], sort=False)["ms"].quantile([0.5, 0.95]).unstack().reset_index()
        summary.columns = ["tier", "part", "p50 (ms)", "p95 (ms)"]
        st.subheader("Device clock per tier: inference, training, network (p50)")
        st.altair_chart(charts.stacked(summary, "tier", "p50 (ms)", "part", "p50 (ms)"), width="stretch")
        st.subheader("Distribution of on-device inference latency per tier")
        st.altair_chart(charts.by_tier(ok, "infer_ms", "inference (ms, device clock)"), width="stretch")
        _table(summary, "latency-per-tier")
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


def memory_page(view: View) -> None:
    st.header("Memory")
    _, ds = _frames(view)
    if not _need_devices(ds):
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
        _table(reasons.groupby(["tier", "reason"], sort=False).size().reset_index(name="device-rounds"),
               "oom-reasons")
    st.subheader("Fallback policy: which rung each device ended on")
    plans = tried.assign(plan=tried["plan"].fillna("").replace("", "none fitted"))
    counts = plans.groupby(["tier", "plan"], sort=False).size().reset_index(name="device-rounds")
    st.altair_chart(charts.stacked(counts, "tier", "device-rounds", "plan", "device-rounds"), width="stretch")
    _table(counts, "fallback-per-tier")


PRIVACY_COLUMNS = ("round", "epsilon", "delta", "noise_std", "clip_norm", "unclipped_fraction", "contributed",
                   "secagg_contributors", "secagg_s", "bytes_up")


def privacy_page(view: View) -> None:
    st.header("Privacy")
    shown = False
    for r in _sims(view):
        rs, _, _ = loaders.tables(r)
        privacy = (r.config or {}).get("privacy", {})
        if len(rs) and ("epsilon" in rs.columns or "secagg_contributors" in rs.columns):
            if "epsilon" in rs.columns:
                st.subheader(f"Epsilon per round ({r.name})")
                st.caption(f"client-level DP, noise multiplier {privacy.get('noise')}, delta "
                           f"{rs['delta'].iloc[-1]:.2g}, Poisson sampling at rate {rs['sampling_rate'].iloc[-1]:.4f}"
                           + (", SecAgg+" if privacy.get("secagg") else ""))
                st.altair_chart(charts.line(rs.assign(run=r.name), "round", "epsilon", "run", "epsilon"),
                                width="stretch")
                if rs["clip_norm"].nunique() > 1:  # adaptive clipping
                    st.altair_chart(charts.line(rs.assign(run=r.name), "round", "clip_norm", "run", "clipping norm"),
                                    width="stretch")
            else:
                st.subheader(f"SecAgg+ without DP ({r.name})")
            _table(rs[[c for c in PRIVACY_COLUMNS if c in rs.columns]], f"privacy-{r.name.replace('/', '-')}")
            shown = True
        elif r.summary is not None or len(rs):
            st.info(f"{r.name}: no differential privacy and no secure aggregation in this run (epsilon: none); "
                    f"`edgefleet simulate --dp-noise Z --dp-clip C [--secagg]` adds them.")
            shown = True
    for r in view.runs:
        curve = r.reports.get("privacy")
        if curve and isinstance(curve.get("points"), list):
            points = pd.DataFrame(curve["points"])
            st.subheader(f"Privacy-utility curve ({r.name})")
            base = (curve.get("non_private") or {}).get("hr@10")
            if base is not None:
                st.caption(f"non-private federated run: HR@10 {base:.4f}")
            drawn = points.dropna(subset=["epsilon"])
            drawn = drawn[drawn["epsilon"] > 0]
            if len(drawn):
                st.altair_chart(charts.privacy_utility(drawn, base), width="stretch")
            _table(points, f"privacy-curve-{r.name.replace('/', '-')}")
            shown = True
    if not shown:
        st.info("No privacy figures in the selected runs.")


def _with_report(view: View, kind: str, job: str) -> list[data.Run]:
    found = [r for r in view.runs if kind in r.reports]
    if not found:
        st.info(f"No {kind} report in the selected runs ({job} writes {data.REPORTS[kind]}).")
    return found


def compression_page(view: View) -> None:
    st.header("Compression")
    for r in _with_report(view, "compression", "edgefleet compress"):
        c = r.reports["compression"]
        st.subheader(r.name)
        cols = st.columns(4)
        cols[0].metric("artifact", f"{c['artifact_bytes']:,} B")
        cols[1].metric("HR@10 retention", f"{c['retention']['hr@10']:.3f}")
        cols[2].metric("NDCG@10 retention", f"{c['retention']['ndcg@10']:.3f}")
        cols[3].metric("speedup (batch 1)", f"{c['retention']['speedup_b1']:.1f}x")
        sizes = pd.DataFrame([{"part": k, "bytes": v} for k, v in c.get("size_breakdown", {}).items()])
        if len(sizes):
            st.altair_chart(charts.bars(sizes, "part", "bytes", "bytes"), width="stretch")
        quant = c.get("quantization", {})
        if quant:
            _table(pd.DataFrame([{"bits": k, "hr@10": v.get("hr@10"), "ndcg@10": v.get("ndcg@10"),
                                  "weight bytes": v.get("weight_bytes")} for k, v in quant.items()]),
                   f"quantization-{r.name.replace('/', '-')}")
        stages = pd.DataFrame(c.get("stages", []))
        if len(stages):
            st.altair_chart(charts.bars(stages, "name", "seconds", "seconds"), width="stretch")


def stress_page(view: View) -> None:
    st.header("Stress")
    for r in _with_report(view, "stress", "edgefleet stress"):
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
        _table(points, f"stress-{r.name.replace('/', '-')}")
        mins = _min_budgets(report)
        if not mins.empty:
            st.subheader(f"Smallest budget that fits, per variant and workload ({r.name})")
            st.altair_chart(charts.grouped_bars(mins, "variant", "min_budget_mb", "workload", "smallest budget (MB)"),
                            width="stretch")
            _table(mins, f"stress-min-budgets-{r.name.replace('/', '-')}")
        runs = (report.get("policies") or {}).get("runs") or {}
        if isinstance(runs, dict) and runs:
            st.subheader(f"Fixed vs adaptive policy in a fleet simulation ({r.name})")
            _table(pd.DataFrame([{"policy": name, **{k: v for k, v in f.items() if not isinstance(v, dict)}}
                                 for name, f in runs.items() if isinstance(f, dict)]),
                   f"stress-policies-{r.name.replace('/', '-')}")
        load = report.get("load") or {}
        if isinstance(load, dict) and load.get("ooms") is not None:
            st.subheader(f"Load: {load.get('devices')} devices under {load.get('budget_scale')}x their budgets "
                         f"({'survived' if load.get('survived') else 'did not finish'})")
            _table(pd.DataFrame(load["ooms"]), f"stress-load-ooms-{r.name.replace('/', '-')}")


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


PAGES = {"Runs": runs_page, "Accuracy": accuracy_page, "Latency": latency_page, "Memory": memory_page,
         "Privacy": privacy_page, "Compression": compression_page, "Stress": stress_page}
