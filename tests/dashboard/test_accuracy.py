"""The Accuracy page draws the yardstick of `bench federation` (the deployed model and the oracles) as reference
rules beside its runs, found nested in the bench's folder; runs without one are drawn as before."""

import json

import pandas as pd
import pyarrow as pa
import pytest

from edgefleet.rundir import YARDSTICK
from tests.dashboard.conftest import YARDSTICK_FIGURES, write_bench, write_sim
from tests.dashboard.test_app import app, texts

SEEDS = ["bench-f/runs/fedavg-seed0", "bench-f/runs/fedavg-seed1"]
NAMES = {"start": "start (deployed)", "oracle": "oracle (shared heads, central)",
         "oracle_item_residual": "oracle_item_residual (heads + item vectors, central)",
         "oracle_full": "oracle_full (whole student, central)"}


@pytest.fixture
def bench_root(tmp_path):
    root = tmp_path / "runs"
    write_sim(root / "sim-plain")
    write_bench(root / "bench-f")
    return root


def accuracy(monkeypatch, root, runs):
    at = app(monkeypatch, root, runs)
    at.sidebar.radio[0].set_value("Accuracy").run()
    assert not at.exception, at.exception
    return at


def datasets(chart) -> dict[str, pd.DataFrame]:
    """The data a chart element sent to the browser, by dataset name."""
    return {d.name: pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets}


def layer_data(chart, mark: str) -> list[pd.DataFrame]:
    """The data of each layer of the chart drawn with `mark` (line, rule, text)."""
    found = datasets(chart)
    return [found[layer["data"]["name"]] for layer in json.loads(chart.proto.spec).get("layer", [])
            if layer["mark"]["type"] == mark]


def rules(chart, metric: str) -> dict[str, float]:
    """The reference rules a chart draws, each once: {reference: value of `metric`}."""
    (drawn,) = layer_data(chart, "rule")
    assert not drawn["reference"].duplicated().any()
    return dict(zip(drawn["reference"], drawn[metric]))


def test_the_runs_of_a_bench_are_found_and_its_yardstick_drawn_once(monkeypatch, bench_root):
    at = accuracy(monkeypatch, bench_root, SEEDS)
    assert set(SEEDS) <= set(at.sidebar.multiselect[0].options)
    charts = at.get("vega_lite_chart")
    assert len(charts) == 5  # a chart per metric of the task; on-device vs global and per tier as before
    per_metric = {json.loads(c.proto.spec).get("title"): c for c in charts[:3]}
    assert sorted(per_metric) == ["HR@10", "MRR", "NDCG@10"]
    for key, label in (("hr@10", "HR@10"), ("ndcg@10", "NDCG@10"), ("mrr", "MRR")):
        assert rules(per_metric[label], label) == {NAMES[e]: pytest.approx(v[key])
                                                   for e, v in YARDSTICK_FIGURES.items()}
    names = pd.concat(layer_data(per_metric["HR@10"], "text"))["name"]
    assert sorted(names) == ["oracle (shared heads, central) 0.610", "oracle_full (whole student, central) 0.640",
                             "oracle_item_residual (heads + item vectors, central) 0.700", "start (deployed) 0.550"]
    (lines,) = layer_data(per_metric["HR@10"], "line")
    assert set(lines["run"]) == set(SEEDS) and lines["HR@10"].max() == pytest.approx(0.57)
    assert "Grey dotted rules: the yardstick that `bench federation` measured" in " ".join(c.value for c in at.caption)


def test_a_yardstick_without_oracle_full_or_the_item_oracle_draws_the_other_two(monkeypatch, bench_root):
    # A classifier's bench leaves oracle_full null; a bench from before the item oracle does not hold that entry.
    older = {k: v for k, v in YARDSTICK_FIGURES.items() if k != "oracle_item_residual"}
    for seed in SEEDS:
        (bench_root / seed / YARDSTICK).write_text(json.dumps({**older, "oracle_full": None}))
    at = accuracy(monkeypatch, bench_root, SEEDS[:1])
    assert rules(at.get("vega_lite_chart")[0], "HR@10") == {NAMES["start"]: 0.55, NAMES["oracle"]: 0.61}


def test_different_yardsticks_are_not_drawn_and_the_page_says_why(monkeypatch, bench_root):
    other = {**YARDSTICK_FIGURES, "oracle": {**YARDSTICK_FIGURES["oracle"], "hr@10": 0.60}}
    write_bench(bench_root / "bench-g", names=("fedavg-seed0",), yardstick=other)
    at = accuracy(monkeypatch, bench_root, [SEEDS[0], "bench-g/runs/fedavg-seed0"])
    assert "carry different yardsticks" in " ".join(c.value for c in at.caption)
    assert "layer" not in json.loads(at.get("vega_lite_chart")[0].proto.spec)


def test_beside_a_run_without_one_the_yardstick_says_whose_it_is(monkeypatch, bench_root):
    at = accuracy(monkeypatch, bench_root, [SEEDS[0], "sim-plain"])
    assert rules(at.get("vega_lite_chart")[0], "HR@10")[NAMES["oracle"]] == pytest.approx(0.61)
    assert f"the yardstick of {SEEDS[0]} (the other runs carry none)" in " ".join(c.value for c in at.caption)


def test_a_run_without_a_yardstick_is_drawn_as_before(monkeypatch, bench_root):
    at = accuracy(monkeypatch, bench_root, ["sim-plain"])
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3 and [c.value for c in at.caption] == ["MovieLens-100K recommendation: sim-plain"]
    spec = json.loads(charts[0].proto.spec)  # one chart of every metric, as before: no layers, no rules
    assert "layer" not in spec and spec["mark"]["type"] == "line"
    assert spec["encoding"]["strokeDash"]["field"] == "metric"
    (long,) = datasets(charts[0]).values()
    assert sorted(long["metric"].unique()) == ["HR@10", "MRR", "NDCG@10"] and long["round"].min() == 0


def test_a_corrupt_yardstick_is_a_warning_and_no_rules(monkeypatch, bench_root):
    (bench_root / SEEDS[0] / YARDSTICK).write_text("{ not json")
    at = accuracy(monkeypatch, bench_root, SEEDS[:1])
    assert f"{SEEDS[0]}: yardstick.json cannot be read (JSONDecodeError)" in texts(at)
    assert "layer" not in json.loads(at.get("vega_lite_chart")[0].proto.spec)


def test_references_that_print_alike_are_one_rule_under_both_names(monkeypatch, bench_root):
    # What a bench writes when central training of the whole student kept the deployed model (no epoch beat it).
    same = {**YARDSTICK_FIGURES, "oracle_full": {**YARDSTICK_FIGURES["start"], "hr@10": 0.5504}}
    (bench_root / SEEDS[0] / YARDSTICK).write_text(json.dumps(same))
    at = accuracy(monkeypatch, bench_root, SEEDS[:1])
    assert rules(at.get("vega_lite_chart")[0], "HR@10") == {
        f"{NAMES['start']} = {NAMES['oracle_full']}": 0.55, NAMES["oracle"]: 0.61,
        NAMES["oracle_item_residual"]: 0.70}
