"""One typed configuration, built from a preset, an optional TOML file and CLI overrides, validated once."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.errors import ConfigError

PresetName = Literal["tiny", "default", "quick", "full"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(_Section):
    """The recommendation task: split, ownership and evaluation protocol (DESIGN.md §1)."""

    seed: int = 0
    server_fraction: float = Field(0.10, gt=0.0, lt=1.0)
    num_negatives: int = Field(99, ge=1, le=1000)
    k: int = Field(10, ge=1, le=100)
    min_train_items: int = Field(1, ge=1)
    max_eval_users: int | None = Field(None, ge=1)


class TeacherConfig(_Section):
    """The MiniLM two-tower teacher trained on server-owned data."""

    max_len: int = Field(32, ge=8, le=128)
    freeze_layers: int = Field(4, ge=0, le=6)
    dim: int = Field(256, ge=8, le=1024)
    history_len: int = Field(50, ge=1, le=500)
    batch_size: int = Field(64, ge=1)
    negatives: int = Field(256, ge=1)
    epochs: int = Field(5, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    lr: float = Field(1e-4, gt=0)
    head_lr: float = Field(2e-3, gt=0)
    temperature: float = Field(0.05, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 0


class BaselineConfig(_Section):
    """Classical recommenders trained on the same server-owned data as the teacher."""

    bpr_dim: int = Field(64, ge=1)
    bpr_epochs: int = Field(60, ge=1)
    bpr_lr: float = Field(0.01, gt=0)
    bpr_reg: float = Field(1e-4, ge=0)
    bpr_foldin_steps: int = Field(100, ge=1)
    knn_shrink: float = Field(10.0, ge=0)
    seed: int = 0


class VocabConfig(_Section):
    """Hard token pruning: how many vocabulary tokens the student keeps, scored by teacher attention."""

    size: int = Field(4096, ge=128, le=30522)
    attention_weight: float = Field(0.5, ge=0.0, le=1.0)


class StudentConfig(_Section):
    """The compact student: a small BERT with factorized embeddings, or an XtremeDistil BiLSTM."""

    kind: Literal["bert", "bilstm"] = "bert"
    embed_dim: int = Field(64, ge=8, le=384)
    hidden: int = Field(128, ge=16, le=384)
    layers: int = Field(2, ge=1, le=6)
    heads: int = Field(4, ge=1, le=12)
    ffn: int = Field(512, ge=16, le=1536)
    lstm_hidden: int = Field(96, ge=8, le=512)
    keep_ratio: float = Field(1.0, gt=0.0, le=1.0)
    prune_after: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "StudentConfig":
        if self.hidden % self.heads:
            raise ValueError(f"student.hidden ({self.hidden}) must be a multiple of student.heads ({self.heads})")
        if self.kind == "bert" and self.prune_after > self.layers:
            raise ValueError("student.prune_after must not exceed student.layers")
        return self


class DistillConfig(_Section):
    """Student training: pre-training on the transfer set, then cross-distillation (or plain KD) on the task."""

    method: Literal["cross", "kd", "xtremedistil"] = "cross"
    pretrain_epochs: int = Field(4, ge=0)
    epochs: int = Field(3, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    negatives: int = Field(256, ge=1)
    lr: float = Field(2e-3, gt=0)
    teacher_lr: float = Field(1e-5, ge=0)
    temperature: float = Field(2.0, gt=0)
    w_task: float = Field(1.0, ge=0)
    w_kd: float = Field(1.0, ge=0)
    w_hidden: float = Field(1.0, ge=0)
    w_attn: float = Field(0.5, ge=0)
    w_agree: float = Field(0.5, ge=0)
    w_genre: float = Field(0.5, ge=0)
    ablation: bool = True
    transfer_size: int = Field(20000, ge=100)
    seed: int = 0


class QuantConfig(_Section):
    """Weight quantization of the deployed artifact."""

    bits: Literal[4, 8] = 8
    int4_group: int = Field(32, ge=8)
    qat_steps: int = Field(60, ge=0)


class MeasureConfig(_Section):
    """How latency is sampled: batch-1 encodes of this many catalogue texts, each repeated."""

    latency_texts: int = Field(200, ge=1)
    latency_repeats: int = Field(3, ge=1)


class VariantConfig(_Section):
    """A leaner deployment of the same trained student (compression/runtime/variants.py); unset fields keep
    sim.model's."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    bits: Literal[4, 8] | None = None
    vocab: int | None = Field(None, ge=8)  # keep the first (best-scored) tokens
    keep_ratio: float | None = Field(None, gt=0.0, le=1.0)  # input-token pruning
    max_len: int | None = Field(None, ge=4, le=128)  # tokens per text
    # Micro-batch: gradient accumulation over sim.batch_size (the same update, fewer activations alive at once).
    batch_size: int | None = Field(None, ge=1)


# Richest first. Memory falls mostly with the batch (activations of the head's backward); INT4 and a smaller
# vocabulary shrink only the word table (the runtime holds the other weights in float32), shorter texts the encode.
# Below a batch of 4 a device saves little (the item table's arrays dominate) and takes far longer: every
# micro-batch projects and back-propagates through the whole local table.
ADAPTIVE_VARIANTS = (VariantConfig(name="int8"), VariantConfig(name="int8-b8", batch_size=8),
                     VariantConfig(name="int4-v512-len16-b4", bits=4, vocab=512, max_len=16, batch_size=4))
# One knob at a time against the deployed model, then the adaptive ladder's combinations.
STRESS_VARIANTS = (VariantConfig(name="int8"), VariantConfig(name="int4", bits=4),
                   VariantConfig(name="vocab-1024", vocab=1024), VariantConfig(name="vocab-512", vocab=512),
                   VariantConfig(name="keep-0.5", keep_ratio=0.5), VariantConfig(name="len-16", max_len=16),
                   VariantConfig(name="batch-8", batch_size=8), VariantConfig(name="batch-2", batch_size=2),
                   *ADAPTIVE_VARIANTS[2:])
QUICK_VARIANTS = tuple(v for v in STRESS_VARIANTS if v.name not in ("vocab-512", "batch-2"))


class SimConfig(_Section):
    """The federated simulation (DESIGN.md §3, §4): the fleet, the rounds, and each device's local work."""

    devices: int = Field(1000, ge=1, le=1_000_000)
    rounds: int = Field(10, ge=1, le=10_000)
    cohort: int = Field(100, ge=1, le=10_000)
    seed: int = 0
    model: Path | None = None  # a model.eflt to deploy; unset: `compress` builds one into the run directory
    population: Path | None = None  # a CSV/Parquet of device profiles; unset: drawn from the phone tiers
    min_items: int = Field(4, ge=2)  # shortest window of a user's history one device holds
    local_epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    negatives: int = Field(32, ge=1)
    lr: float = Field(2e-4, gt=0)  # the device's Adam on the shared head
    personal_lr: float = Field(0.5, ge=0)  # SGD on the personal vector
    server_lr: float = Field(1.0, gt=0)  # FedAvgM; 1.0 and momentum 0 is plain FedAvg
    server_momentum: float = Field(0.5, ge=0, lt=1)
    fallback: Literal["ladder", "none"] = "ladder"
    update_bits: Literal[32, 8] = 32
    deadline_s: float = Field(2.5, gt=0)  # on the virtual clock; devices later than this are stragglers
    workers: int = Field(2, ge=1, le=64)  # Ray actors running ClientApp calls (one CPU each)
    encoder_cache: bool = True  # reuse the frozen encoder's outputs within a worker (client/device.py EncoderCache)
    # Which model each device runs: "fixed" deploys sim.model to every device; "adaptive" deploys `variants` of it
    # (richest first) and each device picks the richest its budget fits by the memory model (client/device.py).
    policy: Literal["fixed", "adaptive"] = "fixed"
    variants: tuple[VariantConfig, ...] = ()  # empty: ADAPTIVE_VARIANTS
    # A device picks a variant whose predicted bytes times (1 + fit_margin) fit its budget. The cap in a long-lived
    # worker can fail an allocation before the traced peak reaches the allowance (allocator fragmentation): up to
    # ~13% short of it in `edgefleet stress --preset quick`; a device that guessed wrong steps down the variants.
    fit_margin: float = Field(0.10, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_variants(self) -> "SimConfig":
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("sim.variants must have distinct names")
        return self

    @property
    def ladder(self) -> tuple[VariantConfig, ...]:
        """The variants an adaptive run deploys, richest first; the first is sim.model as it is."""
        return self.variants or ADAPTIVE_VARIANTS


class StressConfig(_Section):
    """`edgefleet stress`: device budgets x model variants x workloads under the real memory cap, then fleet runs
    that compare the fixed and adaptive policies, and a fleet under tight caps (simulation/stress.py)."""

    budgets_mb: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)  # measured for every variant and workload
    resolution_kb: int = Field(16, ge=1)  # the bisection stops when fits and fails are this close
    timeout_s: float = Field(20.0, gt=0)  # a capped run that takes longer counts as out of memory (client/memcap.py)
    variants: tuple[VariantConfig, ...] = ()  # empty: STRESS_VARIANTS
    history_quantile: float = Field(0.9, ge=0.0, le=1.0)  # the reference device's history length, in the fleet
    devices: int = Field(300, ge=1)  # the policy comparison's fleet
    rounds: int = Field(2, ge=1)
    cohort: int = Field(40, ge=1)
    load_devices: int = Field(1000, ge=1)  # the load run: a fleet whose budgets are scaled down
    load_cohort: int = Field(100, ge=1)
    load_rounds: int = Field(1, ge=1)
    load_budget_scale: float = Field(0.5, gt=0.0, le=1.0)
    fleet: bool = True  # false: the sweep only, no simulations

    @model_validator(mode="after")
    def _check(self) -> "StressConfig":
        b = self.budgets_mb
        if not b or any(x <= 0 for x in b) or any(x >= y for x, y in zip(b, b[1:])):
            raise ValueError(f"stress.budgets_mb must be positive and increasing, e.g. [1, 2, 4, 8], got {list(b)}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("stress.variants must have distinct names")
        if self.cohort > self.devices or self.load_cohort > self.load_devices:
            raise ValueError("stress.cohort and stress.load_cohort cannot exceed their fleet's devices")
        return self

    @property
    def sweep(self) -> tuple[VariantConfig, ...]:
        return self.variants or STRESS_VARIANTS


class PrivacyConfig(_Section):
    """Privacy of the devices' updates (server/privacy.py): client-level DP-FedAvg and SecAgg+.

    With `noise` set, each round samples devices by Poisson sampling (rate cohort/devices), clips every update to
    `clip` (L2), sums them over the expected cohort and adds Gaussian noise of std noise * clip / cohort; an RDP
    accountant reports epsilon at `delta` (default 1/devices) after every round. With `secagg`, the server sees only
    the sum (Flower's SecAgg+), the devices clip their own updates and quantize them into SecAgg's field.
    """

    noise: float | None = Field(None, ge=0)  # noise multiplier z; unset: no differential privacy
    clip: float = Field(0.1, gt=0)  # L2 clipping norm of one device's update (the initial one when adaptive)
    adaptive: bool = False  # adaptive clipping (Andrew et al. 2021): the norm tracks a quantile of update norms
    target_quantile: float = Field(0.5, gt=0, lt=1)
    clip_lr: float = Field(0.2, gt=0)
    delta: float | None = Field(None, gt=0, lt=1)
    secagg: bool = False
    secagg_shares: float = Field(0.3, gt=0, le=1)  # neighbours of a device, as a fraction of the sampled devices
    secagg_threshold: float = Field(0.5, gt=0, le=1)  # shares needed to reconstruct, as a fraction of the shares
    secagg_bits: int = Field(8, ge=2, le=24)  # quantization levels of each update coordinate: 2**bits
    secagg_timeout_s: float | None = Field(None, gt=0)


class Config(_Section):
    """Everything one EdgeFleet command needs."""

    preset: PresetName = "default"
    artifacts_dir: Path = Path("artifacts")
    task: TaskConfig = TaskConfig()
    teacher: TeacherConfig = TeacherConfig()
    baselines: BaselineConfig = BaselineConfig()
    vocab: VocabConfig = VocabConfig()
    student: StudentConfig = StudentConfig()
    distill: DistillConfig = DistillConfig()
    quant: QuantConfig = QuantConfig()
    measure: MeasureConfig = MeasureConfig()
    sim: SimConfig = SimConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    stress: StressConfig = StressConfig()

    @model_validator(mode="after")
    def _check(self) -> "Config":
        if self.teacher.negatives < self.teacher.batch_size // 4:
            raise ValueError("teacher.negatives must be at least a quarter of teacher.batch_size")
        if self.sim.cohort > self.sim.devices:
            raise ValueError(f"sim.cohort ({self.sim.cohort}) cannot exceed sim.devices ({self.sim.devices})")
        if self.privacy.secagg and self.sim.update_bits != 32:
            raise ValueError("privacy.secagg quantizes updates itself (secagg_bits): leave sim.update_bits at 32")
        if self.privacy.secagg and self.sim.cohort < 3:
            raise ValueError("privacy.secagg needs a cohort of at least 3 devices")
        if self.privacy.adaptive and self.privacy.noise is None:
            raise ValueError("privacy.adaptive clipping is part of DP: set privacy.noise too")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # Real data and the real MiniLM, a few optimisation steps and a capped evaluation: for tests.
    "tiny": {
        "task": {"max_eval_users": 120},
        "teacher": {"epochs": 1, "max_steps_per_epoch": 6, "batch_size": 16, "negatives": 64, "history_len": 20},
        "baselines": {"bpr_epochs": 5, "bpr_foldin_steps": 10, "bpr_dim": 16},
        "distill": {"pretrain_epochs": 1, "epochs": 1, "max_steps_per_epoch": 4, "batch_size": 16, "negatives": 64,
                    "transfer_size": 400},
        "quant": {"qat_steps": 2},
        "measure": {"latency_texts": 40, "latency_repeats": 1},
        "sim": {"devices": 200, "rounds": 2, "cohort": 16},
    },
    # `edgefleet stress`: 8 variants on the median device at 64 KB resolution, three 2-round fleets of 300 and a
    # load round of 1,000 devices.
    "quick": {"stress": {"resolution_kb": 64, "history_quantile": 0.5, "variants": [v.model_dump() for v in
                                                                                      QUICK_VARIANTS]}},
    # Every variant on the 90th-percentile device at 16 KB, fleets of 1,000 devices for 5 rounds, a load run of
    # 10,000 devices in cohorts of 200.
    "full": {"stress": {"devices": 1000, "rounds": 5, "cohort": 100, "load_devices": 10000, "load_cohort": 200,
                        "load_rounds": 2}},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_override(item: str) -> dict[str, Any]:
    """`section.key=value` -> nested dict; the value is read as TOML so numbers and booleans keep their type."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    dotted, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    node: dict[str, Any] = {}
    cursor = node
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return node


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{where}'"
    return f"config value '{where}': {first['msg']}"


def load_config(
    path: Path | None = None,
    preset: str | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Build the config: preset defaults, then the TOML file, then `--set` overrides; raise ConfigError on bad input."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    chosen = preset or data.get("preset", "default")
    if chosen not in PRESETS:
        raise ConfigError(f"unknown preset {chosen!r} (choose from {', '.join(PRESETS)})")
    merged = _merge(PRESETS[chosen], data)
    for item in overrides or []:
        merged = _merge(merged, _parse_override(item))
    merged["preset"] = chosen
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
