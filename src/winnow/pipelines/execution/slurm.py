"""Running a stage on Slurm: each step becomes an array job, chained with `afterok`, then `finalize` as a one-task job.

`launch_slurm` submits and returns at once. The job ids go to `<stage>/slurm_jobs.json`, so that
- a later stage submitted right away (`make base dedup EXECUTOR=slurm`) waits for this stage's final job,
- `winnow status` can ask the queue about them,
- running the same command again while the jobs are still queued is refused instead of doubling the work.

The run folder ends as a local run leaves it: the steps write the same files, and `finalize` (summary.json,
plots) runs as the last job, after every step and its stats merge. Completed tasks are skipped on a relaunch.
A job whose dependency failed is cancelled (`--kill-on-invalid-dep=yes`), not left pending forever.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from winnow.errors import ConfigError, StageFailed
from winnow.pipelines.config import SAFE_PATH, RunConfig
from winnow.pipelines.execution.base import Step, logging_dir
from winnow.pipelines.execution.queue import FINALIZE, active_jobs, read_jobs, slurm_output, stage_finished, write_jobs
from winnow.pipelines.registry import upstream_folders

SLURM_TOOLS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
# `winnow run --dry-run`: every sbatch script is written (<logs>/<step>/launch_script.sh, job.sh for a stage job)
# with placeholder job ids for the dependency edges, and nothing is submitted or asked of a cluster
DRY_RUN = False
_JOB_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


@functools.cache
def slurm_executor_class():
    """datatrove's Slurm executor, keeping the id of the stats-merge job so that finalize can wait for it.
    (Built on first use: datatrove's executors are heavy to import.)"""
    from datatrove.executor.slurm import SlurmPipelineExecutor, launch_slurm_job

    class WinnowSlurmExecutor(SlurmPipelineExecutor):
        def __init__(self, *args, merge_stats: bool = True, **kwargs):
            super().__init__(*args, **kwargs)
            self.merge_stats = merge_stats
            self.merge_job_id = None

        def launch_merge_stats(self):
            if not self.merge_stats:
                return
            stats, merged = self.logging_dir.resolve_paths("stats"), self.logging_dir.resolve_paths("stats.json")
            script = self.get_launch_file_contents(
                {
                    **self.get_sbatch_args(),
                    "cpus-per-task": 1,
                    "mem-per-cpu": "1G",
                    "dependency": f"afterok:{self.job_id}",
                },
                f"merge_stats {stats} -o {merged}",
            )
            self.merge_job_id = launch_slurm_job(script, self.job_id_retriever)

    return WinnowSlurmExecutor


def run_finalize(finalize: Callable[[], None], data, rank: int = 0, world_size: int = 1):
    """The pipeline of the final job: a datatrove pipeline whose only step calls the stage's finalize."""
    finalize()


def launch_slurm(cfg: RunConfig, stage: str, steps: list[Step], finalize: Callable[[], None] | None = None) -> None:
    """Submit a stage's steps as a chain of array jobs (+ finalize) and return; see the module's docstring."""
    _check_submittable(cfg, stage, steps)
    stage_dir = Path(cfg.output_dir).resolve() / stage
    busy = [] if DRY_RUN else active_jobs(read_jobs(stage_dir))
    if busy:
        raise StageFailed(
            f"{stage} already has jobs in the Slurm queue ({', '.join(busy)}); wait for them "
            f"(winnow status -c {cfg.source_file}) or scancel them, then run the same command again"
        )
    partition = _partition(cfg)
    upstream = _upstream_jobs(cfg, stage)

    # the finalize job's completion marks "this submission finished"; a stale one from an earlier run must not count
    marker = stage_dir / "logs" / FINALIZE / "completions" / "00000"
    marker.unlink(missing_ok=True)

    after = ":".join(upstream) or None
    record = {
        "stage": stage,
        "config": cfg.source_file,
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "upstream": upstream,
        "steps": [],
        "finalize": finalize is not None,
        "final_job": None,
    }
    for step in steps:
        executor = _executor(
            cfg, stage, step.name, step.pipeline, step.tasks, step.workers, step.extra, partition, after
        )
        if DRY_RUN:
            _dry_submit(executor, step.tasks, after)
        else:
            executor.run()  # sbatch; job_id == -1 when every task had already completed
        launched = executor.job_id not in (None, -1)
        record["steps"].append(
            {
                "name": step.name,
                "tasks": step.tasks,
                "job_id": str(executor.job_id) if launched else None,
                "merge_job_id": executor.merge_job_id,
            }
        )
        if launched:  # the next step needs this one's output; its stats merge runs alongside
            after = str(executor.job_id)
        write_jobs(stage_dir, record)  # after every submission, so an interrupted launch leaves a usable record
    merges = [s["merge_job_id"] for s in record["steps"] if s["merge_job_id"]]
    if finalize is not None:  # after the last step and every stats merge: nothing of the stage is left queued
        executor = _executor(
            cfg,
            stage,
            FINALIZE,
            [functools.partial(run_finalize, finalize)],
            1,
            -1,
            {},
            partition,
            ":".join(filter(None, [after, *merges])) or None,
            skip_completed=False,
            merge_stats=False,
        )
        if DRY_RUN:
            _dry_submit(executor, 1, ":".join(filter(None, [after, *merges])) or None)
        else:
            executor.run()
        record["final_job"] = str(executor.job_id)
    else:  # the stage's last own job (None when every task had already completed)
        record["final_job"] = next((s["job_id"] for s in reversed(record["steps"]) if s["job_id"]), None)
    write_jobs(stage_dir, record)
    jobs = " → ".join(s["job_id"] or "done" for s in record["steps"]) + f" → {record['final_job']}"
    waits = f" after {', '.join(upstream)}" if upstream else ""
    print(
        f"winnow: {stage} submitted to Slurm (jobs {jobs}{waits}); follow it with: winnow status -c {cfg.source_file}",
        file=sys.stderr,
    )


JOB_STEP = "job"  # the one step of a stage submitted whole (`submit_stage_job`): <stage>/logs/job/


def submit_stage_job(cfg: RunConfig, stage: str, config_file: str) -> str:
    """Submit a whole stage as one Slurm job that runs `winnow <stage>` with the local executor inside its allocation,
    behind the final jobs of the upstream stages still queued (afterok), and return its id.

    This is how the whole-recipe graph (`winnow run` on Slurm) queues the stages that read their upstream's output
    to decide what to do (annotate samples it, classifier trains on it, score, subsets, ablate, report): their checks
    run inside their own job, once the upstream has finished, so no stage ever reads a partial upstream. The job gets
    the stage's resources (`stages.<stage>.executor`: partition, time, CPUs, memory, GPUs through sbatch_args) and
    runs the stage's tasks on them, at most `workers` (default: cpus_per_task) at once. A job that fails cancels
    every job that waits on it (--kill-on-invalid-dep). Its record and log layout are those of a one-task step
    (`logs/job/completions/00000` marks it done), so `winnow status` and later submissions read it like any other.
    """
    _check_submittable(cfg, stage, [])
    stage_dir = Path(cfg.output_dir).resolve() / stage
    partition = _partition(cfg)
    upstream = _upstream_jobs(cfg, stage)
    ex = cfg.executor
    log_dir = stage_dir / "logs" / JOB_STEP
    (log_dir / "slurm_logs").mkdir(parents=True, exist_ok=True)
    (log_dir / "completions" / "00000").unlink(missing_ok=True)
    (log_dir / "ranks_to_run.json").write_text("[0]\n")  # the array layout status reads: index 0 runs rank 0
    workers = ex.workers if ex.workers > 0 else ex.cpus_per_task
    options = {
        "job-name": job_name(cfg, stage, JOB_STEP),
        "partition": partition,
        "time": ex.time,
        "cpus-per-task": str(ex.cpus_per_task),
        "mem-per-cpu": f"{int(ex.mem_per_cpu_gb * 1024)}M",
        "output": str(log_dir / "slurm_logs" / "%j_0.out"),
        "kill-on-invalid-dep": "yes",
        **({"qos": ex.qos} if ex.qos else {}),
        **({"dependency": "afterok:" + ":".join(upstream)} if upstream else {}),
        **ex.sbatch_args,
    }
    command = [
        sys.executable, "-m", "winnow.pipelines.cli", "--quiet", stage.split("/")[0], "-c", config_file,
        "--set", "executor.kind=local", "--set", f"stages.{stage.split('/')[0]}.executor.workers={workers}",
    ]  # fmt: skip
    script = "\n".join(
        [
            "#!/bin/bash",
            *(f"#SBATCH --{k}={v}" if v else f"#SBATCH --{k}" for k, v in options.items()),
            "set -euo pipefail",
            *job_environment(cfg).split("\n        "),
            f"cd {shlex.quote(os.getcwd())}",
            " ".join(shlex.quote(c) for c in command),
            f"mkdir -p {shlex.quote(str(log_dir / 'completions'))}",
            f"touch {shlex.quote(str(log_dir / 'completions' / '00000'))}",
            "",
        ]
    )
    (log_dir / "job.sh").write_text(script)
    if DRY_RUN:
        job_id = f"dry-{stage}"
    else:
        result = subprocess.run(["sbatch", "--parsable", str(log_dir / "job.sh")], capture_output=True, text=True)
        if result.returncode != 0:
            raise StageFailed(f"{stage}: sbatch refused the stage job: {result.stderr.strip().splitlines()[-1:]}")
        job_id = result.stdout.strip().split(";")[0]
    record = {
        "stage": stage,
        "config": cfg.source_file,
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "upstream": upstream,
        "mode": "job",
        "steps": [{"name": JOB_STEP, "tasks": 1, "job_id": job_id, "merge_job_id": None}],
        "finalize": False,
        "final_job": job_id,
    }
    write_jobs(stage_dir, record)
    waits = f" after {', '.join(upstream)}" if upstream else ""
    print(f"winnow: {stage} submitted to Slurm as one job ({job_id}{waits})", file=sys.stderr)
    return job_id


def _executor(
    cfg, stage, name, pipeline, tasks, workers, extra, partition, after, skip_completed=True, merge_stats=True
):
    # the step's own resources: global executor < stages.<stage>.executor < stages.<stage>.steps.<step>.executor
    # (ablate submits one stage per ablation, "ablate/<name>": its resources are the ablate stage's)
    ex = cfg.executor_for(stage.split("/")[0], name)
    ex = ex.model_copy(update={k: v for k, v in extra.items() if k in type(ex).model_fields})
    workers = workers if workers != -1 else ex.workers
    sbatch_args = {
        "kill-on-invalid-dep": "yes",
        # whole megabytes: Slurm refuses a fractional size such as 1.5G
        "mem-per-cpu": f"{int(ex.mem_per_cpu_gb * 1024)}M",
        **ex.sbatch_args,
    }
    log_dir = Path(logging_dir(cfg, stage, name)).resolve()
    return slurm_executor_class()(
        pipeline=pipeline,
        tasks=tasks,
        workers=min(workers, tasks) if workers > 0 else -1,
        time=ex.time,
        partition=partition,
        cpus_per_task=ex.cpus_per_task,
        mem_per_cpu_gb=ex.mem_per_cpu_gb,
        qos=ex.qos or "",  # "" leaves the line out; datatrove's default would be "normal"
        job_name=job_name(cfg, stage, name),
        env_command=job_environment(cfg),
        sbatch_args=sbatch_args,
        depends_job_id=after,
        logging_dir=str(log_dir),
        slurm_logs_folder=str(log_dir / "slurm_logs"),
        skip_completed=skip_completed,
        merge_stats=merge_stats,
    )


def job_name(cfg: RunConfig, stage: str, step: str) -> str:
    return f"winnow.{cfg.name}.{stage.replace('/', '.')}.{step}"  # ablate runs a stage per ablation: ablations/<name>


def job_environment(cfg: RunConfig) -> str:
    """Shell lines run first in each job: the venv the user launched from (so `launch_pickled_pipeline` and the
    project are found), the offline settings, then the user's own `env_command`."""
    venv = cfg.executor.venv or (sys.prefix if sys.prefix != sys.base_prefix else None)
    if venv:
        lines = [f"source {shlex.quote(str(Path(venv).resolve() / 'bin' / 'activate'))}"]
    else:
        lines = [f'export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"']
    lines.append(
        "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 "
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS= TOKENIZERS_PARALLELISM=false"
    )
    if cfg.executor.env_command:
        lines.append(cfg.executor.env_command)
    return "\n        ".join(lines)  # datatrove dedents its script template by 8 spaces


# ------------------------------------------------------------------------------------------------ checks


def _partition(cfg: RunConfig) -> str:
    """The configured partition (the cluster's default when unset), checked with `sbatch --test-only`."""
    if DRY_RUN:
        return cfg.executor.partition or "default"
    partition = cfg.executor.partition or default_partition()
    _preflight(cfg, partition)
    return partition


def _dry_submit(executor, tasks: int, after: str | None) -> None:
    """The array job's sbatch script, written where datatrove writes it, with a placeholder job id."""
    args = {**executor.get_sbatch_args(tasks), **({"dependency": f"afterok:{after}"} if after else {})}
    script = executor.get_launch_file_contents(
        args, f"srun -l -n 1 launch_pickled_pipeline {executor.logging_dir.resolve_paths('executor.pik')}"
    )
    with executor.logging_dir.open("launch_script.sh", "w") as f:
        f.write(script)
    executor.job_id = f"dry-{executor.job_name}"


def _check_submittable(cfg: RunConfig, stage: str, steps: list[Step]) -> None:
    """Everything of the config that lands in the generated script must be harmless there (see config.py)."""
    source = cfg.source_file or "config"
    missing = [] if DRY_RUN else [t for t in SLURM_TOOLS if shutil.which(t) is None]
    if missing:
        raise ConfigError(
            f"{source}: executor.kind is slurm but {', '.join(missing)} is not on PATH (on this machine: make slurm-up)"
        )
    for name in [stage, *(s.name for s in steps)]:
        if not _JOB_NAME.fullmatch(job_name(cfg, stage, name)):
            raise ConfigError(
                f"{source}: name: {cfg.name!r} cannot be part of a Slurm job name (letters, digits and _ . + - only)"
            )
    if cfg.executor.venv and not DRY_RUN and not (Path(cfg.executor.venv) / "bin" / "activate").is_file():
        raise ConfigError(
            f"{source}: executor.venv: {cfg.executor.venv} has no bin/activate (give the virtualenv's "
            "folder, as the compute nodes see it)"
        )
    out = str(Path(cfg.output_dir).resolve())
    if not SAFE_PATH.fullmatch(out):
        raise ConfigError(
            f"{source}: output_dir: {out!r} would reach sbatch; use letters, digits and _ . / + @ , = - "
            "only (no spaces or shell metacharacters)"
        )


def default_partition() -> str:
    rows = slurm_output(["sinfo", "-h", "-o", "%P"]).split()
    default = [p.rstrip("*") for p in rows if p.endswith("*")]
    if not (default or rows):
        raise ConfigError("executor.partition is not set and the cluster has no partition")
    return (default or rows)[0].rstrip("*")


def _preflight(cfg: RunConfig, partition: str) -> None:
    """`sbatch --test-only` with the config's partition, time, qos and options: a wrong one is one clear line."""
    ex = cfg.executor
    args = [
        f"--partition={partition}",
        f"--time={ex.time}",
        f"--cpus-per-task={ex.cpus_per_task}",
        f"--mem-per-cpu={int(ex.mem_per_cpu_gb * 1024)}M",
        *([f"--qos={ex.qos}"] if ex.qos else []),
        *(f"--{k}={v}" if v else f"--{k}" for k, v in ex.sbatch_args.items()),
    ]
    result = subprocess.run(["sbatch", "--test-only", *args, "--wrap=true"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        lines = [ln.removeprefix("sbatch: error: ") for ln in result.stderr.splitlines() if ln.strip()]
        why = lines[0] if lines else f"sbatch exited with {result.returncode}"
        raise ConfigError(f"{cfg.source_file}: executor: Slurm refuses the job ({' '.join(args)}): {why}")
    # a cluster that does not enforce partition limits at submission accepts a too-long job and keeps it pending
    # forever (Reason=PartitionTimeLimit): check the limit here
    limits = {p: _partition_max_time(p) for p in partition.split(",")}
    wanted = slurm_seconds(ex.time)
    if wanted is not None and all(limit is not None and wanted > limit for limit in limits.values()):
        shown = ", ".join(f"{p} allows {_max_time_text(p)}" for p in limits)
        raise ConfigError(f"{cfg.source_file}: executor.time: {ex.time} is longer than the partition allows ({shown})")


def slurm_seconds(limit: str) -> int | None:
    """Seconds of a Slurm time (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S); None for no limit."""
    if limit.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if days:
        h, m, sec = (parts + [0, 0])[:3]
    else:
        h, m, sec = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return ((int(days or 0) * 24 + h) * 60 + m) * 60 + sec


def _max_time_text(partition: str) -> str:
    out = slurm_output(["scontrol", "show", "partition", partition, "-o"])
    return next((tok.split("=", 1)[1] for tok in out.split() if tok.startswith("MaxTime=")), "UNLIMITED")


def _partition_max_time(partition: str) -> int | None:
    return slurm_seconds(_max_time_text(partition))


def _upstream_jobs(cfg: RunConfig, stage: str) -> list[str]:
    """Final jobs of earlier stages of this run still queued: this stage starts after them. An earlier stage whose
    last Slurm submission ended without finishing stops the launch (its output would be incomplete)."""
    waits = []
    for other in upstream_folders(stage.split("/")[0], cfg):
        record = read_jobs(Path(cfg.output_dir) / other)
        if not record or not record.get("final_job"):
            continue
        if DRY_RUN or active_jobs(record):
            waits.append(record["final_job"])
        elif not stage_finished(Path(cfg.output_dir) / other, record):
            raise StageFailed(
                f"stage {other} did not finish its last Slurm run (see winnow status -c "
                f"{cfg.source_file}); relaunch it first, then {stage}"
            )
    return waits
