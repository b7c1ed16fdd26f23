"""`edgefleet bench sim`: EdgeFleet at 1,000 and at 10,000 devices, and the plain Flower reference at 10,000 doing
the same device work, each with the same cohort and rounds, one after the other on this machine.

Round 1 of every run includes starting Ray's workers (they import the stack): it is shown, and the steady-state
figures use the later rounds. Throughput counts device-rounds that did their work (any outcome but a failure). Each
EdgeFleet run also says where the wall time of its later rounds went (edgefleet/results.py WALL_PARTS), from what the
ServerApp and the ClientApps measured during that run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from edgefleet.config import Config
from edgefleet.progress import Reporter
from edgefleet.results import WALL_PARTS, Results
from edgefleet.rundir import BENCH_SIM, SUMMARY, prepare, write_json
from edgefleet.tasks import federated_task
from simulation.launch import FlowerSim, SimulationFailed, write_app
from simulation.prepare import prepare_fleet
from simulation.reference import REPLIES, TIMES
from simulation.run import run_simulate

TARGETS = {"peak_rss_bytes_10k": 8 * 2**30, "round_time_ratio_10k_1k": 1.5, "throughput_ratio": 1.5}


def _steady(walls: list[float]) -> float:
    later = walls[1:] or walls
    return sum(later) / len(later)


def _steady_rate(done: list[int], walls: list[float]) -> float:
    """Device-rounds that did their work per second of wall time, over the rounds after the first."""
    return sum(done[1:] or done) / sum(walls[1:] or walls)


def round_breakdown(rounds: pd.DataFrame) -> dict[str, float]:
    """Mean seconds of each part of a round's wall time over the rounds after the first (all of them if only one);
    empty for results written before the breakdown was recorded."""
    later = rounds.iloc[1:] if len(rounds) > 1 else rounds
    columns = {part: f"wall_{part}_s" for part in WALL_PARTS}
    if not len(later) or not all(c in later for c in columns.values()):
        return {}
    return {part: float(later[c].mean()) for part, c in columns.items()}


def run_reference(cfg: Config, out: Path, reporter: Reporter) -> dict:
    out = prepare(out, SUMMARY)
    prepare_fleet(cfg, out, reporter)
    app_dir = write_app(out / "app", "plainflower", "simulation.reference:serverapp", "simulation.reference:clientapp")
    with FlowerSim(out, cfg.sim.workers) as sim:
        started = time.perf_counter()
        sim.submit(app_dir, cfg.sim.devices, {"run-dir": str(out.resolve())})
        times = out / TIMES

        def rounds_done() -> int:
            return max(0, len(times.read_text().splitlines()) - 1) if times.exists() else 0

        with reporter.stage(f"plain Flower reference ({cfg.sim.devices:,} supernodes)", total=cfg.sim.rounds) as adv:
            shown = [0]

            def tick() -> None:
                if rounds_done() > shown[0]:
                    adv(rounds_done() - shown[0])
                    shown[0] = rounds_done()

            status = sim.follow(lambda: rounds_done() >= cfg.sim.rounds, tick)
        if rounds_done() < cfg.sim.rounds:
            raise SimulationFailed(f"the reference run ended with status {status!r}; see {sim.save_log()}")
        wall = time.perf_counter() - started
        peak = sim.peak_rss
    stamps = [json.loads(line)["t"] for line in times.read_text().splitlines()]
    walls = [b - a for a, b in zip(stamps, stamps[1:])]
    replies = [json.loads(line)["replies"] for line in (out / REPLIES).read_text().splitlines()]
    summary = {"devices": cfg.sim.devices, "rounds": cfg.sim.rounds, "cohort": cfg.sim.cohort, "round_wall_s": walls,
               "errors": int(cfg.sim.cohort * len(replies) - sum(replies)),  # Flower-level failures send no reply
               "device_rounds_per_s": _steady_rate(replies, walls),
               "peak_rss_bytes": peak, "wall_s": wall}
    write_json(out / SUMMARY, summary)
    return summary


def _edgefleet(cfg: Config, out: Path, reporter: Reporter) -> dict:
    summary = run_simulate(cfg, out, reporter)
    rounds = Results(out).rounds()
    walls = [float(w) for w in rounds["wall_s"]]
    done = (rounds["sampled"] - rounds["error"]).tolist()  # a device that failed did no work: not throughput
    return {**summary, "round_wall_s": walls, "errors": int(rounds["error"].sum()),
            "device_rounds_per_s": _steady_rate(done, walls), "round_breakdown_s": round_breakdown(rounds)}


def run_bench_sim(cfg: Config, out: Path, reporter: Reporter, devices: int = 10_000, small: int = 1_000,
                  cohort: int = 100, rounds: int = 3) -> dict:
    out = prepare(out, BENCH_SIM)
    model = cfg.sim.model
    if model is None:
        from simulation.prepare import build_model

        model = build_model(cfg, federated_task(cfg.task.name), out, reporter)

    def with_sim(n: int) -> Config:
        return cfg.model_copy(update={"sim": cfg.sim.model_copy(update={
            "devices": n, "cohort": cohort, "rounds": rounds, "model": model})})

    runs = {
        "edgefleet_small": _edgefleet(with_sim(small), out / f"edgefleet-{small}", reporter),
        "edgefleet": _edgefleet(with_sim(devices), out / f"edgefleet-{devices}", reporter),
        "plain_flower": run_reference(with_sim(devices), out / f"plain-flower-{devices}", reporter),
    }
    ef, small_run, ref = runs["edgefleet"], runs["edgefleet_small"], runs["plain_flower"]
    ratios = {
        "round_time_ratio_10k_1k": _steady(ef["round_wall_s"]) / _steady(small_run["round_wall_s"]),
        "throughput_ratio": ef["device_rounds_per_s"] / ref["device_rounds_per_s"],
        "peak_rss_ratio": ef["peak_rss_bytes"] / ref["peak_rss_bytes"],
    }
    report = {"devices": devices, "small": small, "cohort": cohort, "rounds": rounds, "runs": runs, "ratios": ratios,
              "targets": TARGETS}
    write_json(out / BENCH_SIM, report)
    print_bench_sim(report)
    return report


def print_bench_sim(report: dict) -> None:
    console = Console(width=110)
    table = Table(title=f"bench sim: cohort {report['cohort']}, {report['rounds']} rounds (2 cores)")
    for col in ("run", "devices", "round 1 (s)", "later rounds (s)", "device-rounds/s", "failed", "peak RSS (GiB)"):
        table.add_column(col, justify="left" if col == "run" else "right")
    names = {"edgefleet_small": "EdgeFleet", "edgefleet": "EdgeFleet", "plain_flower": "plain Flower"}
    for key, run in report["runs"].items():
        walls = run["round_wall_s"]
        table.add_row(names[key], f"{run['devices']:,}", f"{walls[0]:.2f}", f"{_steady(walls):.2f}",
                      f"{run['device_rounds_per_s']:.2f}", str(run["errors"]), f"{run['peak_rss_bytes'] / 2**30:.2f}")
    console.print(table)
    print_breakdown(console, report)
    r, ef = report["ratios"], report["runs"]["edgefleet"]
    rows = [
        (f"peak RSS at {report['devices']:,} devices", f"{ef['peak_rss_bytes'] / 2**30:.2f} GiB", "<= 8 GiB",
         ef["peak_rss_bytes"] <= TARGETS["peak_rss_bytes_10k"]),
        (f"round time {report['devices']:,} / {report['small']:,} devices", f"{r['round_time_ratio_10k_1k']:.2f}x",
         "<= 1.5x", r["round_time_ratio_10k_1k"] <= TARGETS["round_time_ratio_10k_1k"]),
        ("throughput EdgeFleet / plain Flower", f"{r['throughput_ratio']:.2f}x", ">= 1.5x",
         r["throughput_ratio"] >= TARGETS["throughput_ratio"]),
        ("peak RSS EdgeFleet / plain Flower", f"{r['peak_rss_ratio']:.2f}x", "", None),
    ]
    targets = Table(title="against the targets")
    for col in ("figure", "measured", "target", ""):
        targets.add_column(col)
    for name, value, target, met in rows:
        targets.add_row(name, value, target, "" if met is None else ("met" if met else "NOT met"))
    console.print(targets)
    console.print(pd.Series({k: round(v, 3) for k, v in r.items()}).to_string())


def print_breakdown(console: Console, report: dict) -> None:
    """Where the wall time of a later round went, for each EdgeFleet run: seconds and share of the round."""
    runs = {key: run for key, run in report["runs"].items() if run.get("round_breakdown_s")}
    if not runs:
        return
    table = Table(title="where a round's wall time goes (later rounds, mean; devices: the busiest worker)")
    table.add_column("part")
    table.add_column("what")
    for run in runs.values():
        table.add_column(f"{run['devices']:,} devices (s)", justify="right")
        table.add_column("share", justify="right")
    for part, what in WALL_PARTS.items():
        cells = []
        for run in runs.values():
            seconds, total = run["round_breakdown_s"][part], _steady(run["round_wall_s"])
            cells += [f"{seconds:.2f}", f"{seconds / total:.0%}" if total > 0 else ""]
        table.add_row(part, what, *cells)
    table.add_row("round", "wall time", *[c for run in runs.values()
                                          for c in (f"{_steady(run['round_wall_s']):.2f}", "100%")])
    console.print(table)
