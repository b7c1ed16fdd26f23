"""Device data: each device holds a chronological part of one device-owned user's train items."""

import numpy as np

from edgefleet.tasks.movielens.shards import assign_devices, devices_per_user, windows
from edgefleet.tasks.movielens.split import make_split


def test_devices_per_user_gives_everyone_one_and_the_rest_by_length():
    counts = devices_per_user(np.array([10.0, 30.0, 60.0]), 13)
    assert counts.sum() == 13 and (counts >= 1).all()
    assert list(counts) == [2, 4, 7]  # 10 extra devices: quotas 1, 3, 6 after each user's first
    assert list(devices_per_user(np.array([5.0, 5.0]), 2)) == [1, 1]


def test_windows_cover_the_history_evenly():
    assert windows(10, 1, 4) == [(0, 10)]
    assert windows(10, 2, 4) == [(0, 5), (5, 10)]
    assert windows(6, 3, 4) == [(0, 4), (1, 5), (2, 6)]  # too short to fill 3 devices: windows overlap
    assert windows(3, 2, 4) == [(0, 3), (0, 3)]


def test_assignment_more_devices_than_users(toy_catalogue):
    split = make_split(toy_catalogue, 0.2, seed=0)
    fleet = assign_devices(split, 12, seed=1, num_negatives=5, min_items=2)
    assert fleet.n_devices == 12
    assert set(fleet.device_user) == set(split.device_users)
    for d in range(12):
        user = int(fleet.device_user[d])
        items = fleet.device_items(d)
        train = split.train[user]
        assert len(items) >= 2
        start = int(np.flatnonzero(train == items[0])[0])
        assert list(train[start:start + len(items)]) == list(items)  # a contiguous chronological window
        row = fleet.user_row(user)
        assert fleet.test[row] == split.test[user] and fleet.valid[row] == split.valid[user]
        assert not set(fleet.negatives[row]) & set(split.seen(user))


def test_assignment_fewer_devices_than_users(toy_catalogue):
    split = make_split(toy_catalogue, 0.2, seed=0)
    fleet = assign_devices(split, 3, seed=1, num_negatives=5)
    assert len(set(fleet.device_user)) == 3
    for d in range(3):
        assert list(fleet.device_items(d)) == list(split.train[int(fleet.device_user[d])])


def test_fleet_data_round_trips(tmp_path, toy_catalogue):
    fleet = assign_devices(make_split(toy_catalogue, 0.2, seed=0), 7, seed=0, num_negatives=5, min_items=2)
    fleet.save(tmp_path / "d.npz")
    back = type(fleet).load(tmp_path / "d.npz")
    for name in fleet.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(back, name), getattr(fleet, name))


def test_a_devices_own_shard_gives_it_what_the_whole_fleet_does(toy_catalogue):
    """`deploy --own-data`: a device's shard (FleetData.of_device) holds its data and no other device's, and its
    local data, drawn with the same generator, is what the device gets from the whole fleet."""
    from dataclasses import replace

    from edgefleet.tasks.movielens.device import RecommendationDevice

    split = make_split(toy_catalogue, 0.2, seed=0)
    fleet = replace(assign_devices(split, 12, seed=1, num_negatives=5, min_items=2),
                    genres=np.eye(toy_catalogue.n_items, 3, dtype=bool), genre_held_out=np.array([0, 1]))
    device = RecommendationDevice()
    for d in range(12):
        one = fleet.of_device(d)
        assert one.n_devices == 1 and one.users.tolist() == [fleet.device_user[d]]
        assert one.device_items(0).tolist() == fleet.device_items(d).tolist()
        whole = device.local_data(fleet, d, 0, 4, np.random.default_rng(d))
        own = device.local_data(one, 0, 0, 4, np.random.default_rng(d))
        assert all(np.array_equal(getattr(whole, f), getattr(own, f)) for f in ("texts", "genres"))
        assert (whole.n_eval, whole.n_hist, whole.n_neg) == (own.n_eval, own.n_hist, own.n_neg)
