"""How a classifier student learns: the head carried through the projection, gradual unfreezing, the best epoch of
each stage, and every method's stages at equal budget (tiny random models, no downloads)."""

import torch

from compression.student import build_encoder
from compression.teacher.two_tower import ItemTokens
from compression.textclf.distill import Distiller, keep_best_epochs, unfreeze_epochs
from compression.textclf.models import Encoded, TextStudent, TextTeacher, carry_head
from compression.textclf.transfer import TransferSet
from edgefleet.config import DistillConfig, StudentConfig
from edgefleet.progress import Reporter


def test_unfreezing_is_evenly_spaced_with_the_head_from_the_start():
    assert unfreeze_epochs(3, 3) == [0, 1, 2]
    assert unfreeze_epochs(3, 6) == [0, 2, 4]
    assert unfreeze_epochs(3, 2) == [0, 0, 1]
    assert unfreeze_epochs(3, 1) == [0, 0, 0]


def test_keep_best_epochs_returns_the_best_snapshot_the_start_included():
    for scores, best in (([0.5, 0.4, 0.6, 0.55], 2), ([0.5, 0.4, 0.5], 0)):
        state = {"epoch": 0}
        accuracy = iter(scores)

        def step(idx):
            return 1.0

        def next_epoch(epoch):
            state["epoch"] = epoch + 1

        log, snapshot = keep_best_epochs("t", len(scores) - 1, lambda: [torch.arange(2)], step,
                                         lambda: next(accuracy), lambda: dict(state), Reporter(enabled=False),
                                         start_epoch=next_epoch)
        assert snapshot == {"epoch": best}
        assert [e["valid_accuracy"] for e in log] == scores


def student_and_teacher(tiny_bert, kind="bert"):
    torch.manual_seed(0)
    cfg = StudentConfig(kind=kind, embed_dim=16, hidden=32, layers=1, heads=1, ffn=32, lstm_hidden=8)
    student = TextStudent(build_encoder(cfg, 40, 16), n_classes=3, teacher_hidden=64)
    return student, TextTeacher(tiny_bert, freeze_layers=1, n_classes=3)


def test_the_carried_head_gives_the_teachers_logits_of_the_projected_state(tiny_bert):
    student, teacher = student_and_teacher(tiny_bert)
    with torch.no_grad():
        student.hid_proj.bias.normal_()
    carry_head(student, teacher)
    pooled = torch.randn(5, 32)
    with torch.no_grad():
        torch.testing.assert_close(student.classifier(pooled), teacher.classifier(student.hid_proj(pooled)))


def tiny_run(tiny_bert, cfg: DistillConfig, kind="bert"):
    """A student, its teacher and a Distiller over 24 training, 9 validation and 40 transfer texts of random ids."""
    student, teacher = student_and_teacher(tiny_bert, kind)
    gen = torch.Generator().manual_seed(0)

    def split(n):
        ids = torch.randint(5, 40, (n, 8), generator=gen)
        mask = (torch.arange(8)[None] < torch.randint(3, 9, (n, 1), generator=gen)).long()
        tokens = ItemTokens(ids, mask)
        return Encoded(torch.randint(0, 3, (n,), generator=gen), teacher.lower(tokens), mask, tokens)

    train, valid, extra = split(24), split(9), split(16)
    tokens = ItemTokens(torch.cat([train.student.input_ids, extra.student.input_ids]),
                        torch.cat([train.mask, extra.mask]))
    transfer = TransferSet(tokens, torch.randn(40, 64, generator=gen), torch.randn(40, 3, generator=gen))
    return student, teacher, Distiller(cfg, teacher, train, valid, transfer, Reporter(enabled=False))


def test_every_method_runs_its_stages_at_the_same_task_budget(tiny_bert):
    cfg = DistillConfig(epochs=3, pretrain_epochs=1, batch_size=8)
    budgets = {}
    for kind, method in (("bert", "cross"), ("bert", "kd"), ("bilstm", "xtremedistil")):
        student, teacher, distiller = tiny_run(tiny_bert, cfg, kind)
        before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
        log = distiller.run(student, method, method)
        stages = {"cross": ["represent", "task"], "kd": ["represent", "task"],
                  "xtremedistil": ["represent", "logits", "labels"]}[method]
        assert [k for k in stages if k in log] == stages
        assert log["represent_steps"] == 5  # ceil(40 / 8)
        budgets[method] = log["task_steps"]
        moved = any(not torch.equal(p, before[n]) for n, p in teacher.named_parameters())
        assert moved == (method == "cross")  # only cross-distillation trains the teacher alongside
        assert all(p.requires_grad for p in student.parameters())
    assert budgets == {"cross": 9, "kd": 9, "xtremedistil": 9}  # 3 epochs of ceil(24 / 8) steps


def test_logit_matching_trains_the_head_first(tiny_bert, monkeypatch):
    """With three epochs the body joins in epoch 2 and the word embeddings in epoch 3; when epoch 1 scores best on
    validation, the student kept is the one after it, where only the head has moved."""
    student, _, distiller = tiny_run(tiny_bert, DistillConfig(epochs=3, batch_size=8), "bilstm")
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    scores = iter([0.0, 1.0, 0.0, 0.0])  # the start, then epochs 1-3
    monkeypatch.setattr("compression.textclf.distill.s_accuracy", lambda *args: next(scores))
    log = distiller.match_logits(student, "x", 3)
    assert [e["epoch"] for e in log] == [0, 1, 2, 3]
    changed = {n.rsplit(".", 1)[0] for n, p in student.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"classifier"}
    assert all(p.requires_grad for p in student.parameters())
