"""Weights of a trained classifier student at INT8 or INT4: post-training quantization, or quantization-aware
fine-tuning kept only when it beats it on the validation rows (as compression/pipeline.py does for the
recommender)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from compression.quant.export import exported_state, fake_quantized, load_quantized, quantize_state
from compression.runtime.quantize import QTensor
from compression.textclf.distill import Distiller
from compression.textclf.models import Encoded, TextStudent, s_accuracy


@dataclass(frozen=True)
class Quantized:
    tensors: dict[str, QTensor]  # what the artifact holds
    model: TextStudent  # the student with those weights, dequantized
    method: str  # "ptq" or "qat"
    valid_accuracy: dict[str, float]  # of each method tried


def _with_tensors(student: TextStudent, bits: int, group: int) -> tuple[TextStudent, dict[str, QTensor]]:
    tensors = quantize_state(exported_state(student), bits, group)
    load_quantized(student, tensors)
    return student, tensors


def quantized(student: TextStudent, bits: int, group: int, qat_steps: int, distiller: Distiller,
              valid: Encoded, name: str) -> Quantized:
    """PTQ of a copy of `student`, then (with `qat_steps`) QAT of another copy; the better on validation is kept
    (PTQ on a tie: it is the simpler)."""
    ptq, tensors = _with_tensors(copy.deepcopy(student), bits, group)
    chosen = Quantized(tensors, ptq, "ptq", {"ptq": s_accuracy(ptq, valid)})
    if not qat_steps:
        return chosen
    qat = copy.deepcopy(student)
    with fake_quantized(qat, bits, group):
        distiller.quantization_aware(qat, qat_steps, f"QAT int{bits} ({name})")
    qat, qat_tensors = _with_tensors(qat, bits, group)
    chosen.valid_accuracy["qat"] = s_accuracy(qat, valid)
    if chosen.valid_accuracy["qat"] > chosen.valid_accuracy["ptq"]:
        return Quantized(qat_tensors, qat, "qat", chosen.valid_accuracy)
    return chosen
