"""`edgefleet compress --train F [--valid F] [--test F] [--unlabeled F]`: the compression pipeline for a MiniLM
classifier on the user's own data.

Teacher: MiniLM (bottom `freeze_layers` frozen, their output computed once) + mean pool + linear head, the head
started as a nearest-class-mean classifier and the rest fine-tuned with cross-entropy. Then, as for the recommender:
hard token pruning on the training texts, the XtremeDistil transfer set labelled by the teacher (transfer.py),
students trained by `distill.method` (distill.py: cross-distillation, plain KD, or XtremeDistil's stages), INT8 and
INT4 weights with quantization-aware fine-tuning where it helps (quantize.py), and the artifact. The validation rows
pick every epoch and the quantization method; the test rows pick nothing, and every reported score is on them. Every
student figure is measured by the device runtime on a written artifact, the teacher's in the same process
(measure.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from compression.choose import Candidate, choose
from compression.quant.export import SIZE_GROUPS
from compression.runtime.artifact import read_artifact, size_breakdown, write_artifact
from compression.runtime.tokenizer import build_wordpiece
from compression.teacher.minilm import load_minilm, model_digest
from compression.teacher.two_tower import ItemTokens, encode_texts
from compression.textclf.distill import Distiller, keep_best_epochs
from compression.textclf.measure import runtime_figures, teacher_latency
from compression.textclf.models import (
    Encoded,
    TextStudent,
    TextTeacher,
    basis_states,
    batches,
    make_student,
    predict,
    scores,
    t_accuracy,
)
from compression.textclf.quantize import quantized
from compression.textclf.transfer import TransferSet, read_unlabeled, teacher_outputs, transfer_texts
from compression.vocab.prune import PrunedVocab, prune_vocab, token_stats
from edgefleet.config import Config, StudentConfig, TeacherConfig
from edgefleet.errors import ConfigError
from edgefleet.progress import Reporter
from edgefleet.rundir import COMPRESSION_REPORT as REPORT
from edgefleet.rundir import MODEL as ARTIFACT
from edgefleet.rundir import prepare, write_json
from edgefleet.tasks import get_task
from edgefleet.tasks.textclf.data import DataWarning, TextTask, load_configured, report_lines

RUNTIME_KIND = "text-classifier"
TEACHER_FORMAT = 1  # bump when a change here changes what a cached teacher would contain
# Trained beside the configured student when distill.ablation is on (the recommender's three, compression/pipeline.py)
ABLATION = (("bert", "cross"), ("bert", "kd"), ("bilstm", "xtremedistil"))


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def fine_tune(teacher: TextTeacher, train: Encoded, valid: Encoded, cfg: TeacherConfig, rep: Reporter) -> list[dict]:
    """Cross-entropy on train; keeps the best valid epoch, the nearest-class-mean start (epoch 0) included."""
    torch.manual_seed(cfg.seed)
    _, pooled = predict(teacher, train.lower, train.mask)
    means = torch.stack([pooled[train.y == c].mean(0) for c in range(teacher.classifier.out_features)])
    with torch.no_grad():  # argmax of x.m_c - |m_c|^2 / 2 is the nearest class mean
        teacher.classifier.weight.copy_(means)
        teacher.classifier.bias.copy_(-0.5 * (means**2).sum(1))
    body = [p for n, p in teacher.named_parameters() if p.requires_grad and n.startswith("bert.")]
    groups = [{"params": body, "lr": cfg.lr}] if body else []
    opt = torch.optim.AdamW(groups + [{"params": list(teacher.classifier.parameters()), "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)

    def step(idx: torch.Tensor) -> float:
        teacher.train()
        loss = F.cross_entropy(teacher(train.lower[idx], train.mask[idx])[0], train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    log, best_state = keep_best_epochs(
        "teacher", cfg.epochs, lambda: batches(len(train.y), cfg.batch_size, cfg.max_steps_per_epoch, gen), step,
        lambda: t_accuracy(teacher, valid), lambda: _trainable(teacher), rep)
    teacher.load_state_dict(best_state, strict=False)
    teacher.eval()
    return log


def cached_teacher(cfg: Config, task: TextTask, teacher: TextTeacher, train: Encoded, valid: Encoded,
                   rep: Reporter) -> tuple[list[dict], Path]:
    """Fine-tune the teacher, or load the trainable weights of an identical earlier run."""
    payload = {"format": TEACHER_FORMAT, "model": model_digest(), "data": task.digest(),
               "teacher": cfg.teacher.model_dump()}
    cache = Path(cfg.artifacts_dir) / "textclf_teachers" / hashlib.sha256(
        json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    if (cache / "teacher.pt").is_file():
        teacher.load_state_dict(torch.load(cache / "teacher.pt", weights_only=True), strict=False)
        teacher.eval()
        rep.log(f"teacher: loaded from cache {cache}")
        return json.loads((cache / "log.json").read_text()), cache
    log = fine_tune(teacher, train, valid, cfg.teacher, rep)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "log.json").write_text(json.dumps(log, indent=1))
    torch.save(_trainable(teacher), cache / "teacher.tmp")
    (cache / "teacher.tmp").replace(cache / "teacher.pt")
    return log, cache


def load_task(cfg: Config, rep: Reporter) -> TextTask:
    """The checked data, its report printed (each warning once: in the report, not also by `warnings`)."""
    with rep.stage("load and check the data"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        task = load_configured(cfg.task)
    for line in report_lines(task.report):
        rep.log(line)
    if not task.test_texts:
        raise ConfigError("no test rows: give --test F (task.test), a split column, or a task.test_fraction above 0")
    return task


@dataclass
class Prepared:
    """What every student of a run shares."""

    tokenizer: object  # MiniLM's HF tokenizer
    teacher: TextTeacher
    splits: dict[str, Encoded]  # train, valid, test, each with teacher states and student tokens
    vocab: PrunedVocab
    transfer: TransferSet
    transfer_report: dict
    teacher_log: list[dict]
    cache: Path
    distiller: Distiller


def prepare_run(cfg: Config, task: TextTask, rep: Reporter) -> Prepared:
    """Teacher, pruned vocabulary, every split in both models' forms, and the transfer set with its targets."""
    max_len = cfg.teacher.max_len
    with rep.stage("load MiniLM, run its frozen layers"):
        tokenizer, bert = load_minilm()
        teacher = TextTeacher(bert, cfg.teacher.freeze_layers, len(task.labels))
        splits = {part: Encoded(torch.from_numpy(y), teacher.lower(tok), tok.mask) for part, y, tok in (
            (part, getattr(task, f"{part}_y"), ItemTokens.build(tokenizer, getattr(task, f"{part}_texts"), max_len))
            for part in ("train", "valid", "test"))}
    t_log, cache = cached_teacher(cfg, task, teacher, splits["train"], splits["valid"], rep)
    with rep.stage("hard token pruning (teacher attention x frequency)"):
        stats = token_stats(bert, tokenizer, task.train_texts, max_len)
        teacher_vocab = tokenizer.convert_ids_to_tokens(list(range(bert.config.vocab_size)))
        try:
            vocab = prune_vocab(stats, teacher_vocab, cfg.vocab.size, cfg.vocab.attention_weight, task.train_texts,
                                tokenizer, max_len)
        except ValueError as exc:
            raise ConfigError(f"{exc}: raise it, e.g. --set vocab.size=8192") from None
        s_tok = build_wordpiece(vocab.tokens, max_len)
        splits = {p: replace(e, student=encode_texts(s_tok, getattr(task, f"{p}_texts"))) for p, e in splits.items()}
    with rep.stage("transfer set: training texts, unlabelled texts, views; teacher targets"):
        unlabeled = read_unlabeled(cfg.task.unlabeled) if cfg.task.unlabeled is not None else []
        made = transfer_texts(task.train_texts, unlabeled, [*task.valid_texts, *task.test_texts],
                              cfg.distill.transfer_size, cfg.distill.seed)
        known = predict(teacher, splits["train"].lower, splits["train"].mask)
        logits, pooled = teacher_outputs(teacher, tokenizer, made.texts, max_len, cache, known)
        transfer = TransferSet(encode_texts(s_tok, made.texts), pooled, logits)
    distiller = Distiller(cfg.distill, teacher, splits["train"], splits["valid"], transfer, rep)
    return Prepared(tokenizer, teacher, splits, vocab, transfer, made.report, t_log, cache, distiller)


def variants(cfg: Config) -> dict[str, tuple[StudentConfig, str]]:
    """The configured student first, then the ablation's, each by "kind/method"."""
    out = {f"{cfg.student.kind}/{cfg.distill.method}": (cfg.student, cfg.distill.method)}
    if cfg.distill.ablation:
        for kind, method in ABLATION:
            out.setdefault(f"{kind}/{method}", (cfg.student.model_copy(update={"kind": kind}), method))
    return out


def train_students(cfg: Config, task: TextTask, run: Prepared, rep: Reporter) -> dict[str, tuple[TextStudent, dict]]:
    """Every variant from the same fine-tuned teacher (cross-distillation moves it) and the same budget."""
    train = run.splits["train"]
    teacher_state = _trainable(run.teacher)
    with rep.stage("parameter integration basis"):
        states = basis_states(run.teacher, train, cfg.distill.seed)
    out = {}
    for name, (student_cfg, method) in variants(cfg).items():
        run.teacher.load_state_dict(teacher_state, strict=False)
        student, carried = make_student(cfg, student_cfg, run.teacher, states, run.vocab, Path(cfg.task.train),
                                        integrated=method != "kd")
        log = {"carried": carried, **run.distiller.run(student, method, name)}
        out[name] = (student, log)
    run.teacher.load_state_dict(teacher_state, strict=False)
    return out


def params_of(model: nn.Module, skip: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


def deploy(cfg: Config, task: TextTask, run: Prepared, name: str, student: TextStudent, bits: int, path: Path,
           sample: list[str], rep: Reporter) -> dict:
    """Quantize (PTQ or QAT), write the artifact to `path`, and measure it with the device runtime."""
    q = cfg.quant
    student_cfg = variants(cfg)[name][0]
    chosen = quantized(student, bits, q.int4_group, q.qat_steps, run.distiller, run.splits["valid"], name)
    with rep.stage(f"{name} int{bits}: write the artifact, run the device runtime"):
        config = {"runtime": RUNTIME_KIND, "student": student_cfg.model_dump(), "max_len": cfg.teacher.max_len,
                  "labels": task.labels, "pooling": "mean", "bits": bits, "int4_group": q.int4_group}
        meta = {"teacher": "all-MiniLM-L6-v2 fine-tuned", "task": "text classification", "variant": name,
                "data_sha256": task.digest(), "created": time.time()}
        nbytes = write_artifact(path, config, run.vocab.tokens, chosen.tensors, meta)
        figures = runtime_figures(path, task.test_texts, task.test_y, sample, cfg.measure.latency_repeats)
    return {**figures, "artifact_bytes": nbytes, "weight_bytes": sum(t.nbytes for t in chosen.tensors.values()),
            "bits": bits, "quantization": chosen.method, "valid_accuracy": chosen.valid_accuracy}


def run_textclf(cfg: Config, out: Path, rep: Reporter) -> dict:
    """The whole run: data -> teacher -> pruning -> transfer set -> students -> int8/int4 artifacts -> runtime."""
    started = time.perf_counter()
    task = load_task(cfg, rep)
    out = prepare(out, REPORT)
    get_task("textclf").write_description(out)
    run = prepare_run(cfg, task, rep)
    test, n = run.splits["test"], cfg.measure.latency_texts
    teacher_scores = scores(predict(run.teacher, test.lower, test.mask)[0], test.y, len(task.labels))
    students = train_students(cfg, task, run, rep)
    sample = task.test_texts[::max(1, len(task.test_texts) // n)][:n]  # the same texts time both models
    configured, bits = next(iter(students)), cfg.quant.bits
    other = 4 if bits == 8 else 8
    ablation, quant = {}, {}
    with tempfile.TemporaryDirectory(prefix="edgefleet-textclf-") as tmp:
        def written(name: str, b: int) -> tuple[Path, dict]:
            path = Path(tmp) / f"{name.replace('/', '-')}-{b}.eflt"
            return path, deploy(cfg, task, run, name, students[name][0], b, path, sample, rep)

        # Every variant is written and measured as it would ship; distill.deploy picks one (compression/choose.py).
        shipped = {name: written(name, bits) for name in students}
        main, deployment = choose({n: Candidate(d["artifact_bytes"], d["valid_accuracy"][d["quantization"]])
                                   for n, (_, d) in shipped.items()},
                                  configured, cfg.distill.deploy, cfg.distill.deploy_max_bytes, "accuracy")
        rep.log(f"deployed {main} ({shipped[main][1]['artifact_bytes']:,} bytes): {deployment['reason']}")
        shutil.copyfile(shipped[main][0], out / ARTIFACT)
        quant = {f"int{bits}": shipped[main][1], f"int{other}": written(main, other)[1]}
        for name, (student, log) in students.items():
            ablation[name] = {"float": scores(predict(student, test.student.input_ids, test.student.mask)[0],
                                              test.y, len(task.labels)),
                              "deployed": shipped[name][1], "params": params_of(student, "hid_proj."),
                              "budget": {k: log[k] for k in ("represent_steps", "task_steps")}}
    with rep.stage("teacher latency (PyTorch, batch 1, one thread)"):
        t_lat = teacher_latency(run.tokenizer, run.teacher, sample, cfg.measure.latency_repeats, cfg.teacher.max_len)
    teacher = {**teacher_scores, **t_lat, "params": params_of(run.teacher, "bert.pooler"),
               "model": "all-MiniLM-L6-v2 + linear head", "cache": str(run.cache)}
    report = build_report(cfg, task, run, teacher, students, main, ablation, quant, out)
    report.update(deployment=deployment, stages=rep.stages, wall_s=round(time.perf_counter() - started, 1),
                  config=cfg.model_dump(mode="json"))
    write_json(out / REPORT, report)
    return report


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def build_report(cfg: Config, task: TextTask, run: Prepared, teacher: dict, students: dict, main: str,
                 ablation: dict, quant: dict, out: Path) -> dict:
    deployed = quant[f"int{cfg.quant.bits}"]
    artifact = read_artifact(out / ARTIFACT)
    student_cfg, method = variants(cfg)[main]
    student = {**{k: v for k, v in deployed.items() if k not in ("artifact_bytes", "weight_bytes")},
               "float": ablation[main]["float"], "params": ablation[main]["params"], "variant": main,
               "kind": student_cfg.kind, "method": method, "evaluated_with": "device runtime on the artifact"}
    rows = task.report["rows"]
    speedup = teacher["latency_ms_b1"] / student["latency_ms_b1"]
    return {
        "task": "text classification",
        "artifact_bytes": deployed["artifact_bytes"],
        "artifact_path": str(out / ARTIFACT),
        "artifact_sha256": artifact.sha256,
        "teacher": teacher,
        "student": student,
        "retention": {"accuracy": _ratio(student["accuracy"], teacher["accuracy"]),
                      "macro_f1": _ratio(student["macro_f1"], teacher["macro_f1"]),
                      "speedup_b1": speedup},
        "speedup_b1": speedup,
        "size_breakdown": size_breakdown(artifact, SIZE_GROUPS | {"classifier.": "heads"}),
        "ablation": ablation,
        "quantization": quant,
        "transfer_set": run.transfer_report,
        "labels": task.labels,
        "rows": rows,
        "evaluated_on": f"the {rows['test']:,} test rows ({task.report['source']['test']}), which picked nothing; "
                        f"the {rows['valid']:,} validation rows picked every epoch and the quantization method",
        "data": {"train": str(cfg.task.train), "valid": str(cfg.task.valid) if cfg.task.valid else None,
                 "test": str(cfg.task.test) if cfg.task.test else None,
                 "unlabeled": str(cfg.task.unlabeled) if cfg.task.unlabeled else None, "sha256": task.digest(),
                 "report": task.report},
        "vocab": run.vocab.report,
        "training": {"teacher": run.teacher_log, "students": {name: log for name, (_, log) in students.items()}},
    }
