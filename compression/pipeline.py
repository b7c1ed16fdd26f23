"""`edgefleet compress`: teacher -> hard token pruning -> student pre-training -> cross-distillation ->
quantization -> artifact -> device runtime, with the plain-KD and XtremeDistil comparisons at equal budget."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compression.choose import Candidate, choose
from compression.distill.stages import (
    GenreInputs,
    StudentRec,
    TaskStage,
    Weights,
    pretrain,
    teacher_pooled_texts,
    teacher_targets,
    transfer_texts,
)
from compression.measure import RuntimeScorer, device_measurements, teacher_latency
from compression.quant.export import SIZE_GROUPS, exported_state, fake_quantized, load_quantized, quantize_state
from compression.runtime.artifact import read_artifact, size_breakdown, write_artifact
from compression.runtime.model import RUNTIME_KIND, DeviceModel
from compression.runtime.tokenizer import build_wordpiece
from compression.student import build_encoder
from compression.student.integrate import integrate, pca_basis
from compression.teacher.two_tower import (
    TRAINING_TASK_KEYS,
    ItemTokens,
    Teacher,
    build_teacher,
    encode_texts,
    teacher_key,
)
from compression.vocab.prune import prune_vocab, token_stats
from edgefleet.config import Config, StudentConfig
from edgefleet.progress import Reporter
from edgefleet.rundir import COMPRESSION_REPORT as REPORT
from edgefleet.rundir import MODEL as ARTIFACT
from edgefleet.rundir import prepare, write_json
from edgefleet.tasks import get_task
from edgefleet.tasks.movielens.bundle import TaskBundle, load_task
from edgefleet.tasks.movielens.data import GENRES
from edgefleet.tasks.movielens.genre import GenreTask, evaluate_genres, train_probe
from edgefleet.tasks.movielens.protocol import evaluate
from edgefleet.tasks.movielens.teacher_head import RecHead

STUDENT_FORMAT = 2
# Trained beside the main student when distill.ablation is on: plain KD vs cross-distillation at equal budget, and
# the XtremeDistil BiLSTM.
ABLATION = (("bert", "cross"), ("bert", "kd"), ("bilstm", "xtremedistil"))


def make_student(cfg: Config, student_cfg: StudentConfig, vocab_size: int, teacher: Teacher,
                 basis_states: torch.Tensor, kept_ids: np.ndarray, integrated: bool) -> tuple[StudentRec, dict]:
    torch.manual_seed(cfg.distill.seed)
    encoder = build_encoder(student_cfg, vocab_size, cfg.teacher.max_len)
    head = RecHead(encoder.out_dim, cfg.teacher.dim, cfg.teacher.history_len, cfg.teacher.temperature)
    student = StudentRec(encoder, head, teacher.model.bert.config.hidden_size)
    info = {"carried": []}
    if integrated:
        u = pca_basis(basis_states, encoder.out_dim)
        info = integrate(encoder, head, student.hid_proj, teacher.model.bert, teacher.model.head, kept_ids, u)
    return student, info


# The distill keys that say which students a run trains or deploys, not how one trains: `ablation` adds the
# comparison variants, `method` is the configured variant's method, which reaches the key as `variant` (the
# ablation's bert/kd is the same student as a run configured for bert/kd), `deploy*` picks among the trained ones.
_CHOOSES_VARIANTS = {"ablation", "method", "deploy", "deploy_max_bytes"}


def _cache_key(cfg: Config, teacher_id: str, variant: str, student_cfg: StudentConfig) -> str:
    """Cache key of a trained float student (before quantization): exactly what changes its weights.

    In: the teacher's key (its config, split, validation set, data and MiniLM: the teacher the student is integrated
    from, learns from, and in `cross` trains beside); `variant`, the training method; `vocab.*` (the kept tokens:
    tokenizer, word table, inputs); `student.*` (the encoder; a key the other kind reads costs only a retrain);
    every `distill.*` key but `_CHOOSES_VARIANTS`; the task's `TRAINING_TASK_KEYS` (batches and epoch choice, as for
    the teacher; `task.seed` also seeds the genre task); `STUDENT_FORMAT`.
    Out, so that none of them retrains it: `distill.ablation` (`simulate` turns it off when it compresses a model
    itself); `quant.*` (quantization and QAT run on the cached student every time); `measure.*`, `baselines.*`,
    `task.max_eval_users` (the report); `sim`, `privacy`, `stress` (the fleet); `artifacts_dir`; the preset's name.
    """
    distill = {k: v for k, v in cfg.distill.model_dump().items() if k not in _CHOOSES_VARIANTS}
    payload = {"format": STUDENT_FORMAT, "teacher": teacher_id, "variant": variant, "vocab": cfg.vocab.model_dump(),
               "student": student_cfg.model_dump(), "distill": distill,
               "task": {k: getattr(cfg.task, k) for k in TRAINING_TASK_KEYS}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class Compressor:
    """One compression run; each step reads what the previous ones left on `self`."""

    def __init__(self, cfg: Config, reporter: Reporter):
        self.cfg, self.reporter = cfg, reporter

    def prepare(self) -> None:
        cfg, rep = self.cfg, self.reporter
        with rep.stage("load MovieLens-100K and split"):
            self.task: TaskBundle = load_task(cfg.task)
        self.teacher = build_teacher(cfg, self.task.catalogue, self.task.split, self.task.valid, rep)
        self.teacher_id = teacher_key(cfg, self.task.catalogue)
        texts = self.task.catalogue.item_texts()
        tok = self.teacher.tokenizer
        with rep.stage("hard token pruning (teacher attention x frequency)"):
            stats = token_stats(self.teacher.model.bert, tok, texts, cfg.teacher.max_len)
            teacher_vocab = tok.convert_ids_to_tokens(list(range(self.teacher.model.bert.config.vocab_size)))
            self.vocab = prune_vocab(stats, teacher_vocab, cfg.vocab.size, cfg.vocab.attention_weight, texts, tok,
                                     cfg.teacher.max_len)
        self.tokenizer = build_wordpiece(self.vocab.tokens, cfg.teacher.max_len)
        self.s_tokens = encode_texts(self.tokenizer, texts)
        with rep.stage("transfer set and teacher targets"):
            transfer = transfer_texts(self.task.catalogue, cfg.distill.transfer_size, cfg.distill.seed)
            self.t_transfer = teacher_pooled_texts(self.teacher.model, ItemTokens.build(tok, transfer,
                                                                                         cfg.teacher.max_len))
            self.s_transfer = encode_texts(self.tokenizer, transfer)
            self.targets = teacher_targets(self.teacher, self.s_tokens, self.vocab.teacher_ids)
            self.teacher_state = copy.deepcopy(self.teacher.model.state_dict())
            self.basis_states = torch.cat([self.t_transfer, self.targets.pooled])
        self.transfer_size = len(transfer)
        with rep.stage("genre head: teacher probe on titles"):
            task = GenreTask.build(self.task.catalogue, cfg.task.seed)
            pooled = teacher_pooled_texts(self.teacher.model, ItemTokens.build(tok, task.titles, cfg.teacher.max_len))
            probe, self.teacher_genre = train_probe(pooled, task, cfg.distill.seed)
            with torch.no_grad():
                probs = torch.sigmoid(probe(pooled))
            self.genre = GenreInputs(task, encode_texts(self.tokenizer, task.titles), probs)

    def train(self, name: str, student_cfg: StudentConfig, method: str) -> tuple[StudentRec, dict]:
        """Train one student variant, or load it from the cache of an identical earlier run."""
        cfg, rep = self.cfg, self.reporter
        self.teacher.model.load_state_dict(self.teacher_state)  # every variant starts from the same teacher
        integrated = method in ("cross", "xtremedistil")
        student, info = make_student(cfg, student_cfg, len(self.vocab.tokens), self.teacher, self.basis_states,
                                     self.vocab.teacher_ids, integrated)
        cache = Path(cfg.artifacts_dir) / "students" / _cache_key(cfg, self.teacher_id, method, student_cfg)
        if (cache / "student.pt").is_file():
            student.load_state_dict(torch.load(cache / "student.pt", weights_only=True))
            student.eval()
            rep.log(f"{name}: loaded from cache {cache}")
            return student, json.loads((cache / "log.json").read_text())
        started = time.perf_counter()
        log = {"method": method, **info, "pretrain": pretrain(student, self.s_transfer, self.t_transfer,
                                                              self.teacher.model.head, cfg.distill, rep,
                                                              f"{name}: representation matching")}
        stage = TaskStage(student, self.teacher, self.s_tokens, self.targets, self.task.split, self.task.valid,
                          cfg.distill, rep, interplay=method == "cross", genre=self.genre)
        d = cfg.distill
        if method == "cross":
            log["task"] = stage.run(d.epochs, Weights(d.w_task, d.w_kd, d.w_hidden, d.w_attn, d.w_genre),
                                    list(student.parameters()), f"{name}: cross-distillation")
        elif method == "kd":
            log["task"] = stage.run(d.epochs, Weights(d.w_task, d.w_kd, genre=d.w_genre),
                                    list(student.parameters()), f"{name}: plain KD")
        else:  # XtremeDistil: score matching with gradual unfreezing (heads, + encoder, + embeddings), then labels
            enc = student.encoder
            body = [p for n, p in enc.named_parameters() if not n.startswith("word.")]
            heads = [*student.head.parameters(), *student.genre.parameters()]
            log["task"] = stage.run(d.epochs, Weights(0.0, 1.0, genre=d.w_genre), heads, f"{name}: score matching",
                                    unfreeze=[[], body, list(enc.word.parameters())])
            log["task"] += stage.run(1, Weights(1.0, 0.0, genre=d.w_genre), list(student.parameters()),
                                     f"{name}: task fine-tuning")
        log["train_seconds"] = round(time.perf_counter() - started, 1)
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "log.json").write_text(json.dumps(log, indent=1))
        torch.save(student.state_dict(), cache / "student.tmp")
        (cache / "student.tmp").replace(cache / "student.pt")
        self.teacher.model.load_state_dict(self.teacher_state)
        return student, log

    def quantized(self, student: StudentRec, bits: int) -> tuple[StudentRec, dict]:
        """Post-training quantization, and quantization-aware fine-tuning for `qat_steps`; the one that scores
        better on the server's validation users is kept. Returns the dequantized model and the tensors."""
        cfg = self.cfg
        key = f"hr@{cfg.task.k}"
        ptq = copy.deepcopy(student)
        tensors = quantize_state(exported_state(ptq), bits, cfg.quant.int4_group)
        load_quantized(ptq, tensors)
        chosen = {"model": ptq, "tensors": tensors, "method": "ptq",
                  "valid": {"ptq": evaluate(ptq.scorer(self.s_tokens, 1.0), self.task.valid)[key]}}
        if cfg.quant.qat_steps:
            qat = copy.deepcopy(student)
            d = cfg.distill.model_copy(update={"max_steps_per_epoch": cfg.quant.qat_steps, "lr": cfg.distill.lr / 4})
            stage = TaskStage(qat, self.teacher, self.s_tokens, self.targets, self.task.split, self.task.valid, d,
                              self.reporter, interplay=False, genre=self.genre)
            with fake_quantized(qat, bits, cfg.quant.int4_group):
                stage.run(1, Weights(d.w_task, d.w_kd, genre=d.w_genre), list(qat.parameters()), f"QAT int{bits}")
            qat_tensors = quantize_state(exported_state(qat), bits, cfg.quant.int4_group)
            load_quantized(qat, qat_tensors)
            chosen["valid"]["qat"] = evaluate(qat.scorer(self.s_tokens, 1.0), self.task.valid)[key]
            if chosen["valid"]["qat"] > chosen["valid"]["ptq"]:
                chosen.update(model=qat, tensors=qat_tensors, method="qat")
        return chosen["model"], chosen


def run_compress(cfg: Config, out: Path, reporter: Reporter) -> dict:
    out = prepare(out, REPORT)
    get_task("movielens").write_description(out)
    started = time.perf_counter()
    c = Compressor(cfg, reporter)
    c.prepare()
    test = c.task.test
    with reporter.stage("evaluate teacher"):
        teacher_metrics = evaluate(c.teacher.scorer(), test)

    configured = f"{cfg.student.kind}/{cfg.distill.method}"
    variants = {configured: (cfg.student, cfg.distill.method)}
    if cfg.distill.ablation:
        for kind, method in ABLATION:
            variants.setdefault(f"{kind}/{method}", (cfg.student.model_copy(update={"kind": kind}), method))
    students, logs, ablation = {}, {}, {}
    for name, (scfg, method) in variants.items():
        students[name], logs[name] = c.train(name, scfg, method)
        with reporter.stage(f"evaluate {name}"):
            ablation[name] = {"float": evaluate(students[name].scorer(c.s_tokens, 1.0), test),
                              "genre": evaluate_genres(students[name].genre_probs(c.genre.titles), c.genre.task),
                              "params": sum(p.numel() for n, p in students[name].named_parameters()
                                            if not n.startswith("hid_proj."))}

    # Every candidate is quantized and written as it would ship, so that the choice weighs the real artifact's size
    # and its quantized model's validation HR@k.
    bits, k = cfg.quant.bits, f"hr@{cfg.task.k}"
    meta = {"teacher": c.teacher_id, "task": "movielens-100k two-tower recommendation", "created": time.time()}
    candidates, shipped = {}, {}
    with tempfile.TemporaryDirectory(prefix="edgefleet-compress-") as tmp:
        for name in students if cfg.distill.deploy == "best" else [configured]:
            q_student, q = c.quantized(students[name], bits)
            path = Path(tmp) / f"{name.replace('/', '-')}.eflt"
            with reporter.stage(f"{name} int{bits}: write the artifact"):
                config = artifact_config(cfg, variants[name][0], c, q_student)
                nbytes = write_artifact(path, config, c.vocab.tokens, q["tensors"], {**meta, "variant": name})
            shipped[name] = (q_student, q, path)
            candidates[name] = Candidate(nbytes, q["valid"][q["method"]])  # the method it ships with
        main_name, deployment = choose(candidates, configured, cfg.distill.deploy, cfg.distill.deploy_max_bytes, k)
        reporter.log(f"deployed {main_name} ({candidates[main_name].artifact_bytes:,} bytes): {deployment['reason']}")
        artifact_path = out / ARTIFACT
        shutil.copyfile(shipped[main_name][2], artifact_path)
    student = students[main_name]

    quant = {}
    for b in (8, 4):
        q_student, q = shipped[main_name][:2] if b == bits else c.quantized(student, b)
        with reporter.stage(f"evaluate int{b}"):
            quant[f"int{b}"] = {**evaluate(q_student.scorer(c.s_tokens, 1.0), test),
                                "weight_bytes": sum(t.nbytes for t in q["tensors"].values()),
                                "method": q["method"], f"valid_{k}": q["valid"]}

    with reporter.stage("run the device runtime on the artifact"):
        nbytes = artifact_path.stat().st_size
        artifact = read_artifact(artifact_path)
        device = DeviceModel(artifact)
        texts = c.task.catalogue.item_texts()
        items, prior = device.item_vectors(texts)
        student_metrics = evaluate(RuntimeScorer(device, items, prior), test)
        m = cfg.measure
        sample = texts[:: max(1, len(texts) // m.latency_texts)][: m.latency_texts]
        history = items[test.histories[0]]
        measured = device_measurements(device, sample, items, prior, history, m.latency_repeats)
        t_lat = teacher_latency(c.teacher, sample, m.latency_repeats)
        genre = {"teacher": c.teacher_genre, "student": evaluate_genres(
            torch.from_numpy(np.stack([device.genre_probs(t) for t in c.genre.task.titles])), c.genre.task)}
        genre["retention"] = genre["student"]["micro_f1"] / max(genre["teacher"]["micro_f1"], 1e-12)
    with reporter.stage("input-token pruning: accuracy and latency per keep ratio"):
        pruning = token_pruning(cfg, student, c, device, sample, items, prior, history)
    report = build_report(cfg, c, teacher_metrics, student_metrics, measured, t_lat, artifact, nbytes,
                          artifact_path, ablation, quant, logs, main_name, reporter)
    report.update(genre=genre, token_pruning=pruning, deployment=deployment)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    write_json(out / REPORT, report)
    return report


def artifact_config(cfg: Config, student_cfg: StudentConfig, c: Compressor, q_student: StudentRec) -> dict:
    """What the runtime reads to rebuild the variant; the genre threshold is the quantized model's own."""
    return {"runtime": RUNTIME_KIND, "student": student_cfg.model_dump(), "max_len": cfg.teacher.max_len,
            "dim": cfg.teacher.dim, "history_len": cfg.teacher.history_len, "bits": cfg.quant.bits,
            "int4_group": cfg.quant.int4_group, "genres": list(GENRES),
            "genre_threshold": evaluate_genres(q_student.genre_probs(c.genre.titles), c.genre.task)["threshold"]}


def token_pruning(cfg: Config, student: StudentRec, c: Compressor, device: DeviceModel, sample: list[str],
                  items: np.ndarray, prior: np.ndarray, history: np.ndarray) -> dict:
    """PoWER-BERT/LTP trade-off of the float student (accuracy) and the runtime (latency) at several keep ratios.

    Accuracy comes from the float student so that the effect of pruning is not mixed with quantization."""
    if not student.encoder.prunes_tokens:
        return {}
    rows, configured = [], device.encoder.keep_ratio
    for ratio in sorted({1.0, 0.75, 0.5, cfg.student.keep_ratio}, reverse=True):
        device.encoder.keep_ratio = ratio
        latency = device_measurements(device, sample, items, prior, history, cfg.measure.latency_repeats)
        rows.append({"keep_ratio": ratio, **evaluate(student.scorer(c.s_tokens, ratio), c.task.test),
                     "latency_ms_b1": latency["latency_ms_b1"]})
    device.encoder.keep_ratio = configured
    base = rows[0]
    for row in rows:
        row["latency_gain"] = base["latency_ms_b1"] / row["latency_ms_b1"]
        row["hr_loss"] = base[f"hr@{cfg.task.k}"] - row[f"hr@{cfg.task.k}"]
    return {"prune_after_layer": cfg.student.prune_after, "rows": rows}


def build_report(cfg, c, teacher_metrics, student_metrics, measured, t_lat, artifact, nbytes, artifact_path,
                 ablation, quant, logs, main_name, reporter) -> dict:
    k = f"hr@{cfg.task.k}"
    n = f"ndcg@{cfg.task.k}"
    teacher_params = sum(p.numel() for p in c.teacher.model.parameters())
    return {
        "artifact_bytes": nbytes,
        "artifact_path": str(artifact_path),
        "artifact_sha256": artifact.sha256,
        "teacher": {**teacher_metrics, "latency_ms_b1": t_lat["latency_ms_b1"],
                    "latency_ms_b1_p95": t_lat["latency_ms_b1_p95"], "params": int(teacher_params)},
        "student": {**student_metrics, **measured, "params": ablation[main_name]["params"],
                    "variant": main_name, "bits": cfg.quant.bits, "evaluated_with": "device runtime on the artifact"},
        "retention": {k: student_metrics[k] / teacher_metrics[k], n: student_metrics[n] / teacher_metrics[n],
                      "speedup_b1": t_lat["latency_ms_b1"] / measured["latency_ms_b1"]},
        "size_breakdown": size_breakdown(artifact, SIZE_GROUPS),
        "vocab": {**c.vocab.report,
                  "embedding_bytes_full_vocab": c.vocab.report["teacher_vocab"] * cfg.student.embed_dim,
                  "embedding_bytes_kept_vocab": c.vocab.report["kept"] * cfg.student.embed_dim,
                  "note": "student word table at INT8 (1 byte per weight), before per-row scales"},
        "ablation": ablation,
        "quantization": quant,
        "training": logs,
        "transfer_set": c.transfer_size,
        "stages": reporter.stages,
        "protocol": {"evaluated_on": c.task.test.describe(), "teacher_cache": str(c.teacher.cache_dir)},
        "config": cfg.model_dump(mode="json"),
    }
