"""The adaptive policy's deployment: variants of the run's model written into the run directory, richest first.

Each device picks among them by its budget (client/device.py `choose`); client/worker.py loads the list.
"""

from __future__ import annotations

import json
from pathlib import Path

from compression.runtime.variants import write_variant
from edgefleet.config import VariantConfig
from edgefleet.rundir import VARIANTS_DIR, VARIANTS_FILE, atomic_write


def artifact_changes(v: VariantConfig) -> dict:
    return {"bits": v.bits, "vocab": v.vocab, "keep_ratio": v.keep_ratio, "max_len": v.max_len}


def deploy_variants(model: Path, run_dir: Path, variants: tuple[VariantConfig, ...],
                    fit_margin: float = 0.0) -> list[dict]:
    """Write every variant's artifact under `run_dir/variants/` and the list the workers read (with the margin a
    device keeps over the predicted bytes when it picks); returns the list."""
    folder = run_dir / VARIANTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    listed = []
    for v in variants:
        nbytes = write_variant(model, folder / f"{v.name}.eflt", v.name, **artifact_changes(v))
        listed.append({"name": v.name, "artifact": f"{VARIANTS_DIR}/{v.name}.eflt", "artifact_bytes": nbytes,
                       "batch_size": v.batch_size, **{k: x for k, x in artifact_changes(v).items() if x is not None}})
    atomic_write(folder / VARIANTS_FILE,
                 lambda p: p.write_text(json.dumps({"policy": "adaptive", "fit_margin": fit_margin, "variants": listed},
                                                   indent=1)))
    return listed
