"""Held-out rows carved from the training rows when the user gives no validation or test set: seeded, stratified by
label, and never a class's last training row, so every held-out label still occurs in training."""

from __future__ import annotations

import numpy as np


def stratified_carve(keys: list[str], fractions: list[float], seed: int) -> list[np.ndarray]:
    """For each fraction, the sorted indices of one held-out part, disjoint from the others.

    A part holds round(fraction * len(keys)) rows when the classes can spare them: each class gives the floor of its
    share, and the rows still missing go to the classes with the largest remainders (ties: class order). Each class
    keeps at least one row for training, so a part of a tiny data set can be smaller, or empty.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(keys)
    classes = sorted(set(keys))
    shuffled = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    taken = dict.fromkeys(classes, 0)
    parts = []
    for fraction in fractions:
        share = {c: fraction * len(shuffled[c]) for c in classes}
        spare = {c: len(shuffled[c]) - 1 - taken[c] for c in classes}
        count = {c: min(int(share[c]), spare[c]) for c in classes}
        missing = round(fraction * len(keys)) - sum(count.values())
        for c in sorted(classes, key=lambda c: -(share[c] - int(share[c]))):  # stable: ties keep class order
            if missing <= 0:
                break
            if count[c] < spare[c]:
                count[c] += 1
                missing -= 1
        parts.append(np.sort(np.concatenate([shuffled[c][taken[c]:taken[c] + count[c]] for c in classes]
                                            + [np.zeros(0, dtype=np.int64)])))
        for c in classes:
            taken[c] += count[c]
    return parts
