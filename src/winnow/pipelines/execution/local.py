"""The local executor: each step on datatrove's LocalPipelineExecutor, one after the other, then finalize here.

On a terminal each step draws one progress line (winnow.pipelines.progress: tasks, documents, rate, ETA) and
datatrove's console logs are cut to warnings and errors while it runs; the task logs keep everything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from winnow.pipelines.config import RunConfig
from winnow.pipelines.execution.base import Step, logging_dir, raise_if_incomplete
from winnow.pipelines.progress import (
    DocumentCounter,
    StepProgress,
    console_settings,
    show_progress,
    task_console,
)


def launch_local(cfg: RunConfig, stage: str, steps: list[Step], finalize: Callable[[], None] | None = None) -> None:
    from datatrove.pipeline.readers.base import BaseReader  # heavy: loaded when a stage runs

    executor_class = _console_executor_class()
    console = console_settings()
    for i, step in enumerate(steps, 1):
        workers = step.workers if step.workers != -1 else cfg.executor.workers
        folder = logging_dir(cfg, stage, step.name)
        pipeline = step.pipeline
        shown = show_progress()
        count = shown and bool(pipeline) and isinstance(pipeline[0], BaseReader)
        if count:  # documents read, for the progress line
            pipeline = [pipeline[0], DocumentCounter(Path(folder) / "progress"), *pipeline[1:]]
        executor = executor_class(
            pipeline=pipeline,
            tasks=step.tasks,
            workers=min(workers, step.tasks) if workers > 0 else step.tasks,
            logging_dir=folder,
            skip_completed=True,
            console=console,
        )
        line = (
            StepProgress(
                step_label(stage, step.name, i, len(steps)),
                folder,
                step.tasks,
                documents=count,
                documents_total=step.extra.get("documents"),
            )
            if shown
            else contextlib.nullcontext()
        )
        with line, _datatrove_console(console):
            executor.run()
        raise_if_incomplete(cfg, stage, step)
    if finalize is not None:
        finalize()


def step_label(stage: str, step: str, index: int, n_steps: int) -> str:
    """base; dedup/buckets (2/5); ablate/edu/tokenize."""
    label = stage if step == stage.split("/")[-1] else f"{stage}/{step}"
    return f"{label} ({index}/{n_steps})" if n_steps > 1 else label


@contextlib.contextmanager
def _datatrove_console(settings: tuple[int, bool] | None) -> Iterator[None]:
    """datatrove's console handler (re-added by every task, and once here for this process) on a TaskConsole."""
    if settings is None:
        yield
        return
    from datatrove.utils.logging import setup_default_logger

    try:
        with task_console(settings):
            setup_default_logger()
            yield
    finally:
        setup_default_logger()  # back on the real stderr


def _console_executor_class():
    """LocalPipelineExecutor whose tasks log to the console through a TaskConsole (in their own processes too).

    Made on first use (datatrove's executors are slow to import and the CLI loads this module at start-up), and
    kept as the module attribute `ConsoleExecutor` so that datatrove's worker processes can unpickle it."""
    if "ConsoleExecutor" in globals():
        return globals()["ConsoleExecutor"]
    from datatrove.executor import LocalPipelineExecutor

    class ConsoleExecutor(LocalPipelineExecutor):
        def __init__(self, *args, console: tuple[int, bool] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.console = console

        def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None):
            with task_console(self.console):
                return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)

    ConsoleExecutor.__qualname__ = "ConsoleExecutor"
    globals()["ConsoleExecutor"] = ConsoleExecutor
    return ConsoleExecutor


def __getattr__(name: str):
    if name == "ConsoleExecutor":  # a worker process unpickling the executor
        return _console_executor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
