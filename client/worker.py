"""What one worker process loads once and every device it emulates shares: the artifact, the catalogue, the fleet,
and the frozen encoder's outputs."""

from __future__ import annotations

import functools
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from client.memcap import KnownPeaks
from compression.runtime import load_model
from compression.runtime.artifact import read_artifact
from compression.runtime.memory_model import ModelDims
from compression.runtime.model import TextModel
from compression.runtime.quantize import QTensor
from edgefleet.config import Config
from edgefleet.rundir import FLEET_DIR, MODEL, PEAKS_DIR, SHARD, SIM_CONFIG, STATE_DIR, VARIANTS_DIR, VARIANTS_FILE
from edgefleet.tasks import federated_task


def _array_bytes(obj: Any, seen: set[int]) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, QTensor):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_array_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(_array_bytes(v, seen) for v in vars(obj).values())
    return 0


class Deployment:
    """One model the worker can run for a device: the artifact, its resident size, its encoder outputs, its
    dimensions for the memory model, and the micro-batch it trains in (None: the whole batch at once)."""

    def __init__(self, name: str, path: Path, texts: list[str], batch_size: int | None = None):
        self.name, self.batch_size = name, batch_size
        artifact = read_artifact(path)
        self.model = load_model(artifact)
        self.dims = ModelDims.from_artifact(artifact.config, artifact.vocab,
                                            {k: t.shape for k, t in artifact.tensors.items()})
        # Resident size of the loaded model on a device: its weights as the runtime holds them, and the vocabulary.
        vocab = sum(len(t) + 1 for t in self.model.tokenizer.get_vocab())
        self.model_bytes = _array_bytes(self.model, set()) + vocab
        self.encodings = EncoderCache(self.model, texts)


class Worker:
    """What one worker process loads once and every device it emulates shares: the task, the artifact, the texts
    devices encode, the fleet.

    A run deployed with the adaptive policy (`variants/variants.json`, written by simulation/variants.py) holds
    several variants of the model, richest first; each device picks one (client/device.py). Otherwise the run
    directory's model.eflt is the only one, or `model` when given.
    """

    def __init__(self, run_dir: Path, model: Path | None = None):
        self.run_dir = run_dir
        cfg = Config.model_validate(json.loads((run_dir / SIM_CONFIG).read_text()))
        self.task = federated_task(cfg.task.name)
        self.fleet, self.texts = self.task.load_fleet(run_dir / FLEET_DIR)
        # A device's own directory (sim.device_data "own") holds a fleet of that one device, its row 0.
        shard = run_dir / FLEET_DIR / SHARD
        self.holds = int(json.loads(shard.read_text())["device"]) if shard.exists() else None
        listed = run_dir / VARIANTS_DIR / VARIANTS_FILE
        self.fit_margin = 0.0
        if model is None and listed.exists():
            deployed = json.loads(listed.read_text())
            self.deployments = [Deployment(v["name"], run_dir / v["artifact"], self.texts, v.get("batch_size"))
                                for v in deployed["variants"]]
            self.fit_margin = float(deployed.get("fit_margin", 0.0))
        else:
            self.deployments = [Deployment("deployed", model or run_dir / MODEL, self.texts)]
        base = self.deployments[0]
        self.model, self.model_bytes, self.encodings = base.model, base.model_bytes, base.encodings
        # The peak of each device work's shapes once a device has completed it, shared by the host's workers (not
        # in a device's own storage: its SuperNode emulates that one device).
        self.peaks = KnownPeaks(run_dir / PEAKS_DIR if self.holds is None else None)
        (run_dir / STATE_DIR).mkdir(exist_ok=True)

    def row(self, device: int) -> int:
        """Where `device` is in the fleet this worker read."""
        if self.holds is None:
            return device
        if device != self.holds:
            raise ValueError(f"asked to run device {device}, but this device's storage holds device {self.holds}")
        return 0


class EncoderCache:
    """The frozen encoder's pooled vector of each item text in this worker process, and what computing it cost.

    The device encoder never changes during a run, so a text encodes to the same vector on every device, and a
    worker that emulates many devices computes it once. Each device is still charged for encoding its own texts:
    the CPU time measured when this worker encoded that text (untraced: tracing would double it), and the transient
    memory of one encode at that token length (tracemalloc, measured once per length). `sim.encoder_cache=false`
    encodes every text of every device afresh. Tokenizing happens here, outside any memory cap: the Rust tokenizer
    aborts the process when an allocation fails.
    """

    def __init__(self, model: TextModel, texts: list[str]):
        self.model, self.texts = model, texts
        # (item, max_tokens) -> (vector, CPU seconds of its encode, transient bytes of one encode at its length)
        self.vectors: dict[tuple[int, int | None], tuple[np.ndarray, float, int]] = {}
        self.transient: dict[int, int] = {}

    def _encode(self, item: int, max_tokens: int | None) -> tuple[np.ndarray, float, int]:
        ids = _truncate(self.model.tokenizer.encode(self.texts[item]).ids, max_tokens)
        start = time.thread_time()
        vector = self.model.encode_ids(ids).astype(np.float32)
        seconds = time.thread_time() - start
        if len(ids) not in self.transient:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            self.model.encode_ids(ids)
            self.transient[len(ids)] = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
        return vector, seconds, self.transient[len(ids)]

    def table(self, items: np.ndarray, max_tokens: int | None, reuse: bool) -> tuple[np.ndarray, float, int]:
        """(pooled vectors of `items`, CPU seconds a device spends encoding them, largest transient of one)."""
        if not reuse:
            self.vectors.clear()
        rows, seconds, transient = [], 0.0, 0
        for item in items:
            key = (int(item), max_tokens)
            if key not in self.vectors:
                self.vectors[key] = self._encode(int(item), max_tokens)
            vector, cost, peak = self.vectors[key]
            rows.append(vector)
            seconds += cost
            transient = max(transient, peak)
        return np.stack(rows), seconds, transient


def _truncate(ids: list[int], max_tokens: int | None) -> list[int]:
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    return ids[: max_tokens - 1] + ids[-1:]  # keep [SEP]


@functools.lru_cache(maxsize=2)
def worker(run_dir: str) -> Worker:
    """One Worker per process and run directory."""
    return Worker(Path(run_dir))
