"""Fake quantization during QAT sees exactly the weights the artifact will hold."""

import numpy as np
import pytest
import torch
from torch import nn

from compression.quant.export import _FakeQuant, exported_state, fake_quantized, quantize_state
from compression.runtime.quantize import quantize_int4, quantize_int8


@pytest.mark.parametrize("bits, shape", [(8, (6, 10)), (4, (5, 37))])
def test_fake_quant_equals_artifact_quantization(bits, shape):
    torch.manual_seed(0)
    w = torch.randn(*shape)
    fake = _FakeQuant(bits, 16)(w).detach().numpy()
    real = (quantize_int8(w.numpy()) if bits == 8 else quantize_int4(w.numpy(), 16)).dequantize()
    assert np.abs(fake - real).max() < 1e-6


def test_fake_quant_passes_gradients_straight_through():
    w = torch.randn(4, 8, requires_grad=True)
    _FakeQuant(8, 0)(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_fake_quantized_context_restores_float_weights_and_skips_training_only_parts():
    model = nn.Module()
    model.lin = nn.Linear(8, 4)
    model.hid_proj = nn.Linear(4, 8)
    before = model.lin.weight.detach().clone()
    with fake_quantized(model, 8, 32):
        assert hasattr(model.lin, "parametrizations") and not hasattr(model.hid_proj, "parametrizations")
    assert not hasattr(model.lin, "parametrizations")
    assert torch.equal(model.lin.weight, before)


def test_only_matrices_are_quantized_and_scalars_become_vectors():
    model = nn.Module()
    model.lin = nn.Linear(8, 4)
    model.scale = nn.Parameter(torch.tensor(2.0))
    model.hid_proj = nn.Linear(4, 8)
    state = exported_state(model)
    assert set(state) == {"lin.weight", "lin.bias", "scale"} and state["scale"].shape == (1,)
    kinds = {n: q.kind for n, q in quantize_state(state, 4, 32).items()}
    assert kinds == {"lin.weight": "int4", "lin.bias": "f32", "scale": "f32"}
