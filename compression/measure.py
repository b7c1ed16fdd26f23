"""Measurements of a deployed model against the teacher, in one process: accuracy through the device runtime,
batch-1 single-thread latency, and peak memory of an inference."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from compression.runtime.model import DeviceModel, measure_inference
from compression.teacher.minilm import mean_pool
from compression.teacher.two_tower import Teacher


class RuntimeScorer:
    """The protocol's Scorer over item vectors that the device runtime itself computed."""

    def __init__(self, model: DeviceModel, items: np.ndarray, prior: np.ndarray):
        self.model, self.items, self.prior = model, items, prior

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self.model.scores(self.model.user_vector(self.items[h]), self.items, self.prior)
                         for h in histories])


@torch.no_grad()
def teacher_latency(teacher: Teacher, texts: Sequence[str], repeats: int = 3) -> dict:
    """fp32 MiniLM teacher in PyTorch, batch 1, one thread: tokenize, 6 layers, pool, item head."""
    model = teacher.model
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for _ in range(repeats):
            for text in texts:
                start = time.perf_counter()
                enc = teacher.tokenizer(text, return_tensors="pt")
                hidden = model.bert(**enc).last_hidden_state
                model.head.item_vectors(mean_pool(hidden, enc["attention_mask"]))
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    ms = np.array(times) * 1e3
    return {"latency_ms_b1": float(np.median(ms)), "latency_ms_b1_p95": float(np.percentile(ms, 95))}


def device_measurements(model: DeviceModel, texts: Sequence[str], items: np.ndarray, prior: np.ndarray,
                        history: np.ndarray, repeats: int) -> dict:
    with threadpool_limits(limits=1):
        return measure_inference(model, texts, history, items, prior, repeats)
