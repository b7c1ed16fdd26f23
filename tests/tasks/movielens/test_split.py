"""Leave-last-out split, ownership and negative sampling on a hand-made catalogue."""

import numpy as np
import pytest

from edgefleet.errors import DataError
from edgefleet.tasks.movielens.split import make_split, sample_negatives


def test_leave_last_out_is_chronological(toy_catalogue):
    # Shuffle the rows: the split must follow timestamps, not file order.
    shuffled = toy_catalogue.interactions.sample(frac=1.0, random_state=3)
    cat = toy_catalogue.__class__(**{**toy_catalogue.__dict__, "interactions": shuffled})
    split = make_split(cat, server_fraction=0.34, seed=0)
    for u in range(6):
        assert split.train[u].tolist() == list(range(u, u + 4))
        assert split.valid[u] == u + 4
        assert split.test[u] == u + 5
        assert split.history(u, "test").tolist() == list(range(u, u + 5))
        assert split.history(u, "valid").tolist() == list(range(u, u + 4))


def test_ownership_is_a_seeded_partition(toy_catalogue):
    a = make_split(toy_catalogue, server_fraction=0.34, seed=7)
    b = make_split(toy_catalogue, server_fraction=0.34, seed=7)
    assert len(a.server_users) == 2
    assert sorted(np.concatenate([a.server_users, a.device_users]).tolist()) == list(range(6))
    assert not set(a.server_users) & set(a.device_users)
    assert a.server_users.tolist() == b.server_users.tolist()


def test_negatives_are_unseen_distinct_and_reproducible(toy_catalogue):
    split = make_split(toy_catalogue, server_fraction=0.5, seed=0)
    users = np.arange(6)
    neg = sample_negatives(split, users, "test", 5, seed=1)
    for u in users:
        assert len(set(neg[u])) == 5
        assert not set(neg[u]) & set(split.seen(u).tolist())
    # A subset of users sees exactly the same negatives.
    assert (sample_negatives(split, users[3:], "test", 5, seed=1) == neg[3:]).all()
    assert not (sample_negatives(split, users, "valid", 5, seed=1) == neg).all()


def test_too_few_unseen_items_is_a_clear_error(toy_catalogue):
    split = make_split(toy_catalogue, server_fraction=0.5, seed=0)
    with pytest.raises(DataError, match="unseen items"):
        sample_negatives(split, np.arange(6), "test", 7, seed=0)


def test_users_too_short_for_the_protocol(toy_catalogue):
    with pytest.raises(DataError, match="fewer than"):
        make_split(toy_catalogue, server_fraction=0.5, seed=0, min_train_items=5)
