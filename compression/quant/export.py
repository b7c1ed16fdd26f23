"""From a trained torch student to artifact tensors, and the fake quantization used to evaluate and fine-tune it.

Every 2-D weight (embedding tables, projections) is quantized; 1-D tensors (biases, LayerNorm, recency, scale) stay
float32: they are a few kilobytes and quantizing them costs accuracy for nothing. The training-only projection
`hid_proj` is not exported.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from compression.runtime.quantize import QTensor, keep_f32, quantize_int4, quantize_int8

SIZE_GROUPS = {"encoder.word.": "embeddings", "encoder.embed_proj.": "embeddings", "encoder.pos.": "embeddings",
               "encoder.embed_ln.": "embeddings", "encoder.blocks.": "encoder", "encoder.lstm.": "encoder",
               "head.": "heads", "genre.": "heads"}


def exported_state(student: nn.Module) -> dict[str, np.ndarray]:
    """Float32 arrays of every deployed tensor; scalars become shape (1,) (the artifact stores no 0-d tensors)."""
    return {name: np.atleast_1d(t.detach().cpu().numpy().astype(np.float32))
            for name, t in student.state_dict().items() if not name.startswith("hid_proj.")}


def quantize_state(state: dict[str, np.ndarray], bits: int, group: int) -> dict[str, QTensor]:
    out = {}
    for name, w in state.items():
        if w.ndim == 2:
            out[name] = quantize_int8(w) if bits == 8 else quantize_int4(w, group)
        else:
            out[name] = keep_f32(w)
    return out


@torch.no_grad()
def load_quantized(student: nn.Module, tensors: dict[str, QTensor]) -> None:
    """Put the dequantized artifact weights into the torch model: what it then computes is what devices compute."""
    state = student.state_dict()
    for name, q in tensors.items():
        state[name].copy_(torch.from_numpy(np.ascontiguousarray(q.dequantize())).reshape(state[name].shape))


class _FakeQuant(nn.Module):
    """Straight-through fake quantization matching compression/runtime/quantize.py (symmetric, round half to even)."""

    def __init__(self, bits: int, group: int):
        super().__init__()
        self.qmax = 127 if bits == 8 else 7
        self.group = group if bits == 4 else 0

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        rows, cols = w.shape
        x = w
        if self.group:
            pad = (-cols) % self.group
            x = nn.functional.pad(w, (0, pad)).view(rows, -1, self.group)
        absmax = x.detach().abs().amax(dim=-1, keepdim=True)
        scale = torch.where(absmax > 0, absmax / self.qmax, torch.ones_like(absmax))
        q = torch.clamp(torch.round(x / scale), -self.qmax, self.qmax) * scale
        if self.group:
            q = q.view(rows, -1)[:, :cols]
        return w + (q - w).detach()


@contextmanager
def fake_quantized(student: nn.Module, bits: int, group: int) -> Iterator[nn.Module]:
    """Quantization-aware training: every exported 2-D weight is seen quantized in the forward pass."""
    # Linear and Embedding weights only: nn.LSTM reads its flat weight buffers directly and cannot be parametrized,
    # so a BiLSTM's recurrent weights are quantized at export without fine-tuning.
    targets = [(m, "weight") for name, m in student.named_modules()
               if isinstance(m, (nn.Linear, nn.Embedding)) and not name.startswith("hid_proj")]
    for module, name in targets:
        parametrize.register_parametrization(module, name, _FakeQuant(bits, group))
    try:
        yield student
    finally:
        for module, name in targets:
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
