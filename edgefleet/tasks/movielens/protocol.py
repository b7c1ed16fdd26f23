"""The evaluation protocol: rank each user's held-out item among sampled negatives and among all items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from edgefleet.tasks.movielens.metrics import expected_metrics, rank_counts, summarize
from edgefleet.tasks.movielens.split import Split, Stage, sample_negatives


class Scorer(Protocol):
    """Anything that scores every catalogue item for users given only their histories."""

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(histories), n_items) scores; higher is better."""
        ...


@dataclass(frozen=True)
class EvalSet:
    """Fixed users, their histories, held-out targets and sampled negatives for one stage."""

    stage: Stage
    users: np.ndarray
    histories: tuple[np.ndarray, ...]
    targets: np.ndarray
    negatives: np.ndarray
    k: int
    seed: int

    @classmethod
    def build(cls, split: Split, users: np.ndarray, stage: Stage, num_negatives: int, seed: int, k: int) -> "EvalSet":
        users = np.asarray(users, dtype=np.int64)
        return cls(
            stage=stage,
            users=users,
            histories=tuple(split.history(int(u), stage) for u in users),
            targets=np.array([split.target(int(u), stage) for u in users], dtype=np.int64),
            negatives=sample_negatives(split, users, stage, num_negatives, seed),
            k=k,
            seed=seed,
        )

    def describe(self) -> dict:
        return {"stage": self.stage, "users": int(len(self.users)), "negatives": int(self.negatives.shape[1]),
                "k": self.k, "seed": self.seed}


def evaluate(scorer: Scorer, data: EvalSet, batch_users: int = 256) -> dict:
    """Sampled-negative metrics at the top level, full-ranking metrics under `full`."""
    sampled, full = per_row(scorer, data, batch_users)
    return {**summarize(sampled), "full": summarize(full), "users": int(len(data.users))}


def per_row(scorer: Scorer, data: EvalSet, batch_users: int = 256) -> tuple[dict, dict]:
    """Each user's sampled-negative and full-ranking metrics ({name: one value per user}; their means are
    `evaluate`'s figures): what paired comparisons of two models on the same users resample."""
    sampled: list[dict[str, np.ndarray]] = []
    full: list[dict[str, np.ndarray]] = []
    for start in range(0, len(data.users), batch_users):
        sl = slice(start, start + batch_users)
        histories = data.histories[sl]
        scores = np.asarray(scorer.score(histories), dtype=np.float64)
        rows = np.arange(len(histories))
        targets = data.targets[sl]
        pos = scores[rows, targets]
        g, e = rank_counts(pos, np.take_along_axis(scores, data.negatives[sl], axis=1))
        sampled.append(expected_metrics(g, e, data.k))
        # Full ranking: every item except the user's own history and the target itself.
        valid = np.ones_like(scores, dtype=bool)
        for r, hist in enumerate(histories):
            valid[r, hist] = False
        valid[rows, targets] = False
        g, e = rank_counts(pos, scores, valid)
        full.append(expected_metrics(g, e, data.k))

    def join(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    return join(sampled), join(full)
