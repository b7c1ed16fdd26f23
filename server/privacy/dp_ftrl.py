"""DP-FTRL with tree aggregation (Kairouz et al. 2021, "Practical and Private (Deep) Learning without Sampling or
Shuffling"), client-level: the mechanism behind Gboard's production DP language models.

- **Sampling**: none assumed. Each round asks a uniform cohort of the available devices that have taken part in
  fewer than `max_participations` rounds (server/samplers/capped.py); who is asked may depend on anything (time of
  day, availability), only the cap matters to the guarantee.
- **Release**: round t's leaf is the sum of the cohort's updates, each clipped to `clip`. The server releases the
  running sum S_t = leaf_1 + ... + leaf_t with the noise of a binary tree over the rounds: every node of the tree
  (a dyadic block of rounds) draws Gaussian noise of std noise * clip, and S_t carries the sum of the noises of the
  at most log2(t) + 1 nodes that cover [1, t]. Its noise std thus grows like sqrt(log t), where noising every
  round's sum apart would make the running sum's grow like sqrt(t).
- **Model**: FTRL, model_t = initial + server_lr * noised S_t / cohort. The strategy applies it as a step from the
  last released model: (leaf_t + N_t - N_a) / cohort, where N_a is the noise of the running sum the model holds
  already, so the steps telescope to the FTRL model. Flower's FedAvgM applies `sim.server_lr` to the step, and with
  `sim.server_momentum` heavy-ball momentum on the steps (the paper's momentum variant): both post-processing.
- **Tree restart**: none; one tree spans the run, and a resumed run continues it.
- **Accounting**: accounting.py `TreeLedger`: one tree-aggregation event over the leaves so far.

A node's noise is drawn from a generator seeded by (`sim.seed`, the node), so nothing secret is written to the run
directory and a resumed run subtracts exactly the noise its model holds. The trade-off: whoever knows the seed and
sees the released models can subtract every node's noise and recover the exact sums, so the guarantee holds only
against those who do not know the seed. That is the testbed's reproducibility rule (DP-FedAvg's noise comes from
the same seed); a deployment would seed the tree from a key held in a secret store, never from its config.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from flwr.app import Message

from edgefleet.config import Config
from server.privacy.accounting import TreeLedger
from server.privacy.base import Accepted, PrivacyMechanism, Weights
from server.privacy.dp_fedavg import carry, clip_and_sum
from server.samplers.base import Sampler


def tree_nodes(t: int) -> list[tuple[int, int]]:
    """The nodes (level, index) whose blocks of leaves cover rounds [1, t] exactly, largest first; the node
    (level, index) covers rounds index * 2**level + 1 ... (index + 1) * 2**level."""
    nodes, start = [], 0
    for level in reversed(range(t.bit_length())):
        if t >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def _last(rounds: pd.DataFrame, column: str) -> int:
    done = rounds.get(column, pd.Series(dtype=float)).dropna()
    return int(done.iloc[-1]) if len(done) else 0


class DPFTRL(PrivacyMechanism):
    """Clip, add to the running sum, release it with the tree's noise; the model follows the noised running sum."""

    sampling = "capped"
    accountant = "RDP of tree aggregation without sampling (dp-accounting), participations capped"

    def __init__(self, sampler: Sampler, ledger: TreeLedger, clip: float, seed: int):
        super().__init__(sampler, clip)
        self.ledger, self.noise, self.cohort, self.seed = ledger, ledger.noise, sampler.cohort, seed
        self.applied = 0  # the leaf whose noised running sum the model holds (0: the initial model, no noise)

    @classmethod
    def from_config(cls, cfg: Config, sampler: Sampler) -> DPFTRL:
        return cls(sampler, TreeLedger.from_config(cfg), cfg.privacy.clip, cfg.sim.seed)

    @classmethod
    def sampler_options(cls, cfg: Config) -> dict:
        return {"max_participations": cfg.privacy.max_participations}

    def node_noise(self, level: int, index: int, shapes: list[tuple]) -> list[np.ndarray]:
        """The noise of one node of the tree: std noise * clip, the same every time it is asked for."""
        rng = np.random.default_rng([self.seed, 0xF7E1, level, index])
        return [rng.standard_normal(s) * (self.noise * self.clip) for s in shapes]

    def prefix_noise(self, t: int, shapes: list[tuple]) -> list[np.ndarray]:
        """The noise of the running sum of rounds 1..t: the sum of its covering nodes' noises."""
        total = [np.zeros(s) for s in shapes]
        for level, index in tree_nodes(t):
            total = [a + b for a, b in zip(total, self.node_noise(level, index, shapes))]
        return total

    def resume(self, rounds_done: int, rounds: pd.DataFrame) -> None:
        """The tree's leaves so far and the leaf the model holds, from the last committed round's row (a halted
        SecAgg+ round added no leaf)."""
        self.ledger.spend(_last(rounds, "tree_steps"))
        self.applied = _last(rounds, "tree_applied")

    def row(self) -> dict:
        return {**self.ledger.row(), "tree_applied": self.applied,
                "sampling_rate": self.cohort / len(self.sampler.availability)}  # not used by the accountant

    def release(self, total: list[np.ndarray] | None, shapes: list[tuple], within: int,
                contributed: int) -> tuple[list[np.ndarray], dict]:
        """A new leaf: the step from the model's running sum to the new noised one, over the cohort, and what the
        round row records of it. The step is applied only if some device contributed (`commit`)."""
        self.ledger.spend()
        t = self.ledger.steps
        leaf = total or [np.zeros(s) for s in shapes]
        now, held = self.prefix_noise(t, shapes), self.prefix_noise(self.applied, shapes)
        step = [(x + n - h) / self.cohort for x, n, h in zip(leaf, now, held)]
        info = {"clip_norm": self.clip, "contributed": contributed,
                # the std of the noise the released running sum (over the cohort) carries, per coordinate
                "noise_std": self.noise * self.clip * math.sqrt(len(tree_nodes(t))) / self.cohort,
                "unclipped_fraction": within / contributed if contributed else math.nan}
        return step, info

    def commit(self) -> None:
        """The model now holds the running sum released last."""
        self.applied = self.ledger.steps

    def aggregate(self, base: Weights, accepted: Accepted) -> tuple[list[Message], dict]:
        total, within = clip_and_sum(base, accepted, self.clip)
        step, info = self.release(total, [b.shape for b in base.values()], within, len(accepted))
        if not accepted:  # nothing to carry the step; the next applied step starts from the same running sum
            return [], {**info, **self.row()}
        self.commit()
        return carry(base, accepted, step), {**info, **self.row()}

    def aggregate_sum(self, base: Weights, mean: Weights, contributors: int,
                      unclipped: int) -> tuple[Weights | None, dict]:
        """SecAgg+: the devices clipped; the server adds the tree's noise to the secure sum."""
        total = [mean[k] * contributors for k in base] if contributors else None
        step, info = self.release(total, [b.shape for b in base.values()], unclipped, contributors)
        info["unclipped_fraction"] = math.nan  # with fixed clipping the devices do not say whether they clipped
        if not contributors:
            return None, {**info, **self.row()}
        self.commit()
        return {k: (b + s).astype(b.dtype) for (k, b), s in zip(base.items(), step)}, {**info, **self.row()}
