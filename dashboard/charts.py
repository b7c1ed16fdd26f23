"""Chart builders: DataFrames in, Altair charts out. No Streamlit and no file access here."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

TIER_ORDER = ["ram-2gb", "ram-3gb", "ram-4gb", "ram-6gb", "ram-8gb", "ram-12gb+"]
# Rounds are whole: over two rounds Vega still puts ticks at 0.5 and 1.5 (tickMinStep caps their count, not their
# step), which "d" printed as a second "1" and "2"; those ticks go unlabelled.
ROUND_AXIS = alt.Axis(tickMinStep=1, format="d", labelExpr="datum.value % 1 ? '' : datum.label")


def _order(x: str) -> list[str] | None:
    return TIER_ORDER if x == "tier" else None


OUTCOME_COLORS = alt.Scale(domain=["ok", "oom", "dropout", "straggler", "error"],
                           range=["#4c9a2a", "#d62728", "#9e9e9e", "#ff7f0e", "#000000"])


def metric_per_round(rounds: pd.DataFrame, metrics: list[str], start: dict | None, by: str = "run") -> alt.Chart:
    """Lines of metrics per round, with round 0 (the deployed model) when known."""
    frame = rounds[["round", by, *metrics]].copy()
    if start:
        for run in frame[by].unique():
            frame = pd.concat([pd.DataFrame([{"round": 0, by: run, **{m: start.get(m) for m in metrics}}]), frame])
    long = frame.melt(["round", by], var_name="metric", value_name="value").dropna()
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("round:Q", title="round", axis=ROUND_AXIS), y=alt.Y("value:Q", scale=alt.Scale(zero=False)),
        color=alt.Color(f"{by}:N"), strokeDash="metric:N", tooltip=["round", by, "metric", "value"])


def against_references(rounds: pd.DataFrame, metric: str, start: dict | None, references: pd.DataFrame,
                       by: str = "run") -> alt.Chart:
    """One metric per round, a line per run, under the figures it is measured against: `references` (columns
    reference and value, e.g. the oracle's) as grey dotted rules across the chart, each named where the runs leave
    room: at the end of the chart where they are farther from it (the start on the right, a target the runs approach
    on the left), on the side of the rule away from them."""
    frame = rounds[["round", by, metric]].copy()
    if start:
        frame = pd.concat([pd.DataFrame({"round": 0, by: frame[by].unique(), metric: start.get(metric)}), frame])
    frame = frame.dropna()
    y = alt.Y(f"{metric}:Q", title=metric, scale=alt.Scale(zero=False))
    lines = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("round:Q", title="round", axis=ROUND_AXIS), y=y,
        color=alt.Color(f"{by}:N", legend=alt.Legend(orient="bottom", columns=2, labelLimit=300)),
        tooltip=["round", by, metric])
    first, last = (frame.loc[frame["round"] == end, metric] for end in (frame["round"].min(), frame["round"].max()))

    def nearest(values: pd.Series, v: float) -> float:
        return float(values.iloc[(values - v).abs().argmin()]) if len(values) else -np.inf

    # References that print alike (an oracle that gained nothing over the start) are one rule under both names.
    refs = references.assign(shown=[f"{v:.3f}" for v in references["value"]]).groupby("shown", sort=False).agg(
        reference=("reference", " = ".join), value=("value", "first")).reset_index()
    left = [abs(nearest(first, v) - v) > abs(nearest(last, v) - v) for v in refs["value"]]
    above = [nearest(first if lf else last, v) <= v for lf, v in zip(left, refs["value"])]
    refs = refs.rename(columns={"value": metric}).assign(name=refs["reference"] + " " + refs["shown"], left=left,
                                                          above=above)
    tooltip = ["reference", alt.Tooltip(f"{metric}:Q", format=".4f")]
    layers = [lines, alt.Chart(refs).mark_rule(color="grey", strokeDash=[2, 3], strokeWidth=1.5).encode(
        y=y, tooltip=tooltip)]
    for (lf, ab), group in refs.groupby(["left", "above"]):
        layers.append(alt.Chart(group).mark_text(
            align="left" if lf else "right", baseline="bottom" if ab else "top", dx=4 if lf else -4,
            dy=-2 if ab else 2, color="dimgrey",
        ).encode(x=alt.value(0 if lf else "width"), y=y, text="name:N", tooltip=tooltip))
    return alt.layer(*layers).properties(title=metric, height=360)


def by_tier(devices: pd.DataFrame, column: str, title: str) -> alt.Chart:
    return alt.Chart(devices).mark_boxplot(extent="min-max").encode(
        x=alt.X("tier:N", sort=TIER_ORDER), y=alt.Y(f"{column}:Q", title=title),
        color=alt.Color("tier:N", sort=TIER_ORDER))


def stacked(frame: pd.DataFrame, x: str, value: str, color: str, title: str) -> alt.Chart:
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X(f"{x}:N", sort=_order(x)), y=alt.Y(f"{value}:Q", title=title), color=alt.Color(f"{color}:N"),
        tooltip=[x, color, value])


def outcomes_by(devices: pd.DataFrame, x: str) -> alt.Chart:
    counts = devices.groupby([x, "outcome"]).size().reset_index(name="device-rounds")
    return alt.Chart(counts).mark_bar().encode(
        x=alt.X(f"{x}:N", sort=_order(x)), y="device-rounds:Q", color=alt.Color("outcome:N", scale=OUTCOME_COLORS),
        tooltip=[x, "outcome", "device-rounds"])


def budget_vs_peak(devices: pd.DataFrame) -> alt.Chart:
    frame = devices.assign(budget_mb=devices["budget_bytes"] / 2**20,
                           peak_plus_model_mb=(devices["peak_bytes"] + devices["budget_bytes"]
                                               - devices["allowance_bytes"]) / 2**20)
    points = alt.Chart(frame).mark_circle(size=40, opacity=0.7).encode(
        x=alt.X("budget_mb:Q", title="budget (MB)"), y=alt.Y("peak_plus_model_mb:Q", title="model + peak (MB)"),
        color=alt.Color("outcome:N", scale=OUTCOME_COLORS), tooltip=["device", "tier", "plan", "outcome"])
    diagonal = alt.Chart(pd.DataFrame({"mb": [0.0, float(frame["budget_mb"].max())]})).mark_line(
        strokeDash=[4, 4], color="grey").encode(x="mb:Q", y="mb:Q")
    return points + diagonal


def histogram(frame: pd.DataFrame, column: str, title: str) -> alt.Chart:
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X(f"{column}:Q", bin=alt.Bin(maxbins=40), title=title), y="count():Q",
        color=alt.Color("tier:N", sort=TIER_ORDER))


def bars(frame: pd.DataFrame, x: str, y: str, title: str, color: str | None = None) -> alt.Chart:
    enc = {"x": alt.X(f"{x}:N", sort=_order(x)), "y": alt.Y(f"{y}:Q", title=title), "tooltip": [x, y]}
    if color:
        enc["color"] = alt.Color(f"{color}:N")
    return alt.Chart(frame).mark_bar().encode(**enc)


def line(frame: pd.DataFrame, x: str, y: str, color: str, title: str, runs: list[str] | None = None) -> alt.Chart:
    """A line per `color` value; `runs` fixes its colours (see run_color)."""
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X(f"{x}:Q", axis=ROUND_AXIS if x == "round" else alt.Axis()),
        y=alt.Y(f"{y}:Q", title=title, scale=alt.Scale(zero=False)),
        color=run_color(runs, color) if runs else f"{color}:N", tooltip=[x, y, color])


def run_color(runs: list[str] | None, by: str = "run", legend: bool = True) -> alt.Color:
    """Colour by run, each run the same colour in every chart of a page: the domain is `runs` (the runs picked, in
    order) rather than the runs that one chart happens to hold, in whatever order it holds them."""
    return alt.Color(f"{by}:N", sort=runs, scale=alt.Scale(domain=runs) if runs else alt.Undefined,
                     legend=alt.Undefined if legend else None)


def privacy_utility(points: pd.DataFrame, reference: float | None, metric: str, title: str,
                    tooltip: list[str]) -> alt.Chart:
    """`metric` (the task's headline, `title` on the axis) against epsilon: the noise sweep as a line (sorted by
    epsilon), other settings as labelled points, and the non-private run and the deployed model (before any round,
    `<metric>_start`) as horizontal rules."""
    kind = np.where(points.get("secagg", False), "DP + SecAgg+",
                    np.where(points.get("adaptive", False), "adaptive clipping", "fixed clipping"))
    frame = points.assign(setting=kind).sort_values("epsilon")
    sweep = frame[frame["setting"] == "fixed clipping"]
    scale = alt.Scale(zero=False, type="log")
    y = alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False), title=title)
    chart = alt.Chart(sweep).mark_line(point=True).encode(
        x=alt.X("epsilon:Q", scale=scale, title="epsilon (log)"), y=y, tooltip=tooltip)
    others = alt.Chart(frame[frame["setting"] != "fixed clipping"]).mark_point(size=90, filled=True).encode(
        x=alt.X("epsilon:Q", scale=scale), y=y, color="setting:N", tooltip=tooltip)
    layers = [chart, others]
    rules = [("non-private federated run", reference)]
    if f"{metric}_start" in frame:
        rules.append(("deployed model, before any round", float(frame[f"{metric}_start"].iloc[0])))
    rules = pd.DataFrame([{"reference": name, metric: v} for name, v in rules if v is not None])
    if len(rules):
        layers.append(alt.Chart(rules).mark_rule(strokeDash=[4, 4]).encode(y=y, strokeDash="reference:N",
                                                                           tooltip=["reference", metric]))
    return alt.layer(*layers)


def grouped_bars(frame: pd.DataFrame, x: str, y: str, group: str, title: str) -> alt.Chart:
    """One bar per (x, group), side by side: e.g. the smallest budget of each variant for each workload."""
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X(f"{x}:N", sort=None), xOffset=f"{group}:N", y=alt.Y(f"{y}:Q", title=title),
        color=f"{group}:N", tooltip=[x, group, y])


def per_run(frame: pd.DataFrame, value: str, title: str, group: str | None = None,
            runs: list[str] | None = None) -> alt.Chart:
    """A horizontal bar per run (its name reads across), side by side per `group` when given, else in the run's
    colour (`runs`: see run_color)."""
    enc = {"y": alt.Y("run:N", sort=runs, title=None), "x": alt.X(f"{value}:Q", title=title),
           "tooltip": ["run", *([group] if group else []), value]}
    enc.update({"yOffset": f"{group}:N", "color": f"{group}:N"} if group else
               {"color": run_color(runs, legend=False)})
    return alt.Chart(frame).mark_bar().encode(**enc).properties(height=alt.Step(40 // (2 if group else 1)))


def spread(frame: pd.DataFrame, value: str, title: str, runs: list[str] | None = None) -> alt.Chart:
    """A horizontal box per run, min to max, in the run's colour: e.g. each run's memory headroom over its
    devices."""
    return alt.Chart(frame).mark_boxplot(extent="min-max", size=20).encode(
        y=alt.Y("run:N", sort=runs, title=None), x=alt.X(f"{value}:Q", title=title),
        color=run_color(runs, legend=False)).properties(height=alt.Step(40))


def outcome_mix(devices: pd.DataFrame, by: str = "run", runs: list[str] | None = None) -> alt.Chart:
    """The share of each outcome among the device-rounds of each tier: a horizontal bar per `by` (a run, in the
    order of `runs`) in each tier's panel, the runs named once on the left so that no name is cut or dropped."""
    counts = devices.groupby(["tier", by, "outcome"]).size().reset_index(name="device-rounds")
    return alt.Chart(counts).mark_bar().encode(
        y=alt.Y(f"{by}:N", sort=runs, title=None, axis=alt.Axis(labelLimit=240)),
        x=alt.X("device-rounds:Q", stack="normalize", title=None,  # a title under each narrow panel would overlap
                axis=alt.Axis(format="%", values=[0, 0.5, 1])),
        color=alt.Color("outcome:N", scale=OUTCOME_COLORS), tooltip=["tier", by, "outcome", "device-rounds"],
    ).properties(width=100, height=alt.Step(22)).facet(column=alt.Column("tier:N", sort=TIER_ORDER, title=None))
