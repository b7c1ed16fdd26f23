"""`edgefleet bench federation`: what federation reaches, measured against what it could reach.

On the task's test rows (the device users' test items for MovieLens, the test texts for your classifier with
`--data F --valid F --test F`), in one run directory:
- `start`: the deployed model;
- `oracle`: the same model with the same trainable parts (the shared heads; the encoder stays frozen INT8, as on a
  phone) trained on one machine over the training data the fleet's devices hold (the task's `centralized`; its
  checkpoint picked on validation data);
- `oracle_item_residual`: the oracle with one more trainable part, a free vector per catalogue item added to the
  heads' item vectors (FedMF-style), trained from zeros with the heads: what training item vectors on the device
  could add (MovieLens only; the run `residual` trains them on the devices);
- `oracle_full`: the whole student trained centrally on every user's data (compression/oracle_full.py; a
  classifier's: compression/textclf/oracle_full.py), the ceiling of the architecture;
- `baselines`: the task's classical models trained on the devices' training data (MovieLens: popularity, ItemKNN
  and BPR-MF; a classifier: the majority class and naive Bayes);
- `runs`: real Flower simulations (simulation/run.py) of each named run in `federation.runs` for each seed in
  `federation.seeds`, each with its curve per round, its share of the oracle's gain and the round at which it
  first reached 90% of its final gain. Each run directory also gets `yardstick.json` (start and oracles), which the
  dashboard's Accuracy page draws as reference lines. Run again with the same `--out`, a bench that was stopped
  goes on: finished runs are read back, an interrupted one resumes (the oracles and baselines are computed again);
  a run there made with other settings (`SAME_RUN`: fleet, cohort, rounds, seed, mechanism) is refused, not reused.
Every row deploys the same artifact to the same devices' data with the same negatives; the seeds change the fleet's
sampling, its devices' data order and their dropouts.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from compression.runtime import load_model
from compression.runtime.artifact import read_artifact
from edgefleet.config import Config, SimConfig, step_size
from edgefleet.errors import ConfigError
from edgefleet.progress import Reporter
from edgefleet.results import Results
from edgefleet.rundir import FEDERATION_REPORT, SIM_CONFIG, SUMMARY, YARDSTICK, prepare, write_json
from edgefleet.tasks import federated_task
from edgefleet.tasks.base import CentralSettings
from edgefleet.tasks.optim import optimizer_name
from server.recorder import Released
from simulation.intervals import share_interval
from simulation.run import run_simulate

TARGETS = {"share_of_oracle_gain": 0.9, "dp_share_of_gain": 0.7, "epsilon": 8.0, "epsilon_goal": 3.0}


@dataclass(frozen=True)
class RunSpec:
    """A named federated run: what it changes in the configured settings, and what it is for."""

    about: str
    settings: Callable[[Config], Config]


def _sim(cfg: Config, **changes) -> Config:
    return cfg.model_copy(update={"sim": cfg.sim.model_copy(update=changes)})


def _optimizer(cfg: Config, name: str) -> Config:
    """The devices' optimizer `name`; a configured sim.lr is another optimizer's step unless it is the same one."""
    same = name == optimizer_name(cfg.sim.local_optimizer, federated_task(cfg.task.name))
    return _sim(cfg, local_optimizer=name, lr=cfg.sim.lr if same else None)


def _private_fleet(cfg: Config) -> Config:
    """The configured settings on the DP run's fleet, cohort and rounds (`federation.dp_*`), with the devices'
    optimizer `federation.dp_local_optimizer`, without noise: the twin whose gain the DP run's is measured against,
    so that the two differ in the noise and the clipping only."""
    f = cfg.federation
    run = _optimizer(cfg, f.dp_local_optimizer)
    return _sim(run, devices=f.dp_devices, cohort=f.dp_cohort,
                rounds=f.dp_rounds or f.rounds)


def _dp(cfg: Config) -> Config:
    """The DP run's fleet, cohort and rounds with DP-FedAvg (adaptive clipping), its noise the smallest that keeps
    epsilon at `federation.dp_epsilon` after every round (the accountant the run reports with)."""
    from server.privacy.accounting import noise_for_epsilon
    from simulation.population import population_for

    f = cfg.federation
    run = _private_fleet(cfg)
    delta = f.dp_delta
    availability = population_for(run.sim)["availability"].to_numpy()
    rate = min(1.0, run.sim.cohort / float(availability.sum())) * float(availability.max())
    noise = noise_for_epsilon(f.dp_epsilon, rate, f.dp_devices, run.sim.rounds, delta)
    return run.model_copy(update={"privacy": cfg.privacy.model_copy(
        update={"noise": noise, "adaptive": True, "delta": delta})})


RUNS: dict[str, RunSpec] = {
    "fedavg": RunSpec("plain FedAvg (no server momentum)", lambda cfg: _sim(cfg, server_momentum=0.0)),
    "fedavgm": RunSpec("the configured settings (FedAvgM)", lambda cfg: cfg),
    "sgd": RunSpec("the configured settings with SGD on the device at the task's own rate (sim.local_optimizer)",
                   lambda cfg: _optimizer(cfg, "sgd")),
    "residual": RunSpec("the configured settings with devices training item vectors too (sim.item_residual)",
                        lambda cfg: _sim(cfg, item_residual=True)),
    "fedadam": RunSpec("the configured settings with FedAdam at the server",
                       lambda cfg: _sim(cfg, server_optimizer="fedadam")),
    "fedyogi": RunSpec("the configured settings with FedYogi at the server",
                       lambda cfg: _sim(cfg, server_optimizer="fedyogi")),
    "fedadagrad": RunSpec("the configured settings with FedAdagrad at the server",
                          lambda cfg: _sim(cfg, server_optimizer="fedadagrad")),
    "nodp": RunSpec("the configured settings on the DP run's fleet, cohort, rounds and device optimizer, without DP",
                    _private_fleet),
    "dp": RunSpec("the configured settings with DP-FedAvg at federation.dp_epsilon on federation.dp_devices devices, "
                  "cohort federation.dp_cohort", _dp),
}


def oracle_settings(cfg: Config, task) -> CentralSettings:
    """How the oracle trains: federation.oracle_*, the epochs and rate the task's own where unset."""
    f, own = cfg.federation, task.oracle_training
    return CentralSettings(f.oracle_epochs or int(own["epochs"]), f.oracle_batch_size, f.oracle_negatives,
                           f.oracle_lr or own["lr"], cfg.sim.seed, f.oracle_checks)


def share_of_gain(value: float, start: float, oracle: float) -> float | None:
    """(value - start) / (oracle - start): 1.0 reaches the oracle; None when the oracle gains nothing."""
    return None if oracle <= start else (value - start) / (oracle - start)


def rounds_to(curve: list[float], start: float, fraction: float = 0.9) -> int | None:
    """The first round whose value reaches `fraction` of the final gain over `start` (None without a gain)."""
    final = curve[-1] - start
    if final <= 0:
        return None
    return next(r for r, v in enumerate(curve, 1) if v - start >= fraction * final - 1e-12)


def release_curves(run_dir: Path, evaluate: Callable[[dict], dict], head: str, released: float,
                   recorded: list[float], decay: float) -> tuple[dict, dict]:
    """The headline per round of both release modes: the server's model itself, and its moving average
    (server/recorder.py `Released`) at the run's decay, or at `decay` for a run that released the server's model
    (`released` 0). The run recorded its own mode's curve (`recorded`); the other is scored from its checkpoints (the
    server's models), as its ServerApp would have: the average never reaches the devices, so one run gives both.
    Also returns the model the run released after its last round."""
    ema = f"ema {released or decay:g}"
    own, other = (ema, "server") if released else ("server", ema)
    results = Results(run_dir)
    average = Released(released or decay)
    scored, last = [], {}
    for r in range(1, results.completed_rounds() + 1):
        last = {"server": results.checkpoint(r)}
        last[ema] = average(last["server"], r)
        scored.append(float(evaluate(last[other])[head]))
    return {own: recorded, other: scored}, last[own]


def _release_ablation(seeds: list[dict], start: float, oracle: float, tail_rounds: int) -> dict:
    """Per release mode, over the seeds: the last round's and the tail's headline and share of the oracle's gain."""
    out = {}
    for mode in seeds[0]["release_curves"]:
        last = statistics.fmean(s["release_curves"][mode][-1] for s in seeds)
        tail = statistics.fmean(statistics.fmean(s["release_curves"][mode][-tail_rounds:]) for s in seeds)
        out[mode] = {"last": last, "tail": tail, "share_of_oracle_gain": share_of_gain(last, start, oracle),
                     "share_of_oracle_gain_tail": share_of_gain(tail, start, oracle)}
    return out


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def run_bench_federation(cfg: Config, out: Path, reporter: Reporter) -> dict:
    task = federated_task(cfg.task.name)
    unknown = [r for r in cfg.federation.runs if r not in RUNS]
    if unknown:
        raise ConfigError(f"unknown federation run(s) {', '.join(unknown)} (choose from {', '.join(RUNS)})")
    if "dp" in cfg.federation.runs and cfg.privacy.unit != "device":  # _dp calibrates to the device sampler's rate
        raise ConfigError("bench federation's dp run calibrates device-level noise: leave privacy.unit at \"device\"")
    out = prepare(out, FEDERATION_REPORT)
    model_path = cfg.sim.model
    if model_path is None:
        from simulation.prepare import build_model

        model_path = build_model(cfg, task, out, reporter)
    artifact = read_artifact(model_path)
    model = load_model(artifact)
    with reporter.stage("load the task and encode its texts"):
        data = task.load(cfg.task)
        task.check_artifact(artifact.config, data)
        fleet_dir = _fleet(task, data, cfg, out)
        texts = task.load_fleet(fleet_dir)[1]
        evaluate = task.evaluator(model, texts, data)
    keys = [m.key for m in task.metrics]
    head = task.headline.key
    shared = task.shared_params(artifact.tensors)
    start = _pick(evaluate(shared), keys)
    # The headline per test row of each model the report compares, for paired intervals (intervals.py).
    rows = {"start": evaluate.per_row(shared, head)}
    f = cfg.federation
    settings = oracle_settings(cfg, task)
    n_epochs = settings.epochs
    with reporter.stage(f"oracle: the shared heads trained centrally ({n_epochs} epochs)"):
        trained, epochs = task.centralized(model, fleet_dir, data, shared, settings, reporter.log)
    oracle = {**_pick(evaluate(trained), keys), "epochs": epochs}
    rows["oracle"] = evaluate.per_row(trained, head)
    residual = RESIDUAL_ORACLES.get(task.name)
    oracle_residual = None
    if residual:
        with reporter.stage(f"oracle_item_residual: the shared heads and a vector per item, central "
                            f"({n_epochs} epochs)"):
            oracle_residual, trained_residual = residual(task, model, fleet_dir, data, shared, settings,
                                                         reporter.log, evaluate, keys)
        rows["oracle_item_residual"] = evaluate.per_row(trained_residual, head)
    oracle_full = (_full_oracle(cfg, Path(model_path), out, reporter, task, texts, data, keys)
                   if task.name in FULL_ORACLES else None)
    with reporter.stage("baselines on the devices' training data"):
        baselines = task.baselines(cfg, data, fleet_dir)
    yardstick = {"start": start, "oracle": _pick(oracle, keys),
                 "oracle_item_residual": _pick(oracle_residual, keys) if oracle_residual else None,
                 "oracle_full": _pick(oracle_full, keys) if oracle_full else None}
    runs = []
    for name in f.runs:
        spec = RUNS[name]
        base = spec.settings(_sim(cfg, rounds=f.rounds, model=Path(model_path).resolve()))
        seeds, seed_rows = [], []
        for seed in f.seeds:
            run_dir = out / "runs" / f"{name}-seed{seed}"
            summary = _run(_sim(base, seed=seed), run_dir, reporter)
            write_json(run_dir / YARDSTICK, yardstick)
            rounds = Results(run_dir).rounds()
            curve = [float(v) for v in rounds[head]]
            # The run's own release mode, as configured (a run from before the average released the server's model).
            own = json.loads((run_dir / SIM_CONFIG).read_text())["sim"].get("server_ema", 0.0)
            with reporter.stage(f"{run_dir.name}: the other release mode from its checkpoints"):
                curves, released = release_curves(run_dir, evaluate, head, own, curve, f.release_decay)
            seed_rows.append(evaluate.per_row(released, head))
            if abs(float(seed_rows[-1].mean()) - curve[-1]) > 1e-6:  # the released model, rebuilt from checkpoints
                reporter.log(f"{run_dir.name}: the released model rebuilt from its checkpoints scores "
                             f"{seed_rows[-1].mean():.4f}, the run recorded {curve[-1]:.4f}")
            seeds.append({"seed": seed, "dir": str(run_dir.relative_to(out)), **_pick(summary, keys),
                          "epsilon": summary.get("epsilon"), "curve": {k: [float(v) for v in rounds[k]]
                                                                      for k in keys if k in rounds},
                          "rounds_to_90pct": rounds_to(curve, start[head]), "server_ema": own,
                          "release_curves": curves,
                          f"{head}_tail": statistics.fmean(curve[-f.tail_rounds:]),
                          "round_wall_s_mean": summary.get("round_wall_s_mean"),
                          "participation_rate": summary["participation_rate"], "oom_rate": summary["oom_rate"],
                          "outcomes_by_tier": summary.get("outcomes_by_tier")})
        value = statistics.fmean(s[head] for s in seeds)
        tail = statistics.fmean(s[f"{head}_tail"] for s in seeds)
        # Each run against the oracle that trains what its devices train.
        against = "oracle_item_residual" if base.sim.item_residual else "oracle"
        ceiling = (oracle_residual if base.sim.item_residual else oracle)[head]
        rows[name] = np.mean(seed_rows, axis=0)  # the seeds' mean per row, as the row's figure is their mean
        runs.append({"name": name, "about": spec.about, "devices": base.sim.devices, "cohort": base.sim.cohort,
                     "rounds": base.sim.rounds, "noise": base.privacy.noise, "oracle": against,
                     **{k: statistics.fmean(s[k] for s in seeds) for k in keys},
                     "spread": {k: _spread([s[k] for s in seeds]) for k in keys},
                     "epsilon": seeds[0]["epsilon"],
                     "share_of_oracle_gain": share_of_gain(value, start[head], ceiling),
                     "share_of_oracle_gain_interval": share_interval(rows["start"], rows[name], rows[against]),
                     f"{head}_tail": tail, "tail_rounds": min(f.tail_rounds, base.sim.rounds),
                     "share_of_oracle_gain_tail": share_of_gain(tail, start[head], ceiling),
                     "release_ablation": _release_ablation(seeds, start[head], ceiling, f.tail_rounds),
                     "seeds": seeds})
    # A DP run's cost is measured against its twin without noise (same fleet, cohort, rounds and seeds) when the
    # bench ran it, else against the configured non-private run.
    plain = next((r for r in runs if r["name"] == "nodp"), None) or \
        next((r for r in runs if r["noise"] is None and r["name"] != "fedavg"), None)
    for r in runs:
        private = plain is not None and r["noise"] is not None
        r["nonprivate_reference"] = plain["name"] if private else None
        r["share_of_nonprivate_gain"] = share_of_gain(r[head], start[head], plain[head]) if private else None
        r["share_of_nonprivate_gain_interval"] = (share_interval(rows["start"], rows[r["name"]], rows[plain["name"]])
                                                  if private else None)
        r["share_of_nonprivate_gain_tail"] = (share_of_gain(r[f"{head}_tail"], start[head], plain[f"{head}_tail"])
                                              if private else None)
    report = {"task": task.name, "headline": head, "test_rows": _test_rows(task, data),
              "start": start, "oracle": oracle, "oracle_item_residual": oracle_residual, "oracle_full": oracle_full,
              "baselines": baselines, "runs": runs,
              "settings": {"federation": f.model_dump(mode="json"), "sim": cfg.sim.model_dump(mode="json"),
                           "model": str(model_path)},
              "targets": TARGETS}
    task.write_description(out)
    write_json(out / FEDERATION_REPORT, report)
    print_bench_federation(report, out)
    return report


def _run(cfg: Config, run_dir: Path, reporter: Reporter) -> dict:
    """One federated run of the bench: a finished one in this bench directory is read back, an interrupted one is
    resumed after its last committed round (a bench stopped midway goes on where it stopped), else a new one."""
    if (run_dir / SIM_CONFIG).exists():
        _check_same_run(json.loads((run_dir / SIM_CONFIG).read_text()), cfg, run_dir)
    if (run_dir / SUMMARY).exists():
        reporter.log(f"{run_dir}: finished earlier in this bench directory, read back")
        return json.loads((run_dir / SUMMARY).read_text())
    if (run_dir / SIM_CONFIG).exists():
        return run_simulate(None, run_dir, reporter, resume=True)
    return run_simulate(cfg, run_dir, reporter)


# What makes a run of the bench the run its row names: a run read back or resumed must match the settings asked
# for in these, or its figures would stand under another row's settings. Settings outside the list may differ (a
# run from before a default changed reads back; the release mode is evaluated both ways from its checkpoints).
SAME_RUN = {"task": ("name", "seed", "num_negatives", "k"),
            "sim": ("devices", "cohort", "rounds", "seed", "item_residual", "server_optimizer", "server_momentum",
                    "local_epochs"),
            "privacy": ("noise", "secagg", "adaptive", "delta")}


def _check_same_run(stored: dict, asked: Config, run_dir: Path) -> None:
    """`stored`: the run's settings as written (not validated again: a run written under other presets or defaults
    may not pass today's cross-field checks, and only `SAME_RUN` matters here). A key a run predates holds its
    default."""
    pairs = []
    for section, keys in SAME_RUN.items():
        want = getattr(asked, section)
        had = stored.get(section, {})
        pairs += [(f"{section}.{key}", had.get(key, type(want).model_fields[key].default),
                   want.model_dump(mode="json")[key]) for key in keys]
    # The server's step as it ran: unset means the optimizer's own, so 1.0 and unset are the same FedAvgM step.
    sim = SimConfig.model_fields
    had_sim = stored.get("sim", {})
    pairs.append(("sim.server_lr", step_size(had_sim.get("server_optimizer", sim["server_optimizer"].default),
                                             had_sim.get("server_lr", sim["server_lr"].default)),
                  step_size(asked.sim.server_optimizer, asked.sim.server_lr)))
    differ = [f"{name} {had!r} (asked {want!r})" for name, had, want in pairs if had != want]
    if differ:
        raise ConfigError(f"{run_dir} was run with other settings: {', '.join(differ)}; give the bench another --out "
                          f"or remove that run directory")


def _pick(metrics: dict, keys: list[str]) -> dict:
    return {k: float(metrics[k]) for k in keys if k in metrics}


def _fleet(task, data, cfg: Config, out: Path) -> Path:
    """The fleet of the configured settings (devices, seed, partitioner), as a run directory holds it: the texts the
    devices encode, and the training data they hold, on which the oracle and the baselines train."""
    fleet_dir = out / "yardstick-fleet"
    fleet_dir.mkdir(exist_ok=True)
    task.prepare_fleet(data, cfg.sim, fleet_dir)
    return fleet_dir


def _test_rows(task, data) -> int:
    """How many test rows every figure is measured on: the device users' (MovieLens), or the test texts."""
    return int(len(data.test.users)) if task.name == "movielens" else int(len(data.test_y))


def _full_oracle(cfg: Config, model_path: Path, out: Path, reporter: Reporter, task, texts, data,
                 keys: list[str]) -> dict:
    """The task's whole student trained centrally (`FULL_ORACLES`), scored by the device runtime as the start is."""
    f = cfg.federation
    with reporter.stage(f"oracle_full: the whole student trained centrally ({f.full_epochs} epochs)"):
        path, epochs = FULL_ORACLES[task.name](cfg, model_path, out / "oracle_full", reporter, data)
    artifact = read_artifact(path)
    metrics = task.evaluator(load_model(artifact), texts, data)(task.shared_params(artifact.tensors))
    return {**_pick(metrics, keys), "epochs": epochs, "artifact": str(path.relative_to(out))}


def _movielens_full(cfg: Config, model_path: Path, out: Path, reporter: Reporter, data) -> tuple[Path, list[dict]]:
    from compression.oracle_full import train_full_oracle

    f = cfg.federation
    return train_full_oracle(model_path, cfg, out, reporter, epochs=f.full_epochs, lr=f.full_lr,
                             batch_size=f.full_batch_size, negatives=f.full_negatives,
                             max_steps_per_epoch=f.full_max_steps, seed=cfg.sim.seed)


def _textclf_full(cfg: Config, model_path: Path, out: Path, reporter: Reporter, data) -> tuple[Path, list[dict]]:
    """Every training row: the rows the fleet's devices hold are all of them unless a `user` partition has fewer
    devices than users, and the ceiling of the architecture is the student trained on all the task's data. A step
    is a batch of texts as the student's distillation had (`distill.batch_size`), not `federation.full_batch_size`,
    which sizes the recommender's catalogue-wide steps."""
    from compression.textclf.oracle_full import train_full_classifier

    f = cfg.federation
    return train_full_classifier(model_path, data.train_texts, data.train_y, data.valid_texts, data.valid_y, out,
                                 reporter, epochs=f.full_epochs, lr=f.full_lr, batch_size=cfg.distill.batch_size,
                                 max_steps_per_epoch=f.full_max_steps, seed=cfg.sim.seed)


def _movielens_residual_oracle(task, model, fleet_dir, data, shared, settings, log, evaluate,
                               keys) -> tuple[dict, dict]:
    """The oracle with one more trainable part: a free vector per catalogue item added to the head's item vectors
    (device_head.py `ITEM_RESIDUAL`, FedMF-style), from zeros: what training item vectors as well as the heads
    could reach (the run `residual` trains them on the devices). Returns its figures and its trained weights."""
    from edgefleet.tasks.movielens.device_head import with_item_residual

    start = with_item_residual(shared, data.catalogue.n_items)
    trained, epochs = task.centralized(model, fleet_dir, data, start, settings, log)
    return {**_pick(evaluate(trained), keys), "epochs": epochs}, trained


# What trains, per task that has another choice to measure centrally (MovieLens: an item-side residual).
RESIDUAL_ORACLES = {"movielens": _movielens_residual_oracle}


# The whole student trained centrally, per task: (cfg, model path, output directory, reporter, the task's data) ->
# (the re-quantized artifact's path, one row per epoch).
FULL_ORACLES = {"movielens": _movielens_full, "textclf": _textclf_full}


def print_bench_federation(report: dict, out: Path) -> None:
    console = Console(width=180)
    head = report["headline"]
    start, oracle = report["start"][head], report["oracle"][head]
    t = Table(title=f"bench federation: {head} on {report['test_rows']:,} test rows of the {report['task']} task "
                    "(2 cores)")
    for col in ("row", "devices", "cohort", "rounds", head, "spread (seeds)", "tail mean", "epsilon",
                "share of oracle gain (last [90% interval] / tail)", "rounds to 90%", "s / round"):
        t.add_column(col, justify="left" if col == "row" else "right")
    t.add_row("start: the deployed model", "", "", "", f"{start:.4f}", "", "", "", "0.00", "", "")
    t.add_row("oracle: shared heads, central", "", "", "", f"{oracle:.4f}", "", "", "", "1.00", "", "")
    if report.get("oracle_item_residual") is not None:
        value = report["oracle_item_residual"][head]
        share = share_of_gain(value, start, oracle)
        t.add_row("oracle_item_residual: heads + item vectors, central", "", "", "", f"{value:.4f}", "", "", "",
                  "-" if share is None else f"{share:.2f}", "", "")
    if report["oracle_full"] is not None:
        full = report["oracle_full"][head]
        share = share_of_gain(full, start, oracle)
        t.add_row("oracle_full: whole student, central", "", "", "", f"{full:.4f}", "", "", "",
                  "-" if share is None else f"{share:.2f}", "", "")
    for name, b in report["baselines"].items():
        t.add_row(f"baseline {name} (the devices' data)", "", "", "", f"{b[head]:.4f}", "", "", "", "", "", "")
    for r in report["runs"]:
        s = r["spread"][head]
        share = r["share_of_oracle_gain"]
        to90 = [x["rounds_to_90pct"] for x in r["seeds"] if x["rounds_to_90pct"] is not None]
        walls = [x["round_wall_s_mean"] for x in r["seeds"] if x["round_wall_s_mean"] is not None]
        tail = r["share_of_oracle_gain_tail"]
        against = "" if r.get("oracle", "oracle") == "oracle" else f" (vs {r['oracle']})"
        t.add_row(f"run {r['name']}{against}", f"{r['devices']:,}", str(r["cohort"]), str(r["rounds"]),
                  f"{r[head]:.4f}", f"±{s['std']:.4f} ({s['n']})", f"{r[f'{head}_tail']:.4f} (last {r['tail_rounds']})",
                  "-" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
                  f"{_share_text(share, r.get('share_of_oracle_gain_interval'))} / "
                  f"{'-' if tail is None else f'{tail:.2f}'}",
                  "-" if not to90 else f"{statistics.fmean(to90):.0f}",
                  "-" if not walls else f"{statistics.fmean(walls):.2f}")
    console.print(t)
    ab = Table(title=f"released model: the server's last one or its moving average ({head}, from each run's "
                     "checkpoints; the devices train from the server's model either way)")
    for col in ("run", "released", "last round", "tail mean", "share of oracle gain (last / tail)"):
        ab.add_column(col, justify="left" if col in ("run", "released") else "right")
    for r in report["runs"]:
        for mode, a in r.get("release_ablation", {}).items():
            shares = " / ".join("-" if a[k] is None else f"{a[k]:.2f}"
                                for k in ("share_of_oracle_gain", "share_of_oracle_gain_tail"))
            ab.add_row(r["name"], mode, f"{a['last']:.4f}", f"{a['tail']:.4f}", shares)
    console.print(ab)
    for r in report["runs"]:
        if r["share_of_nonprivate_gain"] is None:
            continue
        ref, interval = r["nonprivate_reference"], r.get("share_of_nonprivate_gain_interval")
        tail = r["share_of_nonprivate_gain_tail"]  # None when the non-private tail gained nothing
        console.print(f"{r['name']}: epsilon {r['epsilon']:.2f} keeps "
                      f"{_share_text(r['share_of_nonprivate_gain'], interval)} of {ref}'s gain at the last round, "
                      f"{'-' if tail is None else f'{tail:.2f}'} on the tail means (target >= "
                      f"{TARGETS['dp_share_of_gain']})")
        if interval is not None:
            if not interval["measurable"]:
                console.print(f"  not a finding: {ref}'s own gain is within the noise of the test rows")
            low, high = interval["reference_gain"]
            console.print(f"  {ref} gained {low:+.4f} to {high:+.4f} over the start, {r['name']} "
                          f"{interval['gain'][0]:+.4f} to {interval['gain'][1]:+.4f} ({interval['level']:.0%} "
                          f"intervals, paired on the same {report['test_rows']:,} rows)")
    console.print(f"report: {out / FEDERATION_REPORT}")


def _share_text(share: float | None, interval: dict | None) -> str:
    """A share with its interval, or a mark that its reference's gain is within the noise of the test rows."""
    if share is None:
        return "-"
    if interval is None:
        return f"{share:.2f}"
    if not interval["measurable"]:
        return f"{share:.2f} (reference's gain within noise)"
    low, high = interval["share"]
    return f"{share:.2f} [{low:.2f}, {high:.2f}]"
