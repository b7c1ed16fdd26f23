"""The ServerApp under SecAgg+ (`privacy.secagg`), composed with client-level DP when `privacy.noise` is set.

Flower's SecAgg+ works in simulation only on its legacy stack (docs/privacy.md, SecAgg+): a `LegacyContext`, a
legacy strategy and `DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`, with `secaggplus_mod` on the devices
(client/secure.py). This module is that stack and nothing else; the round's bookkeeping is the plain app's
(server/app.py `Session`, server/strategy.py helpers, server/privacy/, server/recorder.py).

What the server learns in a round is the sum of the participating devices' clipped, quantized updates, and which
devices took part. Devices that leave mid-round are SecAgg+ dropouts, recovered from their neighbours' key shares.
With DP the server adds the Gaussian noise to that sum (central DP on a secure sum: Flower's DP + SecAgg pattern,
with clipping on the devices by Flower's clipping function).
"""

from __future__ import annotations

import json
import math
import time
from logging import WARNING

import numpy as np
import pandas as pd
from flwr.app import Array, ArrayRecord, Context
from flwr.common import Code, FitIns, FitRes, Parameters, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.logger import log
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat import LegacyContext
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT

from edgefleet.protocol import ADAPTIVE, DEADLINE, FIELD_BYTES, LEFT
from server.app import Session, device_job, open_session
from server.optimizers import legacy_strategy, restore, settings
from server.placement import NO_SLOT, assign
from server.strategy import device_config, in_dtype_of, left_out

app = ServerApp()


def field_bits(cohort_slots: int, bits: int) -> int:
    """SecAgg+'s modulus: the sum of every device's `bits`-bit coordinates (and weights) must not wrap."""
    return bits + math.ceil(math.log2(cohort_slots + 1))


def field_bytes(cohort_slots: int, bits: int) -> int:
    width = field_bits(cohort_slots, bits)
    if width > 32:
        raise ValueError(f"privacy.secagg_bits={bits} with {cohort_slots} devices needs a {width}-bit field; "
                         f"SecAgg+ allows 32")
    return 2 if width <= 16 else 4


class _SecureFleet:
    """A legacy strategy (the server's optimizer, the class after this one in a subclass's bases) whose round is:
    assign devices to nodes, let SecAgg+ sum their clipped updates, release, step."""

    def __init__(self, session: Session, workflow: SecAggPlusWorkflow, slots: int):
        cfg = session.cfg
        self.session, self.workflow, self.slots = session, workflow, slots
        self.keys = list(session.task.device.shared_keys)
        initial = ndarrays_to_parameters([session.weights[k] for k in self.keys])
        super().__init__(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=slots, min_evaluate_clients=0,
                         min_available_clients=slots, accept_failures=True, initial_parameters=initial,
                         **settings(cfg.sim))
        if session.done:
            restore(self, session.results.optimizer_state(session.done), by_name=False)
        # With adaptive clipping the devices say whether they clipped: only they see their update.
        self.job = {**device_job(cfg), DEADLINE: cfg.sim.deadline_s * 1e3,
                    ADAPTIVE: int(session.mechanism.counts_clipped),
                    FIELD_BYTES: field_bytes(slots, cfg.privacy.secagg_bits)}
        self._sent: dict[int, int] = {}
        self._unsent: list[tuple[int, str]] = []
        self._base: dict[str, np.ndarray] = {}
        self._started, self._pending = 0.0, False

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.initial_parameters

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        s = self.session
        r = server_round + s.done
        client_manager.wait_for(self.slots, timeout=120)
        proxies = {p.node_id: p for p in client_manager.all().values()}
        devices, self._available = s.mechanism.sampler.sample(r)
        self._sent, unsent = assign(list(proxies)[: self.slots], devices)
        self._unsent = [(d, NO_SLOT) for d in unsent]
        self._base = dict(zip(self.keys, parameters_to_ndarrays(parameters)))
        clip = s.mechanism.clip
        # Every coordinate of an update clipped to this L2 norm lies within [-clip, clip]: SecAgg+'s range.
        self.workflow.clipping_range = clip
        self._started, self._pending = time.perf_counter(), True
        return [(proxies[node], FitIns(parameters, {**device_config(s.population, device, r, self.job),
                                                    KEY_CLIPPING_NORM: float(clip)}))
                for node, device in self._sent.items()]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list) -> tuple[Parameters | None, dict]:
        s = self.session
        r = server_round + s.done
        self._pending = False
        rows = []
        for proxy, res in results:
            rows.append({**{k: v for k, v in res.metrics.items() if k != KEY_NORM_BIT}, "round": r,
                         "device": self._sent[proxy.node_id]})
        for failure in failures:  # (Flower's SecAgg+ workflow lists each failed reply twice)
            reason = str(getattr(failure.args[0], "reason", failure)) if failure.args else str(failure)
            if LEFT in reason:  # a device that left the round, with its telemetry
                info = json.loads(reason[reason.index(LEFT) + len(LEFT):].split("'>")[0])
                if info["device"] not in {row["device"] for row in rows}:
                    rows.append({**info, "round": r})
        reported = {row.get("device") for row in rows}
        rows += [{"round": r, "device": d, "outcome": "dropout", "error": "no reply in the round"}
                 for d in self._sent.values() if d not in reported]
        rows += left_out(r, self._unsent)
        k = sum(res.num_examples for _, res in results)  # devices with an update in the sum (weight 1 each)
        secure_s = time.perf_counter() - self._started
        extra = {"secagg_contributors": k, "secagg_s": secure_s, "field_bytes": self.job[FIELD_BYTES]}
        # SecAgg+ hands every result the same unmasked average of the k clipped updates
        mean = dict(zip(self.keys, parameters_to_ndarrays(results[0][1].parameters))) if k else {}
        within = k - sum(int(bool(res.metrics.get(KEY_NORM_BIT, False))) for _, res in results)
        new, released = s.mechanism.aggregate_sum(self._base, mean, k, within)
        extra.update(released)
        s.recorder.on_devices(r, pd.DataFrame(rows), self._available, extra)
        if new is None:
            return None, {}
        carrier = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(list(new.values())), 1, {})
        # The optimizer's strategy over the one released model: its step from what was released (its round numbered
        # across resumes).
        stepped, metrics = super().aggregate_fit(r, [(results[0][0], carrier)], [])
        if stepped is None:
            return None, metrics
        weights = [in_dtype_of(self._base, k, a) for k, a in zip(self.keys, parameters_to_ndarrays(stepped))]
        if hasattr(self, "current_weights"):  # the adaptive optimizers step from the model the devices got
            self.current_weights = weights
        return ndarrays_to_parameters(weights), metrics

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict] | None:
        if server_round > 0 and self._pending:  # SecAgg+ halted (too few devices left to unmask): nothing released
            r = server_round + self.session.done
            self._pending = False
            rows = [{"round": r, "device": d, "outcome": "error", "error": "secure aggregation halted"}
                    for d in self._sent.values()] + left_out(r, self._unsent)
            self.session.recorder.on_devices(r, pd.DataFrame(rows), self._available,
                                             {"secagg_contributors": 0, **self.session.mechanism.row()})
        arrays = ArrayRecord({k: Array(v) for k, v in zip(self.keys, parameters_to_ndarrays(parameters))})
        metrics = dict(self.session.recorder.evaluate(server_round, arrays))
        return float(-metrics.get(self.session.task.headline.key, 0.0)), metrics


class SecAggPlus(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow; a round in which no device had an update to sum halts instead of dividing by 0."""

    def unmask_stage(self, grid: Grid, context: LegacyContext, state) -> bool:
        try:
            return super().unmask_stage(grid, context, state)
        except ZeroDivisionError:
            log(WARNING, "no device had an update to sum this round")
            return False


@app.main()
def main(grid: Grid, context: Context) -> None:
    session = open_session(context)
    if session is None:
        return
    p = session.cfg.privacy
    slots = session.mechanism.slots
    workflow = SecAggPlus(
        num_shares=p.secagg_shares, reconstruction_threshold=p.secagg_threshold, max_weight=1.0,
        clipping_range=p.clip, quantization_range=2 ** p.secagg_bits,
        modulus_range=2 ** field_bits(slots, p.secagg_bits), timeout=p.secagg_timeout_s)
    base = legacy_strategy(session.cfg.sim.server_optimizer)
    strategy = type(f"SecureFleet{base.__name__}", (_SecureFleet, base), {})(session, workflow, slots)
    session.recorder.strategy = strategy
    legacy = LegacyContext(context=context, config=ServerConfig(
        num_rounds=session.remaining, round_timeout=session.cfg.sim.round_timeout_s), strategy=strategy)
    DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
    session.results.finish({"rounds": session.results.completed_rounds()})
