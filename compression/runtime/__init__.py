"""What a phone runs: the artifact, quantized tensors, tokenizer, numpy encoders, the task's runtime model, the
memory model and the update codec. numpy and tokenizers only (tests/test_architecture.py).

A runtime model is chosen by the artifact's `runtime` kind; a new one is one module with a `TextModel` subclass
(compression/runtime/model.py) plus one line in RUNTIMES.
"""

from __future__ import annotations

import importlib

RUNTIMES = {
    "two-tower-rec": "compression.runtime.model:DeviceModel",
    "text-classifier": "compression.runtime.classifier:ClassifierModel",
}


def load_model(artifact):
    """The runtime model that serves `artifact` (an ArtifactError names an unknown kind)."""
    from compression.runtime.artifact import ArtifactError

    kind = artifact.config.get("runtime")
    if kind not in RUNTIMES:
        raise ArtifactError(f"artifact is for runtime {kind!r}; this device runtime runs {', '.join(RUNTIMES)}")
    module, cls = RUNTIMES[kind].split(":")
    return getattr(importlib.import_module(module), cls)(artifact)
