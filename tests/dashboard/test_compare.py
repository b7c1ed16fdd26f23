"""The Compare page puts the selected simulations side by side and exports them as CSV, an HTML report and a PNG."""

import json
import re
import struct

import altair as alt
import pandas as pd

from dashboard import data
from dashboard.report import PNG_WIDTH, html_report, png_report, vega_bundle
from dashboard.screens.compare import comparison
from dashboard.view import View, frames
from tests.dashboard.test_app import app, texts


def test_two_runs_side_by_side(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-a", "sim-dp"])
    at.sidebar.radio[0].set_value("Compare").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value  # a column per run, a row per figure
    assert sorted(table.columns) == ["sim-a", "sim-dp"]
    a, dp = table["sim-a"], table["sim-dp"]
    # conftest's devices: 12 a round, outcomes ok ok ok oom dropout straggler in turn, inference 120 + d ms.
    assert (a["participation"], a["oom"], dp["oom"]) == ("0.5", "0.1667", "0.1667")
    assert a["inference p50 (ms)"] == "124"  # the ok devices 0, 1, 2, 6, 7, 8
    assert (a["headline"], a["start"], a["last"], a["change"], a["rounds"]) == ("HR@10", "0.55", "0.57", "0.02", "2")
    assert (a["epsilon"], dp["epsilon"]) == ("", "0.8")
    assert (a["privacy"], dp["privacy"]) == ("none", "DP z=1.0, clip 0.1 adaptive")
    shown = texts(at)
    for heading in ("Global HR@10 per round (round 0 = the deployed model)", "Outcome mix per tier",
                    "On-device inference latency, device clock (p50 and p95)", "Memory headroom",
                    "Epsilon per round (runs with differential privacy)"):
        assert heading in shown
    assert len(at.get("vega_lite_chart")) == 5
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download the comparison as CSV", "Download the comparison as an HTML report",
                      "Download the comparison as PNG"]


def test_one_run_is_a_hint_and_a_report_is_not_a_simulation(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-a"])
    at.sidebar.radio[0].set_value("Compare").run()
    assert not at.exception and "Pick two or more simulation runs" in texts(at)
    at.sidebar.multiselect[0].set_value(["compress-a"]).run()
    assert not at.exception and at.get("vega_lite_chart") == []


def test_a_text_run_is_compared_on_its_own_headline(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-a", "sim-text"])
    at.sidebar.radio[0].set_value("Compare").run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value.loc["headline"].to_dict() == {"sim-a": "HR@10", "sim-text": "Accuracy"}
    shown = texts(at)
    assert "Global HR@10 per round" in shown and "Global Accuracy per round" in shown


def test_the_html_report_holds_the_table_and_every_chart_with_its_data():
    frame = pd.DataFrame({"run": ["a</script>", "b"], "ms": [1.5, 2.0]})
    chart = alt.Chart(frame).mark_bar().encode(x="run:N", y="ms:Q")
    page = html_report("Runs & more", "intro", [("Runs", frame)], [("Latency", chart), ("Again", chart)])
    assert page.startswith("<!DOCTYPE html>") and "<title>Runs &amp; more</title>" in page
    assert "<td>a&lt;/script&gt;</td>" in page and "<td>1.5</td>" in page
    specs = json.loads(re.search(r"const specs = (.*);\n", page).group(1).replace("<\\/", "</"))
    assert list(specs) == ["chart0", "chart1"]
    assert [r["run"] for r in next(iter(specs["chart0"]["datasets"].values()))] == ["a</script>", "b"]
    assert page.count("</script>") == 2  # the libraries and the one script: the data cannot close it early


def test_the_html_report_draws_its_charts_offline():
    """Vega, Vega-Lite and vega-embed are in the page (vl-convert's bundle), not fetched: no script has a src, and no
    address the page names is fetched by a script tag (the bundle's own strings name namespaces, not scripts)."""
    chart = alt.Chart(pd.DataFrame({"run": ["a", "b"], "ms": [1.5, 2.0]})).mark_bar().encode(x="run:N", y="ms:Q")
    page = html_report("Runs", "intro", [], [("Latency", chart)])
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts == ["<script>", "<script>"] and not re.search(r"src=[\"']?https?:", page)
    assert "cdn.jsdelivr.net" not in page
    bundle = vega_bundle()
    assert len(bundle) > 500_000 and "vegaEmbed" in bundle and bundle in page
    assert "</script" not in bundle  # it would end the page's script early


def test_the_png_holds_every_chart_of_two_runs(runs_root):
    runs = [data.load_run(runs_root / name, runs_root) for name in ("sim-a", "sim-dp")]
    rs, ds = frames(View(runs, None, None))
    _, figures = comparison(runs, rs, ds)
    assert len(figures) == 5
    png = png_report("EdgeFleet: runs compared", "sim-a, sim-dp", figures)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and len(png) > 50_000
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 2 * PNG_WIDTH and height > 1.5 * width  # scale 2; five charts, one under another


def specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def test_each_run_keeps_its_colour_and_every_name_is_shown(monkeypatch, runs_root):
    """Picked in an order that is not alphabetical, each run has one colour in every chart (the browser showed red
    for one run on the curve and for another on the headroom chart), and the outcome mix names each run once, across,
    beside its bars (rotated under narrow tier panels, half the names were dropped and the rest cut)."""
    at = app(monkeypatch, runs_root, ["sim-dp", "sim-a"])
    at.sidebar.radio[0].set_value("Compare").run()
    assert not at.exception, at.exception
    colours = []
    for spec in specs(at):
        inner = spec.get("spec", spec)
        color = inner.get("encoding", {}).get("color", {})
        if color.get("field") == "run":
            colours.append(color["scale"]["domain"])
    assert len(colours) == 3  # the curve, headroom and epsilon (these runs have no artifact)
    assert all(domain == ["sim-dp", "sim-a"] for domain in colours)
    mix = next(s for s in specs(at) if "facet" in s)
    y, x = mix["spec"]["encoding"]["y"], mix["spec"]["encoding"]["x"]
    assert (y["field"], y["sort"], x["stack"]) == ("run", ["sim-dp", "sim-a"], "normalize")
    assert x["title"] is None  # repeated under each panel, the titles ran into each other


def test_the_server_column_names_the_optimizer_and_the_released_average():
    from dashboard.screens.compare import _server

    assert _server({"server_optimizer": "fedavgm", "server_momentum": 0.9, "server_ema": 0.9}) == \
        "fedavgm lr 1, momentum 0.9, releases EMA 0.9"
    assert _server({"server_optimizer": "fedadam", "server_momentum": 0.9}) == "fedadam lr 0.03, beta1 0.9"
