"""Which trained student the artifact holds (`distill.deploy`), for the recommender and the text classifier alike.

- `best`: among the variants whose artifact, written at the deployed bits, fits `distill.deploy_max_bytes`, the one
  with the best validation score (HR@k on the server's users, or accuracy on the valid rows; never a test figure),
  the smaller on a tie. When none fits, the smallest, and the report says that the budget was missed: a device's
  storage is a hard limit, a validation point is not.
- `configured`: the variant `student.kind`/`distill.method` names, whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    artifact_bytes: int
    valid: float  # the validation score the variant's quantized model reached


def choose(candidates: dict[str, Candidate], configured: str, policy: str, max_bytes: int,
           valid_metric: str) -> tuple[str, dict]:
    """The deployed variant's name, and the `deployment` section of the report saying why."""
    if configured not in candidates:
        raise ValueError(f"the configured variant {configured!r} was not trained")
    fits = {name: c for name, c in candidates.items() if c.artifact_bytes <= max_bytes}
    if policy == "configured":
        name, reason = configured, "the configured variant (distill.deploy = \"configured\")"
    elif fits:
        # max() keeps the first of equals, and the configured variant comes first.
        name = max(fits, key=lambda n: (fits[n].valid, -fits[n].artifact_bytes))
        reason = f"the best validation {valid_metric} of the {len(fits)} of {len(candidates)} variants that fit"
    else:
        name = min(candidates, key=lambda n: candidates[n].artifact_bytes)
        reason = f"no variant fits {max_bytes:,} bytes: the smallest"
    return name, {
        "policy": policy, "max_bytes": max_bytes, "chosen": name, "reason": reason,
        "fits_budget": candidates[name].artifact_bytes <= max_bytes, "valid_metric": valid_metric,
        "candidates": {n: {"artifact_bytes": c.artifact_bytes, f"valid_{valid_metric}": c.valid,
                           "fits": c.artifact_bytes <= max_bytes} for n, c in candidates.items()},
    }
