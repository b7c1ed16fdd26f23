"""Every page renders against real-format run directories (Streamlit AppTest), and bad directories are messages."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.screens import PAGES

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def app(monkeypatch, root, runs=None):
    monkeypatch.setenv("EDGEFLEET_RUNS", str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if runs is not None:
        at.sidebar.multiselect[0].set_value(runs).run()
    return at


def texts(at) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.info] + [e.value for e in at.warning]
    return " ".join(str(p) for p in parts) + " " + " ".join(h.value for h in [*at.header, *at.subheader])


@pytest.mark.parametrize("page, heading, expect", [
    ("Runs", "Runs", "Compare: global HR@10 per round"),
    ("Accuracy", "Accuracy", "On-device vs global HR@10"),
    ("Latency", "Latency", "Virtual round time and stragglers per round"),
    ("Memory", "Memory", "Why devices ran out of memory"),
    ("Privacy", "Privacy", "no differential privacy"),
])
def test_simulation_pages(monkeypatch, runs_root, page, heading, expect):
    at = app(monkeypatch, runs_root, ["sim-a"])
    at.sidebar.radio[0].set_value(page).run()
    assert not at.exception, at.exception
    assert at.header[0].value == heading
    assert expect in texts(at)
    if page != "Privacy":
        assert len(at.get("vega_lite_chart")) >= 1


def test_privacy_page_shows_epsilon_clipping_and_the_curve(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-dp", "bench-privacy-a"])
    at.sidebar.radio[0].set_value("Privacy").run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Epsilon per round (sim-dp)" in shown and "Privacy-utility curve (bench-privacy-a)" in shown
    assert len(at.get("vega_lite_chart")) == 3  # epsilon, the adaptive clipping norm, the curve
    per_round = at.dataframe[0].value
    assert list(per_round["epsilon"]) == pytest.approx([0.4, 0.8])
    assert list(at.dataframe[1].value["epsilon"]) == [9.1, 2.2, 0.6]


def test_runs_page_compares_and_exports(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-a", "sim-live"])
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["run"]) == {"sim-a", "sim-live"}
    assert table.set_index("run").loc["sim-a", "hr@10"] == pytest.approx(0.57)
    assert table.set_index("run").loc["sim-live", "status"] == "running"
    assert len(at.get("download_button")) >= 1


def test_a_running_run_is_followed(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-live"])
    at.sidebar.radio[0].set_value("Accuracy").run()
    assert not at.exception
    assert "still running: 1 round(s) committed" in texts(at)


@pytest.mark.parametrize("page, run, expect", [
    ("Compression", "compress-a", "755,188 B"),
    ("Stress", "stress-a", "Measured peak vs budget"),
    ("Stress", "stress-a", "Smallest budget that fits, per variant and workload"),
    ("Stress", "stress-a", "Fixed vs adaptive policy in a fleet simulation"),
    ("Stress", "stress-a", "Load: 1000 devices under 0.5x their budgets (survived)"),
])
def test_report_pages(monkeypatch, runs_root, page, run, expect):
    at = app(monkeypatch, runs_root, [run])
    at.sidebar.radio[0].set_value(page).run()
    assert not at.exception
    shown = texts(at) + " ".join(str(m.value) for m in at.metric)
    assert expect in shown
    assert len(at.get("vega_lite_chart")) >= 1


def test_a_corrupt_run_is_a_warning_not_a_traceback(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-corrupt"])
    for page in PAGES:
        at.sidebar.radio[0].set_value(page).run()
        assert not at.exception, page
    at.sidebar.radio[0].set_value("Runs").run()
    assert "summary.json cannot be read" in texts(at)


def test_empty_and_missing_roots(monkeypatch, tmp_path):
    at = app(monkeypatch, tmp_path)
    assert not at.exception
    at.sidebar.radio[0].set_value("Memory").run()
    assert "No runs found" in texts(at)
    at = app(monkeypatch, tmp_path / "nowhere")
    assert not at.exception and "No run directory" in texts(at)


def test_the_tier_filter_narrows_device_figures(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-a"])
    assert at.sidebar.multiselect[1].options == ["ram-2gb", "ram-4gb", "ram-6gb"]
    at.sidebar.radio[0].set_value("Memory").run()
    at.sidebar.multiselect[1].set_value(["ram-2gb"]).run()
    assert not at.exception
    fallback = at.dataframe[-1].value
    assert set(fallback["tier"]) == {"ram-2gb"}


def test_a_text_classification_run_shows_its_own_metrics(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-text"])
    assert at.dataframe[0].value.set_index("run").loc["sim-text", "accuracy"] == pytest.approx(0.74)
    assert "Compare: global Accuracy per round" in texts(at)
    at.sidebar.radio[0].set_value("Accuracy").run()
    assert not at.exception, at.exception
    shown = texts(at)
    for expect in ("Global Accuracy and Macro-F1 per round", "On-device vs global Accuracy",
                   "Accuracy on the device per tier"):
        assert expect in shown
    assert "HR@10" not in shown and [c.value for c in at.caption] == ["Text classification: sim-text"]
    assert len(at.get("vega_lite_chart")) == 3
    rounds = at.dataframe[0].value
    assert list(rounds.columns) == ["run", "round", "accuracy", "macro_f1", "device_accuracy", "train_loss"]
    assert list(rounds["device_accuracy"]) == pytest.approx([2 / 3, 2 / 3])  # devices 1 and 2 of the ok 0, 1, 2
    for page in PAGES:
        at.sidebar.radio[0].set_value(page).run()
        assert not at.exception, page


def test_runs_of_different_tasks_are_compared_on_their_own_headline(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-a", "sim-text"])
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Compare: global HR@10 per round" in shown and "Compare: global Accuracy per round" in shown
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["sim-a", "task"] == "movielens" and table.loc["sim-text", "task"] == "textclf"
    assert table.loc["sim-text", "accuracy start"] == pytest.approx(0.70)
    at.sidebar.radio[0].set_value("Accuracy").run()
    assert not at.exception, at.exception
    # A section per task (in the sidebar's order of runs, newest first), each with its own table.
    assert sorted(c.value for c in at.caption) == ["MovieLens-100K recommendation: sim-a",
                                                   "Text classification: sim-text"]
    assert "On-device vs global HR@10" in texts(at) and "On-device vs global Accuracy" in texts(at)
    assert sorted(tuple(set(d.value["run"])) for d in at.dataframe) == [("sim-a",), ("sim-text",)]


def test_a_run_without_task_json_reads_as_the_movielens_task(monkeypatch, runs_root):
    at = app(monkeypatch, runs_root, ["sim-dp"])
    at.sidebar.radio[0].set_value("Accuracy").run()
    assert not at.exception, at.exception
    assert "Global HR@10, NDCG@10 and MRR per round (round 0 = the deployed model)" in texts(at)
    assert "On-device vs global HR@10" in texts(at)
    assert list(at.dataframe[0].value.columns) == ["run", "round", "hr@10", "ndcg@10", "mrr", "full_hr@10",
                                                   "device_hr@10", "device_ndcg@10", "train_loss"]
