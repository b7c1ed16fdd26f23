"""Parameter integration: through an identity basis a same-sized student is the teacher, exactly."""

import numpy as np
import torch

from compression.student.bert import CompactBert
from compression.student.integrate import integrate, pca_basis, teacher_layers_for
from compression.teacher.minilm import mean_pool
from edgefleet.config import StudentConfig
from edgefleet.tasks.movielens.teacher_head import RecHead


def test_identity_basis_reproduces_the_teacher(tiny_bert):
    kept = np.arange(40)
    cfg = StudentConfig(embed_dim=64, hidden=64, layers=2, heads=2, ffn=96)
    student = CompactBert(cfg, vocab_size=40, max_len=32)
    t_head, s_head = RecHead(64, 16, 5, 0.05), RecHead(64, 16, 5, 0.05)
    hid = torch.nn.Linear(64, 64)
    info = integrate(student, s_head, hid, tiny_bert, t_head, kept, torch.eye(64))
    assert "block1<-teacher1" in info["carried"]
    ids = torch.randint(0, 40, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[2, 5:] = 0
    with torch.no_grad():
        ref = mean_pool(tiny_bert(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        out = student(ids, mask).pooled
        assert torch.allclose(out, ref, atol=1e-4)
        assert torch.allclose(s_head.item_vectors(out)[0], t_head.item_vectors(ref)[0], atol=1e-4)


def test_pca_basis_is_orthonormal_and_ordered():
    torch.manual_seed(0)
    x = torch.randn(500, 8) * torch.tensor([5.0, 1, 1, 1, 1, 1, 1, 0.1])
    u = pca_basis(x, 3)
    assert u.shape == (8, 3)
    assert torch.allclose(u.T @ u, torch.eye(3), atol=1e-5)
    assert abs(u[0, 0]) > 0.99  # the high-variance axis comes first


def test_student_blocks_take_evenly_spaced_teacher_layers_ending_at_the_top():
    assert teacher_layers_for(2, 6) == [2, 5]
    assert teacher_layers_for(3, 6) == [1, 3, 5]
    assert teacher_layers_for(1, 6) == [5]
    assert teacher_layers_for(6, 6) == list(range(6))
