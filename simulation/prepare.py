"""Everything a simulation reads, put in its run directory before Flower starts: config, model, fleet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from compression.runtime.artifact import read_artifact
from edgefleet.config import Config
from edgefleet.errors import ConfigError, DataError
from edgefleet.progress import Reporter
from edgefleet.rundir import COMPRESS_DIR, FLEET_DIR, MODEL, POPULATION, SIM_CONFIG, write_json
from edgefleet.tasks import federated_task
from edgefleet.tasks.base import FederatedTask
from simulation.population import population_for
from simulation.variants import deploy_variants


def deployable(path: Path, task: FederatedTask) -> Path:
    """The artifact, checked before any simulation work: it must be readable and made for the task's runtime."""
    artifact = read_artifact(path)  # refuses truncated, corrupt and wrong-version files with one line
    if artifact.config.get("runtime") != task.runtime:
        raise DataError(f"{path} is a {artifact.config.get('runtime')!r} model; the {task.name} task deploys "
                        f"{task.runtime!r}")
    return path


def build_model(cfg: Config, task: FederatedTask, out: Path, reporter: Reporter) -> Path:
    """The configured artifact, or one compressed now: after a `compress` (or a `make demo`) with the same
    settings, its teacher and student come from the cache and nothing trains."""
    if cfg.sim.model is not None:
        return deployable(cfg.sim.model, task)
    from compression.jobs import compress_job

    reporter.log("no sim.model given: compressing the teacher first (--set sim.model=PATH deploys an artifact)")
    # Only the students the deployment can choose from: with distill.deploy = "best" every variant `compress` would
    # train, so that the same student ships; with "configured" only that one (the others would take longer than the
    # fleet). The students' cache key leaves distill.ablation and distill.deploy out, so after a `compress` with the
    # same settings nothing trains here.
    only = cfg.distill.deploy == "configured"
    quiet = cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"ablation": cfg.distill.ablation
                                                                                         and not only})})
    compress_job(task.name)(quiet, out / COMPRESS_DIR, reporter)
    return out / COMPRESS_DIR / MODEL


def prepare_fleet(cfg: Config, out: Path, reporter: Reporter) -> None:
    task = federated_task(cfg.task.name)
    population = population_for(cfg.sim)  # first: a bad profile file fails before any slow work
    if cfg.sim.model is not None:
        deployable(cfg.sim.model, task)  # a bad model file fails before any slow work too
    with reporter.stage(f"load the {task.name} data"):
        data = task.load(cfg.task)  # before the model is built: bad data fails before any training
    with reporter.stage("prepare the model"):
        model = build_model(cfg, task, out, reporter)
        task.check_artifact(read_artifact(model).config, data)
        if model.resolve() != (out / MODEL).resolve():
            shutil.copyfile(model, out / MODEL)
        if cfg.sim.policy == "adaptive":  # each device picks one of these by its budget (client/device.py)
            deploy_variants(out / MODEL, out, cfg.sim.ladder, cfg.sim.fit_margin)
    with reporter.stage(f"give {cfg.sim.devices:,} devices their data and profiles"):
        fleet_dir = out / FLEET_DIR
        fleet_dir.mkdir(exist_ok=True)
        task.prepare_fleet(data, cfg.sim, fleet_dir)
        if cfg.privacy.unit == "user" and getattr(task.load_fleet(fleet_dir)[0], "device_user", None) is None:
            raise ConfigError(f"privacy.unit \"user\" needs a fleet that says which user owns each device; the "
                              f"{task.name} task's does not")
        population.to_parquet(fleet_dir / POPULATION, index=False)
    task.write_description(out)
    # Absolute, so that a reader elsewhere (the dashboard) finds the model's compression report beside it.
    sim = cfg.sim.model_copy(update={"model": model.resolve()})
    write_json(out / SIM_CONFIG, json.loads(cfg.model_copy(update={"sim": sim}).model_dump_json()))
