"""The numpy head's hand-written gradient equals torch autograd on the same computation."""

import numpy as np
import torch
import torch.nn.functional as F

from edgefleet.tasks.movielens.device_head import (
    ITEM_RESIDUAL,
    SHARED_KEYS,
    Examples,
    item_table,
    loss_and_grads,
    personal_gradient,
    right_aligned,
    user_vectors,
)
from edgefleet.tasks.movielens.teacher_head import RecHead


def _setup(seed=0):
    torch.manual_seed(seed)
    head = RecHead(in_dim=12, dim=8, history_len=6, temperature=0.1)
    with torch.no_grad():
        for prm in head.parameters():
            prm.add_(0.3 * torch.randn_like(prm))
    state = head.state_dict()
    params = {k: np.atleast_1d(state[k.removeprefix("head.")].numpy()).astype(np.float32).copy() for k in SHARED_KEYS}
    rng = np.random.default_rng(seed)
    pooled = rng.normal(size=(9, 12)).astype(np.float32)
    ctx, mask = right_aligned([np.array([0, 1, 2]), np.array([3]), np.array([4, 5, 6, 7, 8, 0, 1]), np.array([])], 5)
    cand = rng.integers(0, 9, size=(4, 5))
    valid = np.ones_like(cand, dtype=bool)
    valid[0, 3] = False
    return head, params, pooled, Examples(ctx, mask, cand, valid)


def test_gradients_match_autograd():
    head, params, pooled, ex = _setup()
    personal = np.random.default_rng(1).normal(size=8).astype(np.float32)
    loss, grads, d_personal = loss_and_grads(params, pooled, ex, personal)

    p_t = torch.tensor(personal, requires_grad=True)
    items, prior = head.item_vectors(torch.tensor(pooled))
    length = ex.ctx.shape[1]
    logits_r = head.recency[-length:].expand(len(ex.ctx), length).masked_fill(~torch.tensor(ex.mask), float("-inf"))
    w = torch.softmax(logits_r, -1).nan_to_num(0.0)
    h = torch.einsum("bl,bld->bd", w, items[torch.tensor(ex.ctx)])
    users = F.normalize(head.user_head(h) + p_t, dim=-1)
    cand = torch.tensor(ex.cand)
    logits = head.log_scale.exp() * torch.einsum("bd,bcd->bc", users, items[cand]) + prior[cand]
    logits = logits.masked_fill(~torch.tensor(ex.valid), float("-inf"))
    ref = F.cross_entropy(logits, torch.zeros(len(cand), dtype=torch.long))
    ref.backward()

    assert abs(loss - ref.item()) < 1e-5
    named = dict(head.named_parameters())
    for key in SHARED_KEYS:
        expected = named[key.removeprefix("head.")].grad.numpy().reshape(grads[key].shape)
        np.testing.assert_allclose(grads[key], expected, rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(d_personal, p_t.grad.numpy(), rtol=1e-4, atol=1e-6)
    # The device's shortcut for the personal vector alone is the same figure, to the bit.
    np.testing.assert_array_equal(personal_gradient(params, pooled, ex, personal), d_personal)


def test_forward_pieces_match_the_torch_head():
    head, params, pooled, ex = _setup(2)
    items, prior = item_table(params, pooled)
    t_items, t_prior = head.item_vectors(torch.tensor(pooled))
    np.testing.assert_allclose(items, t_items.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(prior, t_prior.detach().numpy(), atol=1e-5)
    users = user_vectors(params, items, ex.ctx[:3], ex.mask[:3])
    t_users = head.user_vectors(t_items[torch.tensor(ex.ctx[:3])], torch.tensor(ex.mask[:3]))
    np.testing.assert_allclose(users, t_users.detach().numpy(), atol=1e-6)


def test_the_item_residual_is_a_free_vector_per_item_and_its_gradient_lands_on_its_rows():
    """A residual row added to an item's vector is the same model as a one-hot input column per item whose weight
    column is that row: equal items and loss, and each row's gradient is its column's."""
    _, params, pooled, ex = _setup()
    pooled = np.vstack([pooled, np.ones((1, pooled.shape[1]), np.float32)])  # item 9: in no example
    dim = params["head.item_head.bias"].shape[0]
    residual = np.random.default_rng(2).normal(scale=0.5, size=(len(pooled), dim)).astype(np.float32)
    loss, grads, _ = loss_and_grads({**params, ITEM_RESIDUAL: residual}, pooled, ex)

    one_hot = np.eye(len(pooled), dtype=np.float32)
    wide = {**params, "head.item_head.weight": np.concatenate([params["head.item_head.weight"], residual.T], axis=1)}
    ref_loss, ref, _ = loss_and_grads(wide, np.concatenate([pooled, one_hot], axis=1), ex)
    assert abs(loss - ref_loss) < 1e-6
    np.testing.assert_allclose(grads[ITEM_RESIDUAL], ref["head.item_head.weight"][:, pooled.shape[1]:].T,
                               rtol=1e-4, atol=1e-7)
    for key in SHARED_KEYS:
        expected = ref[key][:, :pooled.shape[1]] if key == "head.item_head.weight" else ref[key]
        np.testing.assert_allclose(grads[key], expected, rtol=1e-4, atol=1e-7, err_msg=key)
    assert not np.isin(9, np.concatenate([ex.ctx[ex.mask], ex.cand.ravel()]))
    assert not grads[ITEM_RESIDUAL][9].any() and grads[ITEM_RESIDUAL][:9].any(axis=1).all()
    items, _ = item_table({**params, ITEM_RESIDUAL: residual}, pooled)
    wide_items, _ = item_table(wide, np.concatenate([pooled, one_hot], axis=1))
    np.testing.assert_allclose(items, wide_items, rtol=1e-5, atol=1e-6)
