"""A classifier's figures as a phone would see them, and the teacher's measured the same way in the same process.

The student's come from the device runtime (compression/runtime/classifier.py) on the written artifact: accuracy
and macro-F1 on the test rows, the median latency of batch-1 inferences of test texts on one thread (tokenize,
encode, head, argmax), and the peak memory of one inference beyond the loaded model (tracemalloc). The teacher's
latency is the fp32 MiniLM classifier in PyTorch on the same texts, batch 1, one thread.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from compression.runtime import load_model
from compression.runtime.artifact import read_artifact
from compression.teacher.minilm import mean_pool
from compression.textclf.models import TextTeacher, scores


def latency(infer: Callable[[str], object], texts: Sequence[str], repeats: int) -> dict:
    """Median and 95th percentile of `infer` on each text, one at a time, `repeats` times over."""
    times = []
    for _ in range(repeats):
        for text in texts:
            start = time.perf_counter()
            infer(text)
            times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {"latency_ms_b1": float(np.median(ms)), "latency_ms_b1_p95": float(np.percentile(ms, 95)),
            "texts": len(texts), "repeats": repeats}


def runtime_figures(path: Path, texts: Sequence[str], y: np.ndarray, sample: Sequence[str], repeats: int) -> dict:
    """Test metrics, latency and inference peak memory of the artifact at `path`, all from the device runtime."""
    model = load_model(read_artifact(path))

    def infer(text: str) -> int:
        return int(np.argmax(model.logits(model.encode(text)[None])))

    with threadpool_limits(limits=1):
        figures = scores(model.logits(np.stack([model.encode(t) for t in texts])), y, len(model.labels))
        figures |= latency(infer, sample, repeats)
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            infer(sample[0])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return figures | {"peak_mem_bytes": int(peak - base)}


@torch.no_grad()
def teacher_latency(tokenizer, teacher: TextTeacher, texts: Sequence[str], repeats: int, max_len: int) -> dict:
    """The fp32 teacher in PyTorch, batch 1, one thread: tokenize (at most `max_len` tokens, as in training), six
    layers, pool, head, argmax."""
    teacher.eval()

    def infer(text: str) -> int:
        enc = tokenizer(text, truncation=True, max_length=max_len, return_tensors="pt")
        hidden = teacher.bert(**enc).last_hidden_state
        return int(teacher.classifier(mean_pool(hidden, enc["attention_mask"])).argmax())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return latency(infer, texts, repeats)
    finally:
        torch.set_num_threads(threads)
