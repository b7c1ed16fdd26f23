"""Distillation losses: the softened KL by hand, and the exclusion of a user's own items."""

import math

import pytest
import torch

from compression.distill.stages import softened_kl


def test_softened_kl_by_hand():
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> [1/4, 3/4]
    student = torch.tensor([[0.0, 0.0]])  # softmax -> [1/2, 1/2]
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert softened_kl(teacher, student, 1.0).item() == pytest.approx(expected, rel=1e-5)
    assert softened_kl(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_known_items_do_not_count():
    teacher = torch.tensor([[1.0, 2.0, 9.0]])
    student = torch.tensor([[1.0, 2.0, -9.0]])
    known = torch.tensor([[False, False, True]])
    assert softened_kl(teacher, student, 1.0, known).item() == pytest.approx(0.0, abs=1e-6)
    assert softened_kl(teacher, student, 1.0).item() > 1.0
