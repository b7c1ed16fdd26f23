"""An audit of what devices send: with `EDGEFLEET_AUDIT_DIR` set, every message a ClientApp replies with is written
there (its arrays, configs, metrics and error), one file per message, so that a test or a user can check what left
the devices. Outermost mod of both ClientApps; without the variable it only passes messages through.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable

AUDIT_ENV = "EDGEFLEET_AUDIT_DIR"


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def audit_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    out = call_next(msg, ctxt)
    folder = os.environ.get(AUDIT_ENV)
    if not folder:
        return out
    record = {"node": msg.metadata.dst_node_id, "type": msg.metadata.message_type,
              "error": out.error.reason if out.has_error() else None, "arrays": {}, "configs": {}, "metrics": {}}
    if not out.has_error():
        for name, arrays in out.content.array_records.items():
            record["arrays"][name] = {k: np.asarray(a.numpy()) for k, a in arrays.items()}
        for name, configs in out.content.config_records.items():
            record["configs"][name] = {k: _plain(v) for k, v in configs.items()}
        for name, metrics in out.content.metric_records.items():
            record["metrics"][name] = {k: _plain(v) for k, v in metrics.items()}
    path = Path(folder) / f"{uuid.uuid4().hex}.pkl"
    path.write_bytes(pickle.dumps(record))
    return out
