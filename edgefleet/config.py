"""One typed configuration, built from a preset, an optional TOML file and CLI overrides, validated once.

Every default lives in this schema. A preset is a TOML file in `configs/` that overrides a few of them (a user copies
one to start a config of their own); `python -m edgefleet.config > docs/configuration.md` writes the reference page
of every key from the schema.
"""

from __future__ import annotations

import inspect
import json
import tomllib
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from edgefleet.errors import ConfigError

PresetName = Literal["tiny", "demo", "default", "quick", "full"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(_Section):
    """Which task (edgefleet/tasks) and its data; for MovieLens, the split, ownership and evaluation protocol."""

    name: str = Field("movielens", description="the task, by its name in edgefleet/tasks (`TASKS`)")
    train: Path | None = Field(None, description="textclf: the text,label rows (CSV, JSONL, JSON, Parquet, or a "
                                                 "`save_to_disk` folder); a `split` column or DatasetDict splits "
                                                 "may hold the validation and test rows too")
    valid: Path | None = Field(None, description="textclf: the rows that pick each model's best epoch; unset: the "
                                                 "training data's splits, else valid_fraction of its rows")
    test: Path | None = Field(None, description="textclf: the rows every reported score is measured on, never "
                                                "used to pick an epoch; unset: the training data's splits, else "
                                                "test_fraction of its rows")
    unlabeled: Path | None = Field(None, description="textclf: unlabelled in-domain texts for the students' transfer "
                                                     "set (a text file, one text a line, or the data's forms with a "
                                                     "`text` column); rows that are validation or test texts are "
                                                     "left out")
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                  description="textclf: share of the training rows held out for validation when no "
                                              "validation rows are given (stratified by label, seeded by seed)")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                 description="textclf: share of the training rows held out for test when no test "
                                             "rows are given (stratified by label, seeded by seed)")
    seed: int = Field(0, description="seeds the ownership split, the evaluation's negatives and its capped users; "
                                     "textclf: the held-out rows")
    server_fraction: float = Field(0.10, gt=0.0, lt=1.0,
                                   description="share of users (opted in) whose data the server holds")
    num_negatives: int = Field(99, ge=1, le=1000,
                               description="sampled items ranked against each held-out item in evaluation")
    k: int = Field(10, ge=1, le=100, description="the cut-off of HR@k and NDCG@k")
    min_train_items: int = Field(1, ge=1, description="train items every user needs besides the two held out")
    max_eval_users: int | None = Field(None, ge=1,
                                       description="evaluate a seeded subset of this many device-owned users; "
                                                   "unset: all of them")

    @model_validator(mode="after")
    def _known(self) -> "TaskConfig":
        from edgefleet.tasks import TASKS  # names only: importing the registry imports no task

        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r} (choose from {', '.join(TASKS)})")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("task.valid_fraction + task.test_fraction must leave training rows (sum below 1)")
        return self


class TeacherConfig(_Section):
    """The MiniLM two-tower teacher trained on server-owned data."""

    max_len: int = Field(32, ge=8, le=128, description="wordpiece tokens per item text (the student's too)")
    freeze_layers: int = Field(4, ge=0, le=6, description="bottom MiniLM layers kept frozen")
    dim: int = Field(256, ge=8, le=1024, description="size of the head's item and user vectors (the student's too)")
    history_len: int = Field(50, ge=1, le=500, description="history items (the most recent) a user vector reads")
    batch_size: int = Field(64, ge=1, description="training examples per step")
    negatives: int = Field(256, ge=1, description="uniform negatives per step, shared by the batch; at least "
                                                  "batch_size / 4")
    epochs: int = Field(5, ge=1, description="training epochs; the one with the best validation HR@k is kept")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="unset: a full pass over the server's data")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate of the unfrozen MiniLM layers")
    head_lr: float = Field(2e-3, gt=0, description="AdamW learning rate of the two-tower head")
    temperature: float = Field(0.05, gt=0, description="initial temperature of the head's scores (the scale is "
                                                       "learned)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    seed: int = Field(0, description="seeds the head's initialisation and the batches")


class BaselineConfig(_Section):
    """Classical recommenders trained on the same server-owned data as the teacher."""

    bpr_dim: int = Field(64, ge=1, description="BPR-MF factor size")
    bpr_epochs: int = Field(60, ge=1, description="BPR-MF epochs over the server users' interactions")
    bpr_lr: float = Field(0.01, gt=0, description="BPR-MF's Adam learning rate (five times it to fold a user in)")
    bpr_reg: float = Field(1e-4, ge=0, description="L2 weight on BPR-MF's factors")
    bpr_foldin_steps: int = Field(100, ge=1, description="steps fitting a device user's vector to their history, "
                                                        "item factors fixed")
    knn_shrink: float = Field(10.0, ge=0, description="shrinkage of ItemKNN's cosine similarity")
    seed: int = Field(0, description="seeds BPR-MF's initialisation and sampling")


class VocabConfig(_Section):
    """Hard token pruning: how many vocabulary tokens the student keeps, scored by teacher attention."""

    size: int = Field(4096, ge=128, le=30522, description="wordpieces the student keeps, of MiniLM's 30,522")
    attention_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of teacher attention against "
                                                                     "frequency in a token's score")


# The student encoders, by name: compression/student/ and compression/runtime/encoders/ register one class each under
# these names (tests/compression/test_student.py holds the three lists equal).
STUDENT_KINDS = ("bert", "bilstm")


class StudentConfig(_Section):
    """The compact student: a small BERT with factorized embeddings, or an XtremeDistil BiLSTM."""

    kind: Literal[STUDENT_KINDS] = Field("bert", description="bert: a small BERT with factorized embeddings; "
                                                             "bilstm: XtremeDistil's BiLSTM")
    embed_dim: int = Field(64, ge=8, le=384, description="word embedding size (the BERT projects it to hidden)")
    hidden: int = Field(128, ge=16, le=384, description="the BERT's hidden size; a multiple of heads")
    layers: int = Field(2, ge=1, le=6, description="the BERT's transformer blocks")
    heads: int = Field(4, ge=1, le=12, description="the BERT's attention heads per block")
    ffn: int = Field(512, ge=16, le=1536, description="the BERT's feed-forward width")
    lstm_hidden: int = Field(96, ge=8, le=512, description="the BiLSTM's hidden size per direction")
    keep_ratio: float = Field(1.0, gt=0.0, le=1.0, description="input-token pruning: the share of tokens the BERT "
                                                               "keeps after block prune_after (1.0: no pruning)")
    prune_after: int = Field(1, ge=1, description="the block after which tokens are pruned; at most layers")

    @model_validator(mode="after")
    def _check(self) -> "StudentConfig":
        if self.hidden % self.heads:
            raise ValueError(f"student.hidden ({self.hidden}) must be a multiple of student.heads ({self.heads})")
        if self.prune_after > self.layers:  # checked for every kind: the ablation trains a BERT from this section
            raise ValueError("student.prune_after must not exceed student.layers")
        return self


class DistillConfig(_Section):
    """Student training: pre-training on the transfer set, then cross-distillation (or plain KD) on the task."""

    method: Literal["cross", "kd", "xtremedistil"] = Field(
        "cross", description="cross: cross-distillation, the teacher trained alongside; kd: plain knowledge "
                             "distillation; xtremedistil: score matching with gradual unfreezing, then the labels")
    pretrain_epochs: int = Field(4, ge=0, description="epochs matching the teacher's pooled states on the transfer "
                                                      "set before the task (0: none)")
    epochs: int = Field(3, ge=1, description="task epochs; the one with the best validation HR@k is kept")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="unset: a full pass over the server's data")
    batch_size: int = Field(64, ge=1, description="training examples per step")
    negatives: int = Field(256, ge=1, description="uniform negatives per step, shared by the batch")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate of the student (a quarter of it in QAT)")
    teacher_lr: float = Field(1e-5, ge=0, description="cross: AdamW learning rate of the teacher")
    temperature: float = Field(2.0, gt=0, description="softening temperature of the distillation KL")
    w_task: float = Field(1.0, ge=0, description="weight of the task loss (sampled softmax)")
    w_kd: float = Field(1.0, ge=0, description="weight of the KL to the teacher's scores")
    w_hidden: float = Field(1.0, ge=0, description="cross: weight of matching the teacher's pooled states")
    w_attn: float = Field(0.5, ge=0, description="cross: weight of matching the teacher's attention")
    w_agree: float = Field(0.5, ge=0, description="cross: weight of the teacher's KL to the student's scores")
    w_genre: float = Field(0.5, ge=0, description="weight of the multi-task genre head's loss")
    ablation: bool = Field(True, description="also train bert/cross, bert/kd and bilstm/xtremedistil to compare")
    deploy: Literal["best", "configured"] = Field(
        "best", description="the student the artifact holds: best: of the trained variants whose artifact fits "
                            "deploy_max_bytes, the best on validation (the smallest if none fits); configured: "
                            "student.kind/distill.method")
    deploy_max_bytes: int = Field(500_000, ge=1, description="deploy = best: the artifact's size budget in bytes")
    transfer_size: int = Field(20000, ge=100, description="texts in the transfer set of pre-training")
    seed: int = Field(0, description="seeds the student's initialisation, the transfer set and the batches")


class QuantConfig(_Section):
    """Weight quantization of the deployed artifact."""

    bits: Literal[4, 8] = Field(8, description="weight bits of the deployed artifact (both are evaluated)")
    int4_group: int = Field(32, ge=8, description="weights that share one INT4 scale")
    qat_steps: int = Field(60, ge=0, description="quantization-aware fine-tuning steps, kept if they beat "
                                                 "post-training quantization on validation (0: none)")


class MeasureConfig(_Section):
    """How latency is sampled: batch-1 encodes of this many catalogue texts, each repeated."""

    latency_texts: int = Field(200, ge=1, description="catalogue texts, encoded one at a time")
    latency_repeats: int = Field(3, ge=1, description="encodes of each text")


class VariantConfig(_Section):
    """A leaner deployment of the same trained student (compression/runtime/variants.py); unset fields keep
    sim.model's."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="letters, digits, `_`, `.` and `-`; distinct within a list")
    bits: Literal[4, 8] | None = Field(None, description="weight bits")
    vocab: int | None = Field(None, ge=8, description="keep the first (best-scored) tokens")
    keep_ratio: float | None = Field(None, gt=0.0, le=1.0, description="input-token pruning")
    max_len: int | None = Field(None, ge=4, le=128, description="tokens per text")
    batch_size: int | None = Field(None, ge=1, description="micro-batch: gradient accumulation over "
                                                           "sim.batch_size (the same update, fewer activations "
                                                           "alive at once)")


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


def _is_host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and "/" not in host and port.isdigit() and 0 < int(port) < 65536


def step_size(optimizer: str, lr: float | None) -> float:
    """The server optimizer's step (server/optimizers.py): `sim.server_lr`, or the optimizer's own when unset: 1 for
    FedAvgM (each round's average as it is), 0.03 for the adaptive ones (FedAdam's best of 0.003, 0.01, 0.03 and 0.1
    after 100 rounds on every user's validation item, docs/simulation.md)."""
    if lr is not None:
        return lr
    return 1.0 if optimizer == "fedavgm" else 0.03


class SimConfig(_Section):
    """The federated simulation (docs/simulation.md): the fleet, the rounds, and each device's local work."""

    devices: int = Field(1000, ge=1, le=1_000_000, description="emulated devices in the fleet")
    rounds: int = Field(10, ge=1, le=10_000, description="federated rounds")
    cohort: int = Field(100, ge=1, le=10_000, description="devices sampled per round; at most devices")
    seed: int = Field(0, description="seeds the population, the devices' data, the sampling and the devices' work")
    model: Path | None = Field(None, description="a model.eflt to deploy; unset: `compress` builds one into the run "
                                                 "directory")
    population: Path | None = Field(None, description="a CSV/Parquet of device profiles (the `file` source)")
    population_source: str | None = Field(None, description="where device profiles come from "
                                          "(simulation/population/: `tiers`, `file`); unset: `file` when "
                                          "sim.population is given, else `tiers`")
    partitioner: Literal["user", "dirichlet", "shard", "iid"] | None = Field(
        None, description="textclf: how training rows are dealt to devices (edgefleet/tasks/textclf/fleet.py); unset: "
                          "by the data's user column when it has one, else dirichlet")
    alpha: float = Field(0.5, gt=0, description="textclf: concentration of the Dirichlet partition over labels "
                                                "(small: few classes per device)")
    min_items: int = Field(4, ge=2, description="shortest window of a user's history one device holds")
    item_residual: bool = Field(False, description="movielens: devices also train a free vector per catalogue item "
                                                   "(FedMF-style, added to the head's item vectors, from zeros), "
                                                   "each the rows of the items in its own table")
    local_epochs: int = Field(1, ge=1, description="a device's epochs over its data in one round")
    batch_size: int = Field(32, ge=1, description="a device's training batch")
    negatives: int = Field(32, ge=1, description="negatives per training step on a device")
    local_optimizer: Literal["adam", "sgd"] | None = Field(
        None, description="the device's optimizer on the shared weights (edgefleet/tasks/optim.py): adam (its "
                          "moments, twice the trained weights, held on the device for the round) or sgd (no state; "
                          "an update that keeps the gradient's size, where a device with one step a round sends "
                          "lr x sign(gradient) with adam); unset: the task's own (movielens adam, textclf sgd)")
    lr: float | None = Field(None, gt=0, description="the device's learning rate on the shared weights; unset: the "
                                                     "task's own for sim.local_optimizer (edgefleet/tasks: "
                                                     "movielens adam 1e-3, sgd 0.3; textclf adam 1e-2, sgd 0.5)")
    personal_lr: float | None = Field(None, ge=0, description="SGD on the personal part that stays on the device "
                                                               "(0: none); unset: the task's own (movielens 0.5, "
                                                               "textclf 0.1)")
    server_optimizer: Literal["fedavgm", "fedadam", "fedyogi", "fedadagrad"] = Field(
        "fedavgm", description="the server's step from each round's average (server/optimizers.py): FedAvgM, or the "
                               "adaptive FedAdam, FedYogi, FedAdagrad of Reddi et al. 2021")
    server_lr: float | None = Field(None, gt=0, description="the server optimizer's step size; unset: 1.0 for "
                                                            "fedavgm (with momentum 0, plain FedAvg), 0.03 for the "
                                                            "adaptive ones")
    server_momentum: float = Field(0.9, ge=0, lt=1, description="FedAvgM's momentum; fedadam's and fedyogi's "
                                                                "first-moment decay (beta_1)")
    server_beta2: float = Field(0.99, ge=0, lt=1, description="fedadam, fedyogi: the second moment's decay")
    server_tau: float = Field(1e-3, gt=0, description="fedadam, fedyogi, fedadagrad: added to the second "
                                                      "moment's root (how adaptive the step is)")
    server_ema: float = Field(0.9, ge=0, lt=1, description="the released model is an exponential moving average "
                                                          "of the server's models with this decay (0: the last "
                                                          "one); devices still train from the last one")
    fallback: Literal["ladder", "none"] = Field(
        "ladder", description="ladder: a device out of memory retries with a smaller batch, shorter texts, then "
                              "inference only; none: it reports oom")
    update_bits: Literal[32, 8] = Field(32, description="bits per coordinate of a device's update (32 with "
                                                        "privacy.secagg, which quantizes itself)")
    deadline_s: float = Field(2.5, gt=0, description="on the virtual clock; devices later than this are stragglers")
    round_timeout_s: float = Field(600.0, gt=0, description="host wall seconds the server waits for a round's "
                                                            "replies; a device that has not answered by then (its "
                                                            "SuperNode gone) is a dropout")
    node_wait_s: float = Field(30.0, ge=0, description="host wall seconds a round after the first waits for a "
                                                       "SuperNode that went away before it goes on with those "
                                                       "connected (once: later rounds expect only those)")
    workers: int = Field(2, ge=1, le=64, description="Ray actors running ClientApp calls (one CPU each); with "
                                                     "ray_address the cluster's CPUs decide")
    ray_address: str | None = Field(None, description="run on this existing Ray cluster (`HOST:PORT` of the head, "
                                                      "as `ray start --head` prints it) instead of a Ray started "
                                                      "for the run; every node needs the same environment")
    shared_dir: Path | None = Field(None, description="with ray_address: a directory every node mounts at the same "
                                                      "path; the model, the fleet and the devices' own storage go "
                                                      "there. Unset: the nodes read the run directory itself")
    device_data: Literal["shared", "own"] = Field(
        "shared", description="shared: a Ray worker or SuperNode emulates whichever device the server names, reading "
                              "the fleet from the run directory; own (`edgefleet deploy` only): each SuperNode is "
                              "one device holding only its own data (`devices/<id>/`), gets the model from the "
                              "server's first message and keeps its personal state there")
    tls: bool = Field(False, description="`edgefleet deploy`: TLS between the SuperLink, the SuperNodes and the "
                                         "`flwr` CLI, with a CA and certificate made for the run "
                                         "(simulation/certs.py); joining a SuperLink, with its root_certificates")
    supernode_auth: bool = Field(False, description="`edgefleet deploy` with tls: the SuperLink admits only "
                                                    "SuperNodes whose public key was registered; each SuperNode "
                                                    "started here gets its own key pair")
    root_certificates: Path | None = Field(None, description="`edgefleet deploy --superlink` with tls: the CA "
                                                             "certificate the joined SuperLink's certificate is "
                                                             "signed by")
    encoder_cache: bool = Field(True, description="reuse the frozen encoder's outputs within a worker "
                                                  "(client/worker.py EncoderCache)")
    reuse_peaks: bool = Field(True, description="a device whose work has the shapes of work a device of the same "
                                                "worker completed, and fits its allowance with 15% to spare or "
                                                "under an allowance the cap already let that work through, runs "
                                                "it untraced and uncapped with that measured peak; work never seen "
                                                "that the memory model puts 15% below the allowance is traced in "
                                                "the worker, without the cap's fork (client/memcap.py KnownPeaks); "
                                                "false: every device's work is traced under its cap")
    policy: Literal["fixed", "adaptive"] = Field(
        "fixed", description="fixed: sim.model on every device; adaptive: each device runs the richest of "
                             "`variants` its budget fits by the memory model (client/device.py)")
    variants: tuple[VariantConfig, ...] = Field(
        (), description="the variants of sim.model an adaptive run deploys, richest first; empty: "
                        f"{', '.join(v.name for v in ADAPTIVE_VARIANTS)}")
    # The cap in a long-lived worker can fail an allocation before the traced peak reaches the allowance (allocator
    # fragmentation): up to ~13% short of it in `edgefleet stress --preset quick`; a device that guessed wrong steps
    # down the variants.
    fit_margin: float = Field(0.10, ge=0.0, le=1.0, description="a device picks a variant whose predicted bytes "
                                                                "times (1 + fit_margin) fit its budget")

    @model_validator(mode="after")
    def _check_variants(self) -> "SimConfig":
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("sim.variants must have distinct names")
        if self.ray_address is not None and not _is_host_port(self.ray_address):
            raise ValueError(f"sim.ray_address {self.ray_address!r}: give the head node's HOST:PORT (Ray Client "
                             "ray:// addresses are not supported)")
        if self.device_data == "own" and (self.ray_address is not None or self.policy == "adaptive"):
            raise ValueError("sim.device_data \"own\" runs one device per SuperNode with the one deployed model: "
                             "not with sim.ray_address or sim.policy \"adaptive\"")
        if self.supernode_auth and not self.tls:
            raise ValueError("sim.supernode_auth needs sim.tls (Flower authenticates SuperNodes over TLS only)")
        if self.root_certificates is not None and not self.tls:
            raise ValueError("sim.root_certificates goes with sim.tls")
        if self.shared_dir is not None and self.ray_address is None:
            raise ValueError("sim.shared_dir goes with sim.ray_address (a single host shares its run directory)")
        return self

    @property
    def ladder(self) -> tuple[VariantConfig, ...]:
        """The variants an adaptive run deploys, richest first; the first is sim.model as it is."""
        return self.variants or ADAPTIVE_VARIANTS


class StressConfig(_Section):
    """`edgefleet stress`: device budgets x model variants x workloads under the real memory cap, then fleet runs
    that compare the fixed and adaptive policies, and a fleet under tight caps (simulation/stress.py)."""

    budgets_mb: tuple[float, ...] = Field((1, 2, 4, 8, 16, 32, 64), description="budgets (MiB, increasing) "
                                                                              "measured for every variant and "
                                                                              "workload")
    resolution_kb: int = Field(16, ge=1, description="the bisection stops when fits and fails are this close")
    timeout_s: float = Field(20.0, gt=0, description="a capped run that takes longer counts as out of memory "
                                                     "(client/memcap.py)")
    variants: tuple[VariantConfig, ...] = Field(
        (), description=f"the variants swept; empty: {', '.join(v.name for v in STRESS_VARIANTS)}")
    history_quantile: float = Field(0.9, ge=0.0, le=1.0, description="the reference device's history length, as a "
                                                                     "quantile over the fleet")
    devices: int = Field(300, ge=1, description="the policy comparison's fleet")
    rounds: int = Field(2, ge=1, description="the policy comparison's rounds")
    cohort: int = Field(40, ge=1, description="the policy comparison's cohort; at most devices")
    load_devices: int = Field(1000, ge=1, description="the load run: a fleet whose budgets are scaled down")
    load_cohort: int = Field(100, ge=1, description="the load run's cohort; at most load_devices")
    load_rounds: int = Field(1, ge=1, description="the load run's rounds")
    load_budget_scale: float = Field(0.5, gt=0.0, le=1.0, description="factor on the load fleet's budgets")
    fleet: bool = Field(True, description="false: the sweep only, no simulations")

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
    """Privacy of the devices' updates (server/privacy/): client-level DP-FedAvg or DP-FTRL, and SecAgg+.

    With `noise` set, each round samples devices by Poisson sampling (rate cohort/devices), clips every update to
    `clip` (L2), sums them over the expected cohort and adds Gaussian noise of std noise * clip / cohort; an RDP
    accountant reports epsilon at `delta` (default 1/devices) after every round. With `mechanism = "dp-ftrl"`, a
    uniform cohort of devices that have taken part fewer than `max_participations` times is asked instead, and the
    running sum of the clipped updates is released with tree-aggregated noise (no sampling assumption). With
    `secagg`, the server sees only the sum (Flower's SecAgg+), the devices clip their own updates and quantize them
    into SecAgg's field.
    """

    noise: float | None = Field(None, ge=0, description="noise multiplier z; unset: no differential privacy")
    mechanism: Literal["dp-fedavg", "dp-ftrl"] = Field(
        "dp-fedavg", description="with noise: dp-fedavg (Poisson sampling, noise on every round's average) or dp-ftrl "
                                 "(Kairouz et al. 2021: no sampling assumption, tree-aggregated noise on the running "
                                 "sum of the updates)")
    unit: Literal["device", "user"] = Field(
        "device", description="what epsilon covers: device (every device sampled on its own), or user (dp-fedavg: "
                              "users are sampled, each through one of its devices a round, so epsilon covers "
                              "everything one user sends; needs a fleet that says who owns each device)")
    max_participations: int = Field(1, ge=1, description="dp-ftrl: rounds a device may take part in, enforced by "
                                                          "the sampler; epsilon grows with its square")
    clip: float = Field(0.1, gt=0, description="L2 clipping norm of one device's update (the initial one when "
                                               "adaptive)")
    adaptive: bool = Field(False, description="adaptive clipping (Andrew et al. 2021): the norm tracks a quantile "
                                              "of update norms; needs noise")
    target_quantile: float = Field(0.5, gt=0, lt=1, description="adaptive: the quantile of update norms the "
                                                                "clipping norm tracks")
    clip_lr: float = Field(0.2, gt=0, description="adaptive: the clipping norm's geometric learning rate")
    delta: float | None = Field(None, gt=0, lt=1, description="the delta epsilon is reported at; unset: one over "
                                                              "the population (devices, or users with unit user)")
    secagg: bool = Field(False, description="SecAgg+: the server sees only the sum of the updates; needs a cohort "
                                            "of at least 3")
    secagg_shares: float = Field(0.3, gt=0, le=1, description="neighbours of a device, as a fraction of the "
                                                              "sampled devices")
    secagg_threshold: float = Field(0.5, gt=0, le=1, description="shares needed to reconstruct, as a fraction of "
                                                                 "the shares")
    secagg_bits: int = Field(8, ge=2, le=24, description="quantization levels of each update coordinate: `2**bits`")
    secagg_timeout_s: float | None = Field(None, gt=0, description="seconds SecAgg+ waits for the replies of each "
                                                                   "stage; unset: it waits for all of them")

    @model_validator(mode="after")
    def _check(self) -> "PrivacyConfig":
        if self.mechanism == "dp-ftrl" and self.noise is None:
            raise ValueError("privacy.mechanism dp-ftrl is differential privacy: set privacy.noise too")
        if self.mechanism == "dp-ftrl" and self.adaptive:
            raise ValueError("privacy.adaptive clipping goes with dp-fedavg, not dp-ftrl")
        if self.unit == "user" and (self.noise is None or self.mechanism != "dp-fedavg"):
            raise ValueError("privacy.unit \"user\" is a DP-FedAvg guarantee: set privacy.noise, with mechanism "
                             "dp-fedavg")
        return self


class FederationConfig(_Section):
    """`edgefleet bench federation`: the deployed model, a centralized oracle, classical baselines trained on every
    user's data and federated runs, on the device users' test items (simulation/federation.py)."""

    runs: tuple[str, ...] = Field(("fedavg", "fedavgm", "nodp", "dp"), description="the federated runs, by name in "
                                                                         "simulation/federation.py `RUNS`")
    rounds: int = Field(300, ge=1, description="rounds of every federated run but the DP run and its twin "
                                               "(federation.dp_rounds); sim.rounds is not used")
    seeds: tuple[int, ...] = Field((0, 1, 2), description="sim.seed of each repetition of a run; a run's figure is "
                                                          "their mean, with their spread")
    release_decay: float = Field(0.9, gt=0, lt=1, description="a run that released the server's model is also "
                                                                "scored, from its checkpoints, as if it had "
                                                                "released their moving average at this decay")
    tail_rounds: int = Field(50, ge=1, description="a run's tail figure is the mean over its last this many rounds "
                                                   "(a server momentum makes the last round alone a noisy figure)")
    oracle_epochs: int | None = Field(None, ge=1, description="the oracle's epochs over every device user's "
                                                              "examples, the best checkpoint on validation kept; "
                                                              "unset: the task's own (movielens 6, textclf 100)")
    oracle_batch_size: int = Field(256, ge=1, description="the oracle's examples per step")
    oracle_negatives: int = Field(256, ge=1, description="the oracle's uniform negatives per step")
    oracle_lr: float | None = Field(None, gt=0, description="the oracle's Adam learning rate; unset: the task's own "
                                                            "(movielens 1e-3, textclf 1e-2)")
    oracle_checks: int = Field(4, ge=1, description="validations of the oracle per epoch, evenly spaced (its "
                                                    "checkpoints)")
    full_epochs: int = Field(3, ge=1, description="oracle_full: epochs of the whole student over every user's "
                                                  "examples; the best on every user's validation item is kept")
    full_lr: float = Field(1e-3, gt=0, description="oracle_full: AdamW learning rate, falling linearly to 0")
    full_batch_size: int = Field(4096, ge=1, description="oracle_full: examples per step (each step encodes the "
                                                         "whole catalogue once)")
    full_negatives: int = Field(1024, ge=1, description="oracle_full: uniform negatives per step, shared by the "
                                                        "batch")
    full_max_steps: int | None = Field(None, ge=1, description="oracle_full: steps per epoch at most; unset: a "
                                                               "full pass")
    dp_devices: int = Field(10000, ge=1, description="the fleet of the DP run and of its non-private twin")
    dp_cohort: int = Field(1000, ge=1, description="the expected cohort of the DP run and its twin: the noise on "
                                                   "the average update falls with it")
    dp_rounds: int | None = Field(150, ge=1, description="rounds of the DP run and its twin; unset: "
                                                         "federation.rounds. At 50 the 10,000-device twin's gain "
                                                         "was within the test rows' noise (docs/privacy.md)")
    dp_epsilon: float = Field(8.0, gt=0, description="the DP run's target epsilon after all its rounds, at "
                                                     "federation.dp_delta: the noise is calibrated to it")
    dp_delta: float = Field(1e-5, gt=0, lt=1, description="the delta of the DP run's epsilon")
    dp_local_optimizer: Literal["adam", "sgd"] = Field(
        "sgd", description="the devices' optimizer in the DP run and its twin, at the task's own rate for it unless "
                           "it is the configured one (sim.local_optimizer). On the DP fleet a device takes one step "
                           "a round: adam sends lr x sign(gradient), with which the twin barely learns there; sgd "
                           "sends the gradient (docs/privacy.md)")

    @model_validator(mode="after")
    def _check(self) -> "FederationConfig":
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("federation.seeds must be distinct and not empty")
        if not self.runs or len(set(self.runs)) != len(self.runs):
            raise ValueError("federation.runs must be distinct and not empty")
        if self.dp_cohort > self.dp_devices:
            raise ValueError(f"federation.dp_cohort ({self.dp_cohort}) cannot exceed federation.dp_devices "
                             f"({self.dp_devices})")
        return self


class Config(_Section):
    """Everything one EdgeFleet command needs."""

    preset: PresetName = Field("default", description="the preset the rest refines, `configs/<preset>.toml`; "
                                                       "`--preset` wins over this key")
    artifacts_dir: Path = Field(Path("artifacts"), description="cache of trained teachers and students, keyed by "
                                                               "everything that determines them")
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
    federation: FederationConfig = FederationConfig()

    @model_validator(mode="after")
    def _check(self) -> "Config":
        if self.teacher.negatives < self.teacher.batch_size // 4:
            raise ValueError("teacher.negatives must be at least a quarter of teacher.batch_size")
        if self.sim.cohort > self.sim.devices:
            raise ValueError(f"sim.cohort ({self.sim.cohort}) cannot exceed sim.devices ({self.sim.devices})")
        if self.privacy.secagg and self.sim.update_bits != 32:
            raise ValueError("privacy.secagg quantizes updates itself (secagg_bits): leave sim.update_bits at 32")
        if self.privacy.secagg and self.sim.device_data == "own":
            raise ValueError("privacy.secagg runs on Flower's legacy workflow, whose nodes are slots: not with "
                             "sim.device_data \"own\"")
        if self.sim.item_residual and (self.task.name != "movielens" or self.privacy.secagg
                                       or self.sim.policy == "adaptive"):
            raise ValueError("sim.item_residual trains MovieLens item vectors with the one deployed model: not with "
                             "another task, privacy.secagg or sim.policy \"adaptive\"")
        if self.privacy.secagg and self.sim.cohort < 3:
            raise ValueError("privacy.secagg needs a cohort of at least 3 devices")
        if self.privacy.adaptive and self.privacy.noise is None:
            raise ValueError("privacy.adaptive clipping is part of DP: set privacy.noise too")
        if self.privacy.mechanism == "dp-ftrl" and self.sim.server_optimizer != "fedavgm":
            raise ValueError("privacy.mechanism dp-ftrl releases the FTRL model itself: keep sim.server_optimizer "
                             "fedavgm")
        return self


# The presets: one TOML file each, beside the package (installed editable), so a user can copy one.
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.toml"))


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


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
    """Build the config: the preset's file, then the TOML file, then `--set` overrides; raise ConfigError on bad
    input."""
    data = {} if path is None else _read_toml(Path(path), "config file")
    chosen = preset or data.get("preset", "default")
    if chosen not in preset_names():
        raise ConfigError(f"unknown preset {chosen!r} (choose from {', '.join(preset_names())})")
    merged = _merge(_read_toml(CONFIGS / f"{chosen}.toml", "preset"), data)
    for item in overrides or []:
        merged = _merge(merged, _parse_override(item))
    merged["preset"] = chosen
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None


_INTRO = """\
# Configuration

Every EdgeFleet command builds one typed config (`edgefleet/config.py`), each layer over the one before:

1. a preset, `configs/<name>.toml`, chosen with `--preset <name>` or `preset = "<name>"` in the config file
   (`edgefleet stress` offers `quick` and `full`, the other commands `default` and `tiny`);
2. the TOML file given with `--config`;
3. `--set section.key=value`, repeatable; the value is read as TOML (`--set 'sim.model="m.eflt"'`), a bare word as
   a string.

It is validated once: bad input is one error line and exit status 2. To write your own config, copy a preset
(`cp configs/tiny.toml my.toml`) and pass `--config my.toml`; a key you leave out keeps its default below. A default
shown as *unset* means no value: TOML has no null, so leave the key out.

This page is generated from the schema. After changing the schema or a preset, run
`.venv/bin/python -m edgefleet.config > docs/configuration.md`; `tests/test_config.py` fails until the two agree.
"""


def reference_markdown() -> str:
    """docs/configuration.md: the presets, then every key of every section with its type, default and meaning."""
    lines = [_INTRO, "## Presets", "", "| preset | what it is for |", "| --- | --- |"]
    lines += [f"| `configs/{name}.toml` | {_purpose(CONFIGS / f'{name}.toml')} |" for name in preset_names()]
    top = {key: f for key, f in Config.model_fields.items() if not _is_section(f)}
    lines += _section("Top level", Config, top)
    lines += [line for key, f in Config.model_fields.items() if _is_section(f)
              for line in _section(f"`[{key}]`", f.annotation, f.annotation.model_fields)]
    lines += _section("`[[sim.variants]]` and `[[stress.variants]]`", VariantConfig, VariantConfig.model_fields)
    return "\n".join(lines) + "\n"


def _purpose(preset: Path) -> str:
    """A preset file's opening comment (`# name: what it is for`), up to its first blank comment line."""
    words = []
    for line in preset.read_text().splitlines():
        if line.strip() in ("#", "") or not line.startswith("#"):
            break
        words.append(line.lstrip("# ").rstrip())
    return " ".join(words).removeprefix(f"{preset.stem}: ")


def _is_section(f: FieldInfo) -> bool:
    return isinstance(f.annotation, type) and issubclass(f.annotation, _Section)


def _section(title: str, model: type[BaseModel], fields: dict[str, FieldInfo]) -> list[str]:
    rows = [f"| `{key}` | {_type_name(f.annotation)}{_bounds(f)} | {_default(f)} | {f.description or ''} |"
            for key, f in fields.items()]
    return ["", f"## {title}", "", inspect.cleandoc(model.__doc__ or ""), "", "| key | type | default | meaning |",
            "| --- | --- | --- | --- |", *rows]


def _type_name(annotation: Any) -> str:
    """The type as a TOML user writes it."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{_toml(a)}`" for a in args)
    if origin in (Union, UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is tuple:
        return "array of variants (below)" if args[0] is VariantConfig else f"array of {_type_name(args[0])}s"
    return {bool: "boolean", int: "integer", float: "float", str: "string", Path: "path"}[annotation]


def _bounds(f: FieldInfo) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = [f"{sign} {_toml(getattr(m, key))}" for m in f.metadata for key, sign in signs.items() if hasattr(m, key)]
    return f" ({', '.join(found)})" if found else ""


def _default(f: FieldInfo) -> str:
    if f.is_required():
        return "required"
    return "*unset*" if f.default is None else f"`{_toml(f.default)}`"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


if __name__ == "__main__":
    print(reference_markdown(), end="")
