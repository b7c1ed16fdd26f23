"""The seeded, stratified carve: hand-counted part sizes, disjoint parts, a training row left for every class."""

import numpy as np

from edgefleet.tasks.textclf.splits import stratified_carve


def per_class(keys, index):
    return {k: sum(keys[i] == k for i in index) for k in sorted(set(keys))}


def test_floors_then_the_largest_remainders():
    keys = ["a"] * 6 + ["b"] * 4
    (part,) = stratified_carve(keys, [0.2], seed=0)
    # want round(0.2 * 10) = 2; shares a 1.2, b 0.8: floors 1 + 0, the missing row goes to b (remainder 0.8)
    assert per_class(keys, part) == {"a": 1, "b": 1}


def test_two_parts_are_disjoint_and_each_class_keeps_a_training_row():
    keys = ["a"] * 10 + ["b"] * 7 + ["c"] * 3
    test, valid = stratified_carve(keys, [0.1, 0.1], seed=3)
    # each part: want 2; shares a 1.0, b 0.7, c 0.3 -> a 1, then b by the larger remainder
    assert per_class(keys, test) == per_class(keys, valid) == {"a": 1, "b": 1, "c": 0}
    assert not set(test) & set(valid)
    (all_but_one,) = stratified_carve(["a", "a", "b"], [0.9], seed=0)
    assert per_class(["a", "a", "b"], all_but_one) == {"a": 1, "b": 0}
    (nothing,) = stratified_carve(["a", "b"], [0.5], seed=0)
    assert nothing.tolist() == []


def test_the_seed_picks_the_rows():
    keys = ["a", "b"] * 50
    first, again, other = (stratified_carve(keys, [0.2], seed=s)[0] for s in (1, 1, 2))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert per_class(keys, first) == {"a": 10, "b": 10} and list(first) == sorted(first)
