"""Executor choice: every stage is a list of datatrove steps plus a finalize callable, launched here.

A stage never builds an executor itself; it hands its steps to `launch`, which runs them on the local
executor (one after the other, then `finalize` in this process) or on Slurm (a chain of array jobs
linked by `afterok` dependencies, then `finalize` as a one-task job), so that the run folder ends
up identical whichever executor ran it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.config import RunConfig


@dataclass
class Step:
    """One datatrove pipeline of a stage (a stage such as dedup has several, run in order)."""

    name: str  # the folder under <stage>/logs/
    pipeline: list
    tasks: int
    workers: int = -1
    extra: dict = field(default_factory=dict)  # executor-specific overrides (e.g. mem_per_cpu_gb)


def offline_environment() -> None:
    """Settings that keep the libraries we use from reaching the network (set before they are imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def logging_dir(cfg: RunConfig, stage: str, step: str) -> str:
    return str(Path(cfg.output_dir) / stage / "logs" / step)


def launch(cfg: RunConfig, stage: str, steps: list[Step], finalize: Callable[[], None] | None = None):
    """Run a stage's steps on the configured executor. Re-running skips the tasks already completed."""
    offline_environment()
    if cfg.executor.kind == "local":
        return _launch_local(cfg, stage, steps, finalize)
    from pipelines.slurm import launch_slurm

    return launch_slurm(cfg, stage, steps, finalize)


def _launch_local(cfg: RunConfig, stage: str, steps: list[Step], finalize):
    from datatrove.executor import LocalPipelineExecutor

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
        _raise_if_incomplete(cfg, stage, step)
    if finalize is not None:
        finalize()


def _raise_if_incomplete(cfg: RunConfig, stage: str, step: Step) -> None:
    done = Path(logging_dir(cfg, stage, step.name)) / "completions"
    n_done = len(list(done.iterdir())) if done.is_dir() else 0
    if n_done < step.tasks:
        log = Path(logging_dir(cfg, stage, step.name)) / "logs"
        print(
            f"winnow: {stage}/{step.name}: {step.tasks - n_done} of {step.tasks} tasks failed; "
            f"see {log}/task_*.log, fix the cause and run the same command again (completed tasks are skipped)",
            file=sys.stderr,
        )
        raise SystemExit(1)
