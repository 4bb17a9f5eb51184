"""Execution: every stage is a list of datatrove steps plus a finalize callable, launched here.

    base.py   Step, logging folders, offline settings, the completeness check (shared by every executor)
    local.py  datatrove's LocalPipelineExecutor, step after step, then finalize in this process
    slurm.py  a chain of array jobs linked by `afterok`, then finalize as a one-task job
    ray.py    datatrove's RayPipelineExecutor on a running Ray cluster, step after step, then finalize here
    queue.py  the Slurm job record of a stage and what the queue says about it (read by status)

The run folder ends up identical whichever executor ran it. Adding an executor: one module here with a
`launch_<kind>(cfg, stage, steps, finalize)` and one entry in `EXECUTORS` (plus its `executor.kind` value).
"""

from __future__ import annotations

from collections.abc import Callable

from winnow.pipelines.config import RunConfig
from winnow.pipelines.execution.base import Step, logging_dir, offline_environment
from winnow.pipelines.execution.local import launch_local
from winnow.pipelines.execution.ray import launch_ray
from winnow.pipelines.execution.slurm import launch_slurm

EXECUTORS: dict[str, Callable] = {"local": launch_local, "slurm": launch_slurm, "ray": launch_ray}


def launch(cfg: RunConfig, stage: str, steps: list[Step], finalize: Callable[[], None] | None = None):
    """Run a stage's steps on the configured executor. Re-running skips the tasks already completed."""
    offline_environment()
    return EXECUTORS[cfg.executor.kind](cfg, stage, steps, finalize)


__all__ = ["EXECUTORS", "Step", "launch", "logging_dir", "offline_environment"]
