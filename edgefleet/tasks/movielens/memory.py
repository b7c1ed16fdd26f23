"""Memory of the recommendation task's work on a device, counted from what edgefleet/tasks/movielens/device.py
allocates (float32 = 4 bytes, int64 indices = 8, bool = 1). `m` is the deployed model's dimensions
(compression/runtime/memory_model.py `ModelDims`: hidden, dim, history_len); the runtime adds the
resident model and the encoder's transient (docs/stress.md).

- **Inference** over the local table of N rows, N_i item texts (evaluation candidates, history, negatives) and T
  titles: the device's copy of the pooled table (NH), then the larger of genre tagging (the T x G logits, the
  matmul's result before the bias, their negated copy, the argpartition's int64 indices) and, inside `item_table`,
  the projected item vectors and the squared values of `np.linalg.norm` (2 N_i D): tagging is done and freed before
  `item_table` runs.
- **Training** on the M = history + negatives rows, E next-item examples with C candidates each, in micro-batches
  of b rows: the table (NH, still alive under the view), the examples (E L int64 + bool, E C int64 + bool), the new
  head and the optimizer's state (3P for P head weights with Adam's two moments, P with SGD), and in
  `loss_and_grads` at its widest line (`d_v = ...`): six (M, D) arrays (v, n, d_n, and the three of the
  normalisation backward), the gathered context vectors (b L D), the gathered candidate vectors (b C D), two (M, b)
  scatter matrices, the user-head gradient (D^2), and the batch's running sum of gradients held by the caller (P, from
  a batch's second micro-batch on). The personal vector's gradient, a forward pass only as far as the user vector,
  is narrower. The genre head (P_g = G H + G) adds its copy and the optimizer's state (3 P_g with Adam) to what is held;
  its own widest moment, a micro-batch of b_g titles in `genre_head.loss_and_grads` (the gathered titles b_g H, six
  b_g x G arrays, its gradient, the accumulated one and a scaled copy: 3 P_g), comes after the recommendation pass,
  so the peak holds the larger of the two.
- **The item residual** (sim.item_residual, width D_r = D): the rows of the table's N_i items are gathered (N_i D_r,
  held throughout); training adds the R = M D_r rows it trains to what the heads hold (their copy and Adam's moments,
  3R, or R with SGD) and to the accumulated and previous gradients (2R).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

F32, I64 = 4, 8
# numpy reuses a temporary operand's buffer for the result of an elementwise operation once it is this large
# (NPY_MIN_ELIDE_BYTES), so one (M, D) array fewer is alive in the widest line of the head's backward.
ELIDE_BYTES = 256 * 1024
# A broadcasting ufunc (a (N, D) array plus a bias, or over a (N, 1) norm) iterates through numpy's buffer:
# np.getbufsize() = 8192 elements of float32.
UFUNC_BUFFER = 8192 * F32


def head_params(m: Any) -> int:
    """P: the shared, trained recommendation head (device_head.py SHARED_KEYS), from the model's dimensions."""
    d, h = m.dim, m.hidden
    return d * h + d + d + 1 + m.history_len + d * d + d + 1


def genre_params(m: Any, genres: int) -> int:
    """P_g: the shared, trained genre head (genre_head.py GENRE_KEYS)."""
    return genres * m.hidden + genres


@dataclass(frozen=True)
class DeviceShapes:
    """What the memory of one device's work depends on, beyond the model."""

    n_eval: int  # evaluation candidates (the held-out item and the protocol's negatives)
    n_hist: int  # the device's items plus the held-out validation item
    n_neg: int  # training negatives
    tokens: int  # longest tokenised item text in the table (after truncation)
    batch: int = 32
    batch_div: int = 1
    personal: bool = True  # a personal vector is trained (a second loss_and_grads per micro-batch)
    n_titles: int = 0  # titles of the device's own items at the end of the table, for the genre head
    genres: int = 0  # the genre head's outputs
    residual: int = 0  # width of the item vectors trained with the heads (sim.item_residual; 0: none)
    state: int = 2  # the optimizer's state in copies of the trained weights (Adam's moments: 2; SGD: 0)

    @property
    def n_items(self) -> int:
        """Rows holding item texts, what the recommendation head reads."""
        return self.n_eval + self.n_hist + self.n_neg

    @property
    def n_local(self) -> int:
        return self.n_items + self.n_titles

    @property
    def examples(self) -> int:
        return max(self.n_hist - 2, 0)

    def work_bytes(self, m: Any, train: bool) -> int:
        return training_bytes(m, self) if train else inference_bytes(m, self)


def inference_bytes(m: Any, d: DeviceShapes) -> int:
    tagging = (3 * F32 + I64) * d.n_titles * d.genres
    return (F32 * d.n_local * m.hidden + F32 * d.n_items * d.residual  # the table, its items' residual rows
            + max(F32 * 2 * d.n_items * m.dim, tagging) + UFUNC_BUFFER)


def training_bytes(m: Any, d: DeviceShapes) -> int:
    e = d.examples
    if e < 1:
        return inference_bytes(m, d)
    rows_m, c, ll, dim, p = d.n_hist + d.n_neg, 1 + d.n_neg, m.history_len, m.dim, head_params(m)
    b = max(1, min(d.batch, e) // d.batch_div)
    p_g, b_g = genre_params(m, d.genres), max(1, min(d.batch, d.n_titles) // d.batch_div)
    r = rows_m * d.residual  # the item residual's rows the device trains (0 without it)
    held = (F32 * d.n_local * m.hidden  # the pooled table
            + F32 * d.n_items * d.residual  # the residual rows of the table's items
            + (I64 + 1) * e * ll + (I64 + 1) * e * c + 2 * I64 * e  # examples, permutation
            + F32 * (1 + d.state) * (p + p_g + r)  # new heads (and residual rows) + the optimizer's state
            + (I64 + 1) * b * (ll + c))  # the micro-batch's examples
    wide = 6 if F32 * rows_m * dim < ELIDE_BYTES else 5
    held_grads = int(min(d.batch, e) > b)  # the batch's running sum of gradients, from its second micro-batch on
    widest = F32 * (wide * rows_m * dim + b * ll * dim + b * c * dim + 8 * b * dim + 2 * rows_m * b + dim * dim
                    + held_grads * (p + r)) + UFUNC_BUFFER
    genre_widest = F32 * (b_g * m.hidden + 6 * b_g * d.genres + 3 * p_g) + I64 * d.n_titles + UFUNC_BUFFER
    return held + max(widest, genre_widest)
