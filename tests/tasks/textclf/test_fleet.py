"""How training rows are dealt to devices: every row at most once, the test rows never, the skew alpha asks for."""

import numpy as np
import pytest

from edgefleet.errors import ConfigError
from edgefleet.tasks.textclf.fleet import partition

Y = np.repeat(np.arange(5), 200)  # 1,000 rows, 5 balanced classes


@pytest.mark.parametrize("how", ["dirichlet", "shard", "iid"])
def test_every_row_is_dealt_once_and_the_split_is_reproducible(how):
    parts = partition(Y, None, 40, how, alpha=0.5, seed=3)
    dealt = np.concatenate(parts)
    assert len(parts) == 40 and min(len(p) for p in parts) >= 2
    assert len(dealt) == len(set(dealt.tolist())) and set(dealt.tolist()) <= set(range(len(Y)))
    assert all(np.array_equal(a, b) for a, b in zip(parts, partition(Y, None, 40, how, alpha=0.5, seed=3)))
    assert len(dealt) == len(Y)


def classes_per_device(parts):
    return np.mean([len(np.unique(Y[p])) for p in parts])


def test_small_alpha_gives_each_device_fewer_classes():
    skewed = classes_per_device(partition(Y, None, 40, "dirichlet", alpha=0.1, seed=0))
    mixed = classes_per_device(partition(Y, None, 40, "dirichlet", alpha=100.0, seed=0))
    assert skewed < 3.0 < 4.5 < mixed
    assert classes_per_device(partition(Y, None, 40, "shard", alpha=0.5, seed=0)) <= 2.0


def test_users_own_their_rows():
    users = np.array([f"u{i % 7}" for i in range(len(Y))])
    few = partition(Y, users, 5, "user", alpha=0.5, seed=0)
    assert all(len(set(users[p])) == 1 for p in few) and len({users[p][0] for p in few}) == 5
    many = partition(Y, users, 20, "user", alpha=0.5, seed=0)
    assert len(many) == 20 and all(len(set(users[p])) == 1 for p in many)
    assert len(np.concatenate(many)) == len(Y)


def test_impossible_partitions_are_one_line_errors():
    with pytest.raises(ConfigError, match="need 2002 training rows"):
        partition(Y, None, 1001, "iid", alpha=0.5, seed=0)
    with pytest.raises(ConfigError, match="needs a user"):
        partition(Y, None, 10, "user", alpha=0.5, seed=0)


def test_a_devices_own_shard_holds_its_rows_and_texts_only():
    """`deploy --own-data`: the shard renumbers the device's rows from 0 and carries their texts; the device's local
    data reads the same texts and classes from it as from the whole fleet."""
    from edgefleet.tasks.textclf.device import ClassifierDevice
    from edgefleet.tasks.textclf.fleet import TextFleet

    y = np.repeat(np.arange(4), 10)
    parts = partition(y, None, 5, "dirichlet", 0.5, seed=0)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    fleet = TextFleet(offsets=offsets, rows=np.concatenate(parts), train_y=y, test_rows=np.arange(40, 44),
                      test_y=np.arange(4), n_classes=4)
    texts = [f"text {i}" for i in range(44)]
    device = ClassifierDevice()
    for d in range(5):
        one, own_texts = fleet.of_device(d, texts)
        assert one.n_devices == 1 and len(one.test_rows) == 0 and len(own_texts) == len(parts[d])
        whole = device.local_data(fleet, d, len(texts), 0, np.random.default_rng(0))
        mine = device.local_data(one, 0, len(own_texts), 0, np.random.default_rng(0))
        assert [texts[i] for i in whole.texts] == [own_texts[i] for i in mine.texts]
        assert whole.y.tolist() == mine.y.tolist() and whole.n_train == mine.n_train
