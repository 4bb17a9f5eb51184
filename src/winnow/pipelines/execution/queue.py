"""A stage's Slurm job record (`<stage>/slurm_jobs.json`) and what the queue says about those jobs.

Written by `slurm.launch_slurm` at submission; read by later submissions (to wait for upstream stages or refuse
a double launch) and by `winnow status`. Stages run locally leave no record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from winnow.files import write_json
from winnow.pipelines.config import RunConfig

JOBS_FILE = "slurm_jobs.json"
FINALIZE = "finalize"  # the finalize job's folder under <stage>/logs/
# job states in which a job may still run (anything else is over: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...)
ACTIVE_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
}


def read_jobs(stage_dir: str | os.PathLike) -> dict | None:
    path = Path(stage_dir) / JOBS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_jobs(stage_dir: Path, record: dict) -> None:
    write_json(stage_dir / JOBS_FILE, record)


def record_job_ids(record: dict | None) -> list[str]:
    if not record:
        return []
    ids = [j for s in record["steps"] for j in (s.get("job_id"), s.get("merge_job_id")) if j]
    return ids + ([record["final_job"]] if record.get("final_job") and record["final_job"] not in ids else [])


def slurm_output(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout


def job_tasks(job_id: str) -> dict[str, tuple[str, str]]:
    """Array index (or index range such as "2-5" for pending ones, or "" for a plain job) → (state, reason), from
    the controller. Empty once the controller forgot the job (MinJobAge, 5 minutes by default)."""
    tasks = {}
    for line in slurm_output(["scontrol", "show", "job", "-o", str(job_id)]).splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if "JobState" in fields:
            tasks[fields.get("ArrayTaskId", "")] = (fields["JobState"], fields.get("Reason", "None"))
    return tasks


def active_jobs(record: dict | None) -> list[str]:
    """The jobs of a stage's last submission that may still run."""
    if not record or shutil.which("scontrol") is None:
        return []
    return [j for j in record_job_ids(record) if ACTIVE_STATES & {state for state, _ in job_tasks(j).values()}]


def stage_finished(stage_dir: Path, record: dict | None = None) -> bool:
    """Every step's tasks completed and, when the stage has a finalize job, that job completed too."""
    record = record or read_jobs(stage_dir)
    if record is None:
        return False
    for step in record["steps"]:
        done = stage_dir / "logs" / step["name"] / "completions"
        if not done.is_dir() or len(list(done.iterdir())) < step["tasks"]:
            return False
    return not record.get("finalize") or (stage_dir / "logs" / FINALIZE / "completions" / "00000").is_file()


def output_final(cfg: RunConfig, stage: str) -> bool:
    """Whether a stage's output folder holds its final files: True for a stage run locally (no Slurm record),
    else only once its last Slurm submission finished. A later stage submitted behind it must not record or
    check the earlier stage's files at submission time when this is False."""
    stage_dir = Path(cfg.output_dir) / stage
    record = read_jobs(stage_dir)
    return record is None or (not active_jobs(record) and stage_finished(stage_dir, record))
