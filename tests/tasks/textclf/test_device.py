"""The classifier device's numpy head: its gradient is autograd's, its metrics hand-computed."""

import numpy as np
import torch

from edgefleet.tasks.textclf.device import loss_and_grads
from edgefleet.tasks.textclf.evaluate import macro_f1


def test_the_hand_written_gradient_is_autograds():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 8)).astype(np.float32), np.array([0, 2, 1, 2, 2, 0])
    p = {"classifier.weight": rng.normal(size=(3, 8)).astype(np.float32),
         "classifier.bias": rng.normal(size=3).astype(np.float32)}
    personal = rng.normal(size=3).astype(np.float32)
    loss, grads, d_personal = loss_and_grads(p, x, y, personal)
    w = torch.tensor(p["classifier.weight"], requires_grad=True)
    b = torch.tensor(p["classifier.bias"], requires_grad=True)
    q = torch.tensor(personal, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x) @ w.T + b + q, torch.tensor(y))
    ref.backward()
    assert abs(loss - ref.item()) < 1e-5
    np.testing.assert_allclose(grads["classifier.weight"], w.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(grads["classifier.bias"], b.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(d_personal, q.grad.numpy(), atol=1e-6)


def test_macro_f1_by_hand():
    y, pred = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 0, fn 1 -> 0
    assert abs(macro_f1(y, pred, 3) - (0.5 + 0.8 + 0.0) / 3) < 1e-12
