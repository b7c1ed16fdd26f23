"""SecAgg+ as the secure runs use it: Flower's workflow and `secaggplus_mod` with EdgeFleet's mods around them
(client/secure.py: dropouts, deltas, clipping, the field's width), on an in-process grid that delivers each
message to its node's ClientApp as a copy, as a transport would."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Context, RecordDict
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import FitIns, bytes_to_ndarray, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.server import ServerConfig
from flwr.server.compat import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from flwr.supercore.task_identity import TaskIdentity

from client.secure import DeviceLeft, clip_mod, delta_mod, device_mod
from edgefleet.protocol import FIELD_BYTES, LEFT
from server.secure import SecAggPlus, field_bits, field_bytes

SHAPES = [(60,), (3, 4)]


class ToyDevice(NumPyClient):
    """Adds a fixed update to the model it receives; some devices leave the round mid-way."""

    def __init__(self, update: list[np.ndarray] | None):
        self.update = update

    def fit(self, parameters, config):
        if self.update is None:
            raise DeviceLeft('{"device": -1, "outcome": "dropout"}')
        return [p + u for p, u in zip(parameters, self.update)], 1, {}


class LocalGrid:
    def __init__(self, updates: dict[int, list[np.ndarray] | None]):
        self.run = SimpleNamespace(run_id=1)
        self.nodes = {n: (ClientApp(client_fn=lambda context: ToyDevice(updates[context.node_id]).to_client(),
                                    mods=[device_mod, secaggplus_mod, delta_mod, clip_mod]),
                          Context(run_id=1, node_id=n, node_config={}, state=RecordDict(), run_config={}))
                      for n in updates}
        self.masked: list[np.ndarray] = []

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            app, context = self.nodes[msg.metadata.dst_node_id]
            reply = app(copy.deepcopy(msg), context)
            if not reply.has_error() and Key.MASKED_PARAMETERS in reply.content.config_records.get(
                    RECORD_KEY_CONFIGS, {}):
                self.masked += [bytes_to_ndarray(b) for b in reply.content[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]]
            replies.append(reply)
        return replies


class Capture(FedAvg):
    def __init__(self, n: int, clip: float, bits: int):
        super().__init__(fraction_evaluate=0.0, min_evaluate_clients=0, min_fit_clients=n, min_available_clients=n)
        self.n, self.config = n, {KEY_CLIPPING_NORM: clip, FIELD_BYTES: field_bytes(n, bits)}

    def initialize_parameters(self, client_manager):
        return ndarrays_to_parameters([np.zeros(s, np.float32) for s in SHAPES])

    def configure_fit(self, server_round, parameters, client_manager):
        client_manager.wait_for(self.n, 10)
        return [(p, FitIns(parameters, dict(self.config))) for p in client_manager.all().values()]

    def aggregate_fit(self, server_round, results, failures):
        self.mean = parameters_to_ndarrays(results[0][1].parameters)
        self.contributors, self.failures = len(results), failures
        return None, {}


def clipped(update, clip):
    norm = np.sqrt(sum(float((u ** 2).sum()) for u in update))
    return [u * min(1.0, clip / norm) for u in update]


@pytest.fixture(autouse=True)
def task_identity():
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def secure_round(n: int, dropped: set[int], clip: float, bits: int):
    rng = np.random.default_rng(0)
    updates = {i: [rng.normal(0, 0.5, s).astype(np.float32) for s in SHAPES] for i in range(1, n + 1)}
    grid = LocalGrid({i: (None if i in dropped else u) for i, u in updates.items()})
    strategy = Capture(n, clip, bits)
    workflow = SecAggPlus(num_shares=0.5, reconstruction_threshold=0.5, max_weight=1.0, clipping_range=clip,
                          quantization_range=2 ** bits, modulus_range=2 ** field_bits(n, bits))
    context = LegacyContext(Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                            config=ServerConfig(num_rounds=1), strategy=strategy)
    DefaultWorkflow(fit_workflow=workflow)(grid, context)
    plain = [np.mean([clipped(updates[i], clip)[j] for i in updates if i not in dropped], axis=0)
             for j in range(len(SHAPES))]
    everyone = [np.mean([clipped(updates[i], clip)[j] for i in updates], axis=0) for j in range(len(SHAPES))]
    return strategy, grid, plain, everyone


def test_secure_sum_survives_a_tenth_of_the_cohort_dropping_mid_round():
    clip, bits = 1.0, 8
    strategy, grid, plain, everyone = secure_round(20, dropped={3, 11}, clip=clip, bits=bits)
    assert strategy.contributors == 18
    left = [str(f.args[0].reason) for f in strategy.failures]
    assert left and all(r.startswith(LEFT) for r in left)
    step = 2 * clip / 2 ** bits  # one quantization level; stochastic rounding errs by less than that per device
    for got, want in zip(strategy.mean, plain):
        assert np.abs(got - want).max() < step
    # the comparison can fail: the average over everyone (dropouts included) is further off than that
    assert max(np.abs(g - e).max() for g, e in zip(strategy.mean, everyone)) > step
    # the masked vectors went up in the field's width: 2 bytes for a 13-bit field
    assert field_bits(20, bits) == 13 and grid.masked and all(a.dtype == np.uint16 for a in grid.masked)


def test_field_too_wide_for_secagg_is_refused():
    with pytest.raises(ValueError, match="32"):
        field_bytes(150, 28)
    assert field_bytes(150, 8) == 2 and field_bytes(150, 16) == 4
