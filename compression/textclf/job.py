"""`edgefleet compress --train F --valid F`: the compression pipeline for a MiniLM classifier on the user's own data.

Teacher: MiniLM (bottom `freeze_layers` frozen, their output computed once) + mean pool + linear head, the head
started as a nearest-class-mean classifier and the rest fine-tuned with cross-entropy. Then, as for the recommender:
hard token pruning on the training texts, a compact student initialised by parameter integration, cross-distillation
(student: CE + temperature-softened KL to the teacher + pooled-state matching; teacher: keeps training on CE +
agreement with the student), quantization and the artifact. Both models are scored on the valid file, which also
picks each one's best epoch: the user gives no third split. The data checks live in textclf_data.py, the two
models in textclf_models.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from compression.distill.stages import softened_kl
from compression.quant.export import SIZE_GROUPS, exported_state, load_quantized, quantize_state
from compression.runtime.artifact import read_artifact, size_breakdown, write_artifact
from compression.runtime.tokenizer import build_wordpiece
from compression.teacher.minilm import load_minilm, model_digest
from compression.teacher.two_tower import ItemTokens, encode_texts
from compression.textclf.models import (
    Encoded,
    TextStudent,
    TextTeacher,
    batches,
    integrated_student,
    predict,
    s_accuracy,
    t_accuracy,
)
from compression.vocab.prune import prune_vocab, token_stats
from edgefleet.config import Config, DistillConfig, TeacherConfig
from edgefleet.errors import ConfigError
from edgefleet.progress import Reporter
from edgefleet.rundir import COMPRESSION_REPORT as REPORT
from edgefleet.rundir import MODEL as ARTIFACT
from edgefleet.rundir import prepare, write_json
from edgefleet.tasks import get_task
from edgefleet.tasks.textclf.data import TextTask

RUNTIME_KIND = "text-classifier"
TEACHER_FORMAT = 1  # bump when a change here changes what a cached teacher would contain


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def keep_best_epochs(name: str, epochs: int, steps: Callable[[], list], step: Callable[[torch.Tensor], float],
                     accuracy: Callable[[], float], snapshot: Callable[[], dict], rep: Reporter) -> tuple[list, dict]:
    """Run `epochs` of `step` over each epoch's batches, scoring `accuracy` after each; returns the log and the
    snapshot of the best epoch, the start (epoch 0) included."""
    best, best_state = accuracy(), snapshot()
    log = [{"epoch": 0, "valid_accuracy": best}]
    for epoch in range(epochs):
        batch_ids = steps()
        total = 0.0
        with rep.stage(f"{name} epoch {epoch + 1}/{epochs}", total=len(batch_ids)) as advance:
            for idx in batch_ids:
                loss = step(idx)
                total += loss
                advance(loss=loss)
        acc = accuracy()
        log.append({"epoch": epoch + 1, "loss": total / len(batch_ids), "valid_accuracy": acc})
        rep.log(f"  {name} epoch {epoch + 1}: loss {total / len(batch_ids):.4f}  valid accuracy {acc:.4f}")
        if acc > best:
            best, best_state = acc, snapshot()
    return log, best_state


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


def distill(student: TextStudent, teacher: TextTeacher, train: Encoded, valid: Encoded, cfg: DistillConfig,
            rep: Reporter) -> list[dict]:
    """Cross-distillation (`cfg.method` "cross": dynamic interplay + hidden matching) or plain KD (frozen teacher);
    keeps the best valid epoch, the integrated start (epoch 0) included."""
    interplay = cfg.method == "cross"
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr)
    t_opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=cfg.teacher_lr)
    frozen = None if interplay else predict(teacher, train.lower, train.mask)
    gen = torch.Generator().manual_seed(cfg.seed)

    def step(idx: torch.Tensor) -> float:
        student.train()
        teacher.train(interplay)
        y = train.y[idx]
        s_logits, s_pooled = student(train.student.input_ids[idx], train.student.mask[idx])
        t_logits, t_pooled = (teacher(train.lower[idx], train.mask[idx]) if interplay
                              else (frozen[0][idx], frozen[1][idx]))
        loss = cfg.w_task * F.cross_entropy(s_logits, y)
        loss = loss + cfg.w_kd * softened_kl(t_logits.detach(), s_logits, cfg.temperature)
        if interplay and cfg.w_hidden:
            loss = loss + cfg.w_hidden * F.mse_loss(student.hid_proj(s_pooled), t_pooled.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if interplay:  # the teacher adapts to the student's state at a small learning rate
            t_loss = F.cross_entropy(t_logits, y) + cfg.w_agree * softened_kl(
                s_logits.detach(), t_logits, cfg.temperature)
            t_opt.zero_grad()
            t_loss.backward()
            t_opt.step()
        return loss.item()

    log, best_state = keep_best_epochs(
        f"{cfg.method} distillation", cfg.epochs,
        lambda: batches(len(train.y), cfg.batch_size, cfg.max_steps_per_epoch, gen), step,
        lambda: s_accuracy(student, valid), lambda: copy.deepcopy(student.state_dict()), rep)
    student.load_state_dict(best_state)
    student.eval()
    return log


def run_textclf(cfg: Config, out: Path, rep: Reporter) -> dict:
    """The whole run: data -> teacher -> pruning -> integrated student -> distillation -> int8/int4 artifact."""
    if cfg.distill.method not in ("cross", "kd"):
        raise ConfigError(f"distill.method {cfg.distill.method!r} is for the recommendation students; "
                          "--train/--valid distils with 'cross' or 'kd'")
    started = time.perf_counter()
    train_path, valid_path = cfg.task.train, cfg.task.valid
    textclf = get_task("textclf")
    with rep.stage("load and check the data"):
        task = textclf.load(cfg.task)
    out = prepare(out, REPORT)
    textclf.write_description(out)
    max_len = cfg.teacher.max_len
    with rep.stage("load MiniLM, run its frozen layers"):
        tokenizer, bert = load_minilm()
        teacher = TextTeacher(bert, cfg.teacher.freeze_layers, len(task.labels))
        train, valid = (Encoded(torch.from_numpy(y), teacher.lower(tok), tok.mask) for y, tok in (
            (task.train_y, ItemTokens.build(tokenizer, task.train_texts, max_len)),
            (task.valid_y, ItemTokens.build(tokenizer, task.valid_texts, max_len))))
    t_log, cache = cached_teacher(cfg, task, teacher, train, valid, rep)
    t_acc = t_accuracy(teacher, valid)
    with rep.stage("hard token pruning (teacher attention x frequency)"):
        stats = token_stats(bert, tokenizer, task.train_texts, max_len)
        teacher_vocab = tokenizer.convert_ids_to_tokens(list(range(bert.config.vocab_size)))
        try:
            vocab = prune_vocab(stats, teacher_vocab, cfg.vocab.size, cfg.vocab.attention_weight, task.train_texts,
                                tokenizer, max_len)
        except ValueError as exc:
            raise ConfigError(f"{exc}: raise it, e.g. --set vocab.size=8192") from None
        s_tok = build_wordpiece(vocab.tokens, max_len)
        train = replace(train, student=encode_texts(s_tok, task.train_texts))
        valid = replace(valid, student=encode_texts(s_tok, task.valid_texts))
    with rep.stage("parameter integration"):
        student, carried = integrated_student(cfg, teacher, train, vocab, Path(train_path))
    s_log = distill(student, teacher, train, valid, cfg.distill, rep)

    q = cfg.quant
    path = out / ARTIFACT
    with rep.stage(f"quantize int{q.bits}, write and verify the artifact"):
        tensors = quantize_state(exported_state(student), q.bits, q.int4_group)
        config = {"runtime": RUNTIME_KIND, "student": cfg.student.model_dump(), "max_len": max_len,
                  "labels": task.labels, "pooling": "mean", "bits": q.bits, "int4_group": q.int4_group}
        meta = {"teacher": "all-MiniLM-L6-v2 fine-tuned", "task": "text classification",
                "data_sha256": task.digest(), "created": time.time()}
        nbytes = write_artifact(path, config, vocab.tokens, tensors, meta)
        artifact = read_artifact(path)
        deployed = copy.deepcopy(student)
        load_quantized(deployed, artifact.tensors)  # what is scored is what the file holds
        s_acc = s_accuracy(deployed, valid)
    report = {
        "task": "text classification",
        "artifact_bytes": nbytes,
        "artifact_path": str(path),
        "artifact_sha256": artifact.sha256,
        "teacher": {"accuracy": t_acc, "model": "all-MiniLM-L6-v2 + linear head", "cache": str(cache),
                    "params": sum(p.numel() for n, p in teacher.named_parameters() if not n.startswith("bert.pooler"))},
        "student": {"accuracy": s_acc, "accuracy_float": s_accuracy(student, valid), "kind": cfg.student.kind,
                    "bits": q.bits, "evaluated_with": "the artifact's dequantized weights",
                    "params": sum(p.numel() for n, p in student.named_parameters() if not n.startswith("hid_proj."))},
        "retention": {"accuracy": s_acc / t_acc if t_acc else None},
        "size_breakdown": size_breakdown(artifact, SIZE_GROUPS | {"classifier.": "heads"}),
        "labels": task.labels,
        "rows": {"train": len(task.train_texts), "valid": len(task.valid_texts)},
        "evaluated_on": "the valid file (it also picks each model's best epoch)",
        "data": {"train": str(train_path), "valid": str(valid_path), "sha256": task.digest()},
        "vocab": vocab.report,
        "training": {"teacher": t_log, "student": {"method": cfg.distill.method, "carried": carried, "epochs": s_log}},
        "stages": rep.stages,
        "wall_s": round(time.perf_counter() - started, 1),
        "config": cfg.model_dump(mode="json"),
    }
    write_json(out / REPORT, report)
    return report
