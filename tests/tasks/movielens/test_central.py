"""The centralized oracle: it trains the shared heads on the device users' train items only, with the devices'
loss, and keeps the epoch that scores best on validation (epoch 0, the deployed heads, included)."""

import numpy as np
import torch

from edgefleet.tasks.movielens.central import CentralSettings, next_item_examples, train_central
from edgefleet.tasks.movielens.device_head import SHARED_KEYS
from edgefleet.tasks.movielens.genre_head import GENRE_KEYS, held_out_items
from edgefleet.tasks.movielens.split import make_split
from edgefleet.tasks.movielens.teacher_head import RecHead

HIDDEN = 6


def _heads(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    state = RecHead(HIDDEN, 4, 4, 0.1).state_dict()
    rng = np.random.default_rng(seed)
    params = {k: np.atleast_1d(state[k.removeprefix("head.")].numpy()).astype(np.float32) for k in SHARED_KEYS}
    params.update({"genre.weight": rng.normal(size=(19, HIDDEN)).astype(np.float32),
                   "genre.bias": rng.normal(size=19).astype(np.float32)})
    return params


def test_examples_are_the_device_users_train_items_only(toy_catalogue):
    split = make_split(toy_catalogue, 0.3, seed=0)
    ctx, mask, pos = next_item_examples(split, split.device_users, history_len=3)
    train = {int(u): split.train[int(u)] for u in split.device_users}
    assert len(pos) == sum(len(t) - 1 for t in train.values())
    allowed = np.concatenate(list(train.values()))
    assert np.isin(pos, allowed).all() and np.isin(ctx[mask], allowed).all()
    held = np.concatenate([split.valid[split.device_users], split.test[split.device_users]])
    # No held-out item of a device user is a target or a history item of that user's examples.
    row = 0
    for u in split.device_users:
        n = len(split.train[int(u)]) - 1
        own_held = [split.valid[int(u)], split.test[int(u)]]
        assert not np.isin(pos[row:row + n], own_held).any()
        assert not np.isin(ctx[row:row + n][mask[row:row + n]], own_held).any()
        row += n
    assert len(held) == 2 * len(split.device_users)


def _inputs(cat):
    """A split of the toy catalogue and random pooled vectors of its item texts and titles."""
    rng = np.random.default_rng(2)
    return (make_split(cat, 0.3, seed=0), rng.normal(size=(cat.n_items, HIDDEN)).astype(np.float32),
            rng.normal(size=(cat.n_items, HIDDEN)).astype(np.float32))


def test_training_moves_the_heads_and_keeps_the_best_validated_epoch(toy_catalogue):
    cat = toy_catalogue
    split, items, titles = _inputs(cat)
    start = _heads()
    seen = []
    scores = iter([0.5, 0.2, 0.7, 0.6])  # epoch 0 (the deployed heads), then epochs 1..3

    def validate(p):
        seen.append({k: v.copy() for k, v in p.items()})
        return next(scores)

    s = CentralSettings(epochs=3, batch_size=4, negatives=5, lr=0.05, seed=0)
    best, log = train_central(start, items, titles, split, cat.genres, held_out_items(cat.n_items, 0), 4,
                              validate, s)
    assert [r["epoch"] for r in log] == [0, 1, 2, 3] and [r["valid"] for r in log] == [0.5, 0.2, 0.7, 0.6]
    for k in best:  # the kept heads are those validated after epoch 2
        np.testing.assert_array_equal(best[k], seen[2][k])
    for k in (*SHARED_KEYS[:2], *GENRE_KEYS):
        assert not np.array_equal(best[k], start[k])
    assert all(np.isfinite(r["loss"]) for r in log[1:])


def test_validations_within_an_epoch_can_keep_a_checkpoint_between_epochs(toy_catalogue):
    cat = toy_catalogue
    split, items, titles = _inputs(cat)
    seen, scores = [], iter([0.5, 0.2, 0.9, 0.6, 0.7])  # the deployed heads, then halfway and end of epochs 1, 2

    def validate(p):
        seen.append({k: v.copy() for k, v in p.items()})
        return next(scores)

    best, log = train_central(_heads(), items, titles, split, cat.genres, held_out_items(cat.n_items, 0), 4,
                              validate, CentralSettings(2, 4, 5, 0.05, 0, checks=2))
    assert [r["epoch"] for r in log] == [0, 0.5, 1.0, 1.5, 2.0]
    for k in best:  # kept: the end of epoch 1
        np.testing.assert_array_equal(best[k], seen[2][k])
    assert not all(np.array_equal(seen[1][k], seen[2][k]) for k in best)  # each half trains


def test_an_oracle_that_never_beats_the_deployed_heads_is_the_deployed_heads(toy_catalogue):
    cat = toy_catalogue
    split = make_split(cat, 0.3, seed=0)
    items = np.random.default_rng(3).normal(size=(cat.n_items, HIDDEN)).astype(np.float32)
    start = _heads(1)
    scores = iter([0.9, 0.1, 0.1])
    best, _ = train_central(start, items, items, split, cat.genres, held_out_items(cat.n_items, 0), 4,
                            lambda p: next(scores), CentralSettings(2, 4, 5, 0.05, 0))
    for k in start:
        np.testing.assert_array_equal(best[k], start[k])
