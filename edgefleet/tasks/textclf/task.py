"""Your own text classification: `text,label` files (docs/tasks.md). It compresses today (compression/textclf/);
deploying it to a fleet needs its device side, fleet and evaluator (a `FederatedTask`), which it does not have yet,
so `simulate` refuses it with one line (edgefleet/tasks/__init__.py `federated_task`)."""

from __future__ import annotations

from typing import Any

from edgefleet.errors import ConfigError
from edgefleet.tasks.base import Metric, Task
from edgefleet.tasks.textclf.data import TextTask, load_text_task


class TextClassification(Task):
    name = "textclf"
    title = "Text classification (your data)"
    runtime = "text-classifier"
    metrics = (Metric("accuracy", "accuracy"),)

    def load(self, cfg: Any) -> TextTask:
        if cfg.train is None or cfg.valid is None:
            raise ConfigError("the textclf task needs task.train and task.valid (compress --train F --valid F)")
        return load_text_task(cfg.train, cfg.valid)
