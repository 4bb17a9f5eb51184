"""The local executor: each step on datatrove's LocalPipelineExecutor, one after the other, then finalize here."""

from __future__ import annotations

from collections.abc import Callable

from winnow.pipelines.config import RunConfig
from winnow.pipelines.execution.base import Step, logging_dir, raise_if_incomplete


def launch_local(cfg: RunConfig, stage: str, steps: list[Step], finalize: Callable[[], None] | None = None) -> None:
    from datatrove.executor import LocalPipelineExecutor  # heavy: loaded when a stage runs

    for step in steps:
        workers = step.workers if step.workers != -1 else cfg.executor.workers
        executor = LocalPipelineExecutor(
            pipeline=step.pipeline,
            tasks=step.tasks,
            workers=min(workers, step.tasks) if workers > 0 else step.tasks,
            logging_dir=logging_dir(cfg, stage, step.name),
            skip_completed=True,
        )
        executor.run()
        raise_if_incomplete(cfg, stage, step)
    if finalize is not None:
        finalize()
