"""Paired intervals for the federation bench's gains and shares of gain.

Every row of the bench scores the same test rows (the same users, items and negatives), so a gain over the start is
a paired difference: most rows score alike under both models and only the rows that change carry noise, which makes
it far tighter than two independent proportions would say. A share (run - start) / (reference - start) is a ratio of
two such gains on the same rows; its interval is a percentile bootstrap over the rows (scipy.stats.bootstrap,
paired), not a delta-method formula, which fails just where it matters: when the reference's own gain is near zero
and the ratio means nothing. The report then says so instead of printing the ratio as a finding.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap

LEVEL = 0.9
DRAWS = 2000


def _gain(start: np.ndarray, value: np.ndarray, axis: int = -1) -> np.ndarray:
    return value.mean(axis=axis) - start.mean(axis=axis)


def _share(start: np.ndarray, value: np.ndarray, reference: np.ndarray, axis: int = -1) -> np.ndarray:
    """The share in each resample; where the resampled reference gained nothing it is unbounded, +inf or -inf by
    the sign of value's gain (0/0 reads as +inf: no evidence against reaching the reference), so that the
    percentiles stay defined."""
    gain, ref = _gain(start, value, axis), _gain(start, reference, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ref > 0, gain / ref, np.where(gain >= 0, np.inf, -np.inf))


def _interval(statistic, *rows: np.ndarray, seed: int) -> list[float]:
    res = bootstrap(rows, statistic, paired=True, vectorized=True, n_resamples=DRAWS, confidence_level=LEVEL,
                    method="percentile", rng=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def gain_interval(start: np.ndarray, value: np.ndarray, seed: int = 0) -> list[float]:
    """The `LEVEL` interval of value's gain over the start on the same rows (each a per-row metric)."""
    return _interval(_gain, np.asarray(start, float), np.asarray(value, float), seed=seed)


def share_interval(start: np.ndarray, value: np.ndarray, reference: np.ndarray, seed: int = 0) -> dict:
    """The share of the reference's gain that `value` reaches, with `LEVEL` intervals of the share and of both
    gains. `measurable` is False when the reference's gain interval reaches zero: the share is then a ratio of
    noise, and its interval (null) is not reported."""
    start, value, reference = (np.asarray(a, float) for a in (start, value, reference))
    reference_gain = gain_interval(start, reference, seed)
    measurable = reference_gain[0] > 0
    return {"level": LEVEL, "gain": gain_interval(start, value, seed), "reference_gain": reference_gain,
            "measurable": measurable,
            "share": _interval(_share, start, value, reference, seed=seed) if measurable else None}
