"""The ClientApp under SecAgg+ (`privacy.secagg`): the same device round (client/device.py), sent so that the server
learns only the sum of the cohort's clipped updates.

Flower's SecAgg+ runs only on its legacy stack (docs/privacy.md, SecAgg+), so this app is a `NumPyClient` behind
Flower's mods, outermost first:

- `device_mod` (here): a device that leaves the round (dropped out, out of memory, past the deadline, failed)
  answers with an error instead of a masked vector, which is what SecAgg+ treats as a dropout and recovers from with
  the key shares of its neighbours. The error carries the device's telemetry for the testbed's records. A device
  that stays but has nothing to send (inference only) contributes a zero update with weight 0. The mod also packs
  the masked vector into the field's width: SecAgg+ computes modulo `2**field_bits` but sends 8-byte integers; the
  smallest unsigned type that holds the field sends the same numbers (the server's sums wrap modulo a multiple of
  the field, so nothing changes there).
- `secaggplus_mod` (Flower): masks the vector; quantizes each coordinate into `2**secagg_bits` levels.
- `delta_mod` (here): sends the clipped change against the round's model rather than the model, so that every
  coordinate lies within the clipping norm: SecAgg+'s quantization range is then the norm, not the weights' range.
- `clip_mod` (here): clips the update to the norm the server sent, with Flower's clipping functions (those of
  `fixedclipping_mod` and `adaptiveclipping_mod`, whose mods divide by the norm of a zero update), and reports
  whether it clipped for adaptive clipping.

The device's telemetry (outcome, latency, memory) travels in the clear beside the masked vector; it is the
testbed's instrumentation, not part of what SecAgg+ or DP protect.
"""

from __future__ import annotations

import json

import numpy as np
from flwr.app import Context, Error, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import bytes_to_ndarray, ndarray_to_bytes, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT, compute_adaptive_clip_model_update
from threadpoolctl import threadpool_limits

from client.audit import audit_mod
from client.device import DeviceJob, DeviceReport, run_device
from client.worker import worker
from compression.runtime.update_codec import decode_update
from edgefleet.protocol import ADAPTIVE, DEADLINE, FIELD_BYTES, LEFT


class DeviceLeft(Exception):
    """The device takes no part in this round's sum; its telemetry goes with the error reply."""


def telemetry(report: DeviceReport, device: int) -> dict:
    out = {k: v for k, v in report.metrics().items() if isinstance(v, (int, float, str))}
    out["device"] = device
    return out


class Device(NumPyClient):
    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
        job = DeviceJob.from_config(config)
        try:
            w = worker(self.run_dir)
            keys = w.task.device.shared_keys  # the order the server sends and sums them in
            with threadpool_limits(limits=1):
                report = run_device(w, job, dict(zip(keys, parameters)))
        except Exception as exc:  # a device that raises is an outcome of the round
            report = DeviceReport("error", error=f"{type(exc).__name__}: {exc}"[:500])
        new = None
        if report.update is not None:  # what actually goes up: one field element per coordinate, plus the weight
            # Whole weights: the secure sum adds every coordinate of every device (no table goes as some rows).
            new = decode_update(report.update, dict(zip(keys, parameters)))
            report.bytes_up = int(config[FIELD_BYTES]) * (1 + sum(v.size for v in new.values()))
            report.clock(job)
        if report.outcome == "ok" and report.virtual_ms > float(config[DEADLINE]):
            report.outcome = "straggler"  # the server's SecAgg+ round does not wait for it
        if report.outcome != "ok":
            raise DeviceLeft(json.dumps(telemetry(report, job.device)))
        if report.update is None:  # stays in the secure sum with nothing in it
            return parameters, 0, telemetry(report, job.device)
        # DP-FedAvg weighs devices uniformly (server/privacy/dp_fedavg.py): weight 1 each.
        return [new[k] for k in keys], 1, telemetry(report, job.device)


def device_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    try:
        out = call_next(msg, ctxt)
    except DeviceLeft as left:
        return Message(Error(code=0, reason=LEFT + str(left)), reply_to=msg)
    configs = out.content.config_records.get(RECORD_KEY_CONFIGS) if not out.has_error() else None
    if configs is not None and Key.MASKED_PARAMETERS in configs:
        width = int(compat.recorddict_to_fitins(msg.content, keep_input=True).config[FIELD_BYTES])
        dtype = {2: np.uint16, 4: np.uint32}[width]
        configs[Key.MASKED_PARAMETERS] = [ndarray_to_bytes(bytes_to_ndarray(b).astype(dtype))
                                          for b in configs[Key.MASKED_PARAMETERS]]
    return out


def delta_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    received = parameters_to_ndarrays(compat.recorddict_to_fitins(msg.content, keep_input=True).parameters)
    out = call_next(msg, ctxt)
    if out.has_error():
        return out
    res = compat.recorddict_to_fitres(out.content, keep_input=True)
    res.parameters = ndarrays_to_parameters([p - r for p, r in zip(parameters_to_ndarrays(res.parameters), received)])
    out.content = compat.fitres_to_recorddict(res, keep_input=True)
    return out


def clip_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    received = parameters_to_ndarrays(ins.parameters)
    out = call_next(msg, ctxt)
    if out.has_error():
        return out
    res = compat.recorddict_to_fitres(out.content, keep_input=True)
    if res.num_examples == 0:
        return out
    sent = parameters_to_ndarrays(res.parameters)
    clipped = compute_adaptive_clip_model_update(sent, received, float(ins.config[KEY_CLIPPING_NORM]))
    if ins.config.get(ADAPTIVE, 0):
        res.metrics[KEY_NORM_BIT] = clipped
    res.parameters = ndarrays_to_parameters(sent)
    out.content = compat.fitres_to_recorddict(res, keep_input=True)
    return out


app = ClientApp(client_fn=lambda context: Device(str(context.run_config.get("data-dir")
                                                     or context.run_config["run-dir"])).to_client(),
                mods=[audit_mod, device_mod, secaggplus_mod, delta_mod, clip_mod])
