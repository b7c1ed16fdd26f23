"""Progress display for long jobs (rich), silent when disabled (tests) or when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Reporter:
    """Stages with timings and per-stage progress bars; `stages` records (name, seconds) for reports."""

    def __init__(self, enabled: bool = True):
        self.console = Console(stderr=True, quiet=not enabled)
        self.stages: list[dict] = []

    def log(self, message: str) -> None:
        self.console.print(message)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[..., None]]:
        """Time a stage; yields `advance(n=1, **fields)` that moves its bar and shows the latest fields."""
        start = time.perf_counter()
        live = not self.console.quiet and sys.stderr.isatty()
        bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"), console=self.console, transient=True, disable=not live,
        )
        done = 0
        with bar:
            task = bar.add_task(name, total=total, info="")

            def advance(n: int = 1, **fields: float) -> None:
                nonlocal done
                info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
                bar.update(task, advance=n, info=info)
                done += n
                # Without a terminal (CI, a log file) print a line at every tenth of the way instead of a bar.
                if not live and total and done * 10 // total != (done - n) * 10 // total:
                    self.log(f"  {name}: {done}/{total} {time.perf_counter() - start:.0f} s {info}")

            yield advance
        seconds = time.perf_counter() - start
        self.stages.append({"name": name, "seconds": round(seconds, 3)})
        self.log(f"[green]✓[/green] {name} ({seconds:.1f} s)")
