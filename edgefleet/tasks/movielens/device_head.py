"""The recommendation head in numpy with its gradient: what the device runtime scores with, and the part of the
deployed model a device fine-tunes.

The INT8 encoder stays frozen on the device; its pooled text vectors feed this head, which mirrors
edgefleet/tasks/movielens/teacher_head.py RecHead: item vector = normalize(W_i e + b_i), prior = w_p . (W_i e + b_i)
+ b_p, user =
normalize(W_u (recency-softmax-weighted mean of history item vectors) + b_u + personal), score = exp(log_scale) *
user . item + prior. `personal` is a per-device vector that never leaves the device.

The backward pass is written out by hand because the device runtime is numpy only (no autograd on the phone);
tests/tasks/movielens/test_device_head.py checks it against torch autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

SHARED_KEYS = ("head.item_head.weight", "head.item_head.bias", "head.prior.weight", "head.prior.bias",
               "head.recency", "head.user_head.weight", "head.user_head.bias", "head.log_scale")
# Optional: a free vector per item added to the head's item vector before normalisation (FedMF-style item-side
# residual). Its rows are those of the table it is used with: the whole catalogue on the server, the rows of its own
# table's items on a device (device.py gathers them).
ITEM_RESIDUAL = "head.item_residual"

Params = dict[str, np.ndarray]


def shared_params(tensors: Mapping[str, Any]) -> Params:
    """The head's float32 weights as deployed (the artifact's tensors, anything with `dequantize()`)."""
    return {k: np.ascontiguousarray(tensors[k].dequantize(), dtype=np.float32) for k in SHARED_KEYS}


def _normalize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norm = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x / norm, norm


def _normalize_backward(grad: np.ndarray, unit: np.ndarray, norm: np.ndarray) -> np.ndarray:
    return (grad - unit * (grad * unit).sum(-1, keepdims=True)) / norm


def with_item_residual(shared: Params, n_items: int) -> Params:
    """The shared weights and a zero item residual over a catalogue of `n_items`."""
    return {**shared, ITEM_RESIDUAL: np.zeros((n_items, len(shared["head.item_head.bias"])), dtype=np.float32)}


def _item_pre(p: Params, pooled: np.ndarray) -> np.ndarray:
    """The item vectors before normalisation: the head over the pooled outputs, plus the item residual if any."""
    v = pooled @ p["head.item_head.weight"].T + p["head.item_head.bias"]
    if ITEM_RESIDUAL in p:
        v += p[ITEM_RESIDUAL]
    return v


def item_table(p: Params, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normalised item vectors, priors) for pooled encoder outputs (N, hidden)."""
    v = _item_pre(p, pooled)
    return _normalize(v)[0], v @ p["head.prior.weight"][0] + p["head.prior.bias"][0]


def recency_weights(p: Params, mask: np.ndarray) -> np.ndarray:
    """Softmax of the recency logits over each row's valid (right-aligned) positions; all-zero for an empty row."""
    logits = np.where(mask, p["head.recency"][-mask.shape[1]:], -np.inf)
    top = np.max(logits, axis=1, keepdims=True)
    e = np.where(mask, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
    return e / np.maximum(e.sum(1, keepdims=True), 1e-30)


def user_vectors(p: Params, items: np.ndarray, ctx: np.ndarray, mask: np.ndarray,
                 personal: np.ndarray | None = None) -> np.ndarray:
    """Normalised user vectors from right-aligned history indices `ctx` (B, L) into `items`."""
    h = np.einsum("bl,bld->bd", recency_weights(p, mask), items[ctx])
    u = h @ p["head.user_head.weight"].T + p["head.user_head.bias"]
    if personal is not None:
        u = u + personal
    return _normalize(u)[0]


def scores(p: Params, users: np.ndarray, items: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """exp(log_scale) * user . item + prior, for one user (D,) or a batch (B, D)."""
    return float(np.exp(p["head.log_scale"][0])) * (users @ items.T) + prior


def right_aligned(histories: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, length) indices of each history's most recent items, right-aligned, and the validity mask."""
    ctx = np.zeros((len(histories), length), dtype=np.int64)
    mask = np.zeros((len(histories), length), dtype=bool)
    for r, h in enumerate(histories):
        recent = np.asarray(h[-length:], dtype=np.int64)
        if len(recent):
            ctx[r, length - len(recent):] = recent
            mask[r, length - len(recent):] = True
    return ctx, mask


@dataclass(frozen=True)
class Examples:
    """Next-item examples over a local item table: predict candidate 0 of each row from its history."""

    ctx: np.ndarray  # (B, L) right-aligned history indices
    mask: np.ndarray  # (B, L) valid history positions
    cand: np.ndarray  # (B, C) candidate indices, column 0 the positive
    valid: np.ndarray  # (B, C) False where a candidate must not count as a negative

    def take(self, rows: np.ndarray) -> "Examples":
        return Examples(self.ctx[rows], self.mask[rows], self.cand[rows], self.valid[rows])


@dataclass(frozen=True)
class _Forward:
    """What the loss's forward pass keeps for the backward."""

    v: np.ndarray  # (N, D) item vectors before normalisation
    n: np.ndarray  # their normalised vectors
    v_norm: np.ndarray
    w: np.ndarray  # (B, L) recency weights
    n_ctx: np.ndarray  # (B, L, D) the history's item vectors
    h: np.ndarray  # (B, D) their weighted mean
    nu: np.ndarray  # (B, D) normalised user vectors
    u_norm: np.ndarray
    scale: float
    n_cand: np.ndarray  # (B, C, D) the candidates' item vectors
    cos: np.ndarray  # (B, C)
    loss: float
    g: np.ndarray  # (B, C) the loss's gradient for the logits


def _forward(p: Params, pooled: np.ndarray, ex: Examples, personal: np.ndarray | None) -> _Forward:
    """The mean sampled-softmax loss and its gradient for the logits."""
    wu = p["head.user_head.weight"]
    v = _item_pre(p, pooled)
    n, v_norm = _normalize(v)
    prior = v @ p["head.prior.weight"][0] + p["head.prior.bias"][0]
    w = recency_weights(p, ex.mask)
    n_ctx = n[ex.ctx]
    h = np.einsum("bl,bld->bd", w, n_ctx)
    u = h @ wu.T + p["head.user_head.bias"]
    if personal is not None:
        u = u + personal
    nu, u_norm = _normalize(u)
    scale = float(np.exp(p["head.log_scale"][0]))
    n_cand = n[ex.cand]
    cos = np.einsum("bd,bcd->bc", nu, n_cand)
    logits = np.where(ex.valid, scale * cos + prior[ex.cand], -np.inf)
    top = logits.max(1, keepdims=True)
    e = np.exp(logits - top)
    z = e.sum(1, keepdims=True)
    loss = float(np.mean(np.log(z[:, 0]) + top[:, 0] - logits[:, 0]))
    g = (e / z).astype(np.float32)
    g[:, 0] -= 1.0
    g /= len(ex.cand)
    return _Forward(v, n, v_norm, w, n_ctx, h, nu, u_norm, scale, n_cand, cos, loss, g)


def _d_user(f: _Forward) -> np.ndarray:
    """The gradient for the user vectors before normalisation (where the personal vector is added)."""
    d_nu = f.scale * np.einsum("bc,bcd->bd", f.g, f.n_cand)
    return _normalize_backward(d_nu, f.nu, f.u_norm)


def personal_gradient(p: Params, pooled: np.ndarray, ex: Examples, personal: np.ndarray) -> np.ndarray:
    """The mean loss's gradient for the personal vector: the forward pass and the backward as far as the user
    vector (the personal vector is added there), without the shared weights' backward that `loss_and_grads` adds."""
    return _d_user(_forward(p, pooled, ex, personal)).sum(0).astype(np.float32)


def loss_and_grads(p: Params, pooled: np.ndarray, ex: Examples,
                   personal: np.ndarray | None = None) -> tuple[float, Params, np.ndarray | None]:
    """Mean sampled-softmax loss, its gradient for every shared weight, and for the personal vector."""
    wp, wu = p["head.prior.weight"][0], p["head.user_head.weight"]
    n_items, batch = len(pooled), len(ex.cand)
    rows = np.arange(batch)[:, None]
    f = _forward(p, pooled, ex, personal)
    g, n, v, w, h, n_ctx = f.g, f.n, f.v, f.w, f.h, f.n_ctx
    grads: Params = {"head.log_scale": np.array([f.scale * float((g * f.cos).sum())], dtype=np.float32)}
    d_prior = np.zeros(n_items, dtype=np.float32)
    np.add.at(d_prior, ex.cand, g)
    d_u = _d_user(f)
    to_items = np.zeros((n_items, batch), dtype=np.float32)
    np.add.at(to_items, (ex.cand, np.broadcast_to(rows, ex.cand.shape)), f.scale * g)
    d_n = to_items @ f.nu
    grads["head.user_head.weight"] = d_u.T @ h
    grads["head.user_head.bias"] = d_u.sum(0)
    d_h = d_u @ wu
    d_w = np.einsum("bd,bld->bl", d_h, n_ctx)
    d_rec_logits = w * (d_w - (w * d_w).sum(1, keepdims=True))
    d_rec = np.zeros_like(p["head.recency"], dtype=np.float32)
    d_rec[len(d_rec) - ex.ctx.shape[1]:] = d_rec_logits.sum(0)
    grads["head.recency"] = d_rec
    from_ctx = np.zeros((n_items, batch), dtype=np.float32)
    np.add.at(from_ctx, (ex.ctx, np.broadcast_to(rows, ex.ctx.shape)), w)
    d_n += from_ctx @ d_h
    d_v = _normalize_backward(d_n, n, f.v_norm) + d_prior[:, None] * wp
    grads["head.prior.weight"] = (d_prior @ v)[None, :]
    # A constant added to every score changes no softmax: the bias's gradient is exactly 0, and rounding noise in
    # its place would be amplified into full-size steps by Adam's normalisation.
    grads["head.prior.bias"] = np.zeros(1, dtype=np.float32)
    grads["head.item_head.weight"] = d_v.T @ pooled
    grads["head.item_head.bias"] = d_v.sum(0)
    if ITEM_RESIDUAL in p:
        grads[ITEM_RESIDUAL] = d_v  # the residual is added to v row for row
    grads = {k: np.asarray(g_, dtype=np.float32) for k, g_ in grads.items()}
    d_personal = None if personal is None else d_u.sum(0).astype(np.float32)
    return f.loss, grads, d_personal
