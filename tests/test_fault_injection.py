"""Fault injection: kill -9 at seeded random moments across base, dedup, score and subsets, resume, and compare
every stage's output with an uninterrupted run of the same config: identical every time.

A kill point is a seeded random task among those the resume has left and a random moment in its first half (from
the reference run's task times), so that each kill lands inside the work whatever the machine's speed: moments
drawn on the clock missed short resumes on a loaded machine.

Each kill takes the stage's whole process group (the executor and its workers), as the OOM killer, a lost node
or a closed terminal would. The classifier (fastText on the shared Llama-3 labels) is trained once, in the
reference run, and copied: it is not a stage under test here, and fastText training is not bit-reproducible.
"""

import glob
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

KILLS = {"base": 4, "dedup": 3, "score": 3, "subsets": 2}  # kill points: ≥ 10 of these 12 must hit a running stage
SEED = 14


def write_config(root: Path, shared_data: Path) -> str:
    labels = shared_data / "annotations" / "fineweb-edu-llama3"
    path = root / "run.yaml"
    path.write_text(f"""
name: faults
output_dir: {root / "run"}
input: {{paths: ["{shared_data}/warc/pages/pages-0000[0-3].warc.gz"], format: warc}}
executor: {{kind: local, tasks: 4, workers: 1}}
extract: {{extractor: resiliparse}}
dedup: {{bucket_workers: 1}}
classifier:
  backbone: fasttext
  labels: {labels / "train.jsonl.gz"}
  eval_labels: {labels / "val.jsonl.gz"}
  learning_curve: [1.0]
  calibration_folds: 2
subsets: {{thresholds: [1, 2]}}
""")
    return str(path)


def command(stage: str, cfg: str) -> list[str]:
    return [sys.executable, "-m", "winnow.pipelines.cli", stage, "-c", cfg]


def run_to_end(stage: str, cfg: str, cwd: Path) -> None:
    result = subprocess.run(command(stage, cfg), cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{stage}: {result.stderr[-3000:]}"


def kill_at(stage: str, cfg: str, cwd: Path, stage_dir: Path, nth: int, delay_s: float) -> bool:
    """Start the stage and SIGKILL its process group `delay_s` seconds after the `nth` task it starts (a datatrove
    task log written by this run) began; True if the stage was still running then.

    Killing after a task began, not at a clock time, puts every kill inside the work: a resume skips the tasks
    already done, so how long it runs depends on how far the earlier kills got, and a moment drawn on the clock
    can fall after the resume has ended (or inside its start-up)."""
    started_at = time.time()
    proc = subprocess.Popen(
        command(stage, cfg), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    while proc.poll() is None:
        logs = glob.glob(str(stage_dir / "logs" / "**" / "task_*.log"), recursive=True)
        if sum(os.path.getmtime(p) >= started_at for p in logs) >= nth:
            time.sleep(delay_s)
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        return False  # finished before the kill point
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def output(stage_dir: Path, run_dir: Path) -> dict:
    """Everything a stage publishes: its rows (kept and removed, sorted) and its summary (run paths neutralised)."""
    files = sorted(glob.glob(str(stage_dir / "**" / "*.parquet"), recursive=True))
    published = [f for f in files if "/work/" not in f and "/logs/" not in f]
    rows = {}
    for f in published:
        table = pq.read_table(f).to_pylist()
        rows[os.path.relpath(os.path.dirname(f), stage_dir)] = rows.get(
            os.path.relpath(os.path.dirname(f), stage_dir), []
        ) + [json.dumps(r, sort_keys=True, default=str) for r in table]
    summary = (stage_dir / "summary.json").read_text().replace(str(run_dir), "RUN")
    summary = {k: v for k, v in json.loads(summary).items() if k != "config"}
    return {"rows": {k: sorted(v) for k, v in rows.items()}, "summary": summary}


def tasks_done(stage_dir: Path) -> int:
    """Tasks the stage has completed so far, over all its steps (datatrove's `completions/` markers)."""
    return len(glob.glob(str(stage_dir / "**" / "completions" / "*"), recursive=True))


def task_seconds(stage_dir: Path) -> float:
    """The median time between two completions of one step (the tasks of a step run one after the other here)."""
    gaps = []
    for folder in glob.glob(str(stage_dir / "**" / "completions"), recursive=True):
        times = sorted(os.path.getmtime(p) for p in glob.glob(os.path.join(folder, "*")))
        gaps += [b - a for a, b in zip(times, times[1:])]
    return statistics.median(gaps) if gaps else 0.1


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_gives_the_uninterrupted_output(tmp_path, shared_data, project_root):
    reference, faulty = tmp_path / "reference", tmp_path / "faulty"
    ref_cfg, cfg = write_config(reference.mkdir() or reference, shared_data), None
    tasks, task_s = {}, {}
    for stage in ("base", "dedup", "classifier", "score", "subsets"):
        run_to_end(stage, ref_cfg, project_root)
        tasks[stage], task_s[stage] = tasks_done(reference / "run" / stage), task_seconds(reference / "run" / stage)

    faulty.mkdir()
    cfg = write_config(faulty, shared_data)
    rng = random.Random(SEED)
    interrupted = []
    for stage in ("base", "dedup", "classifier", "score", "subsets"):
        if stage == "classifier":
            shutil.copytree(reference / "run" / "classifier", faulty / "run" / "classifier")
            continue
        hits = 0
        for _ in range(KILLS[stage]):
            # a random task among those left (completed tasks are skipped on resume), a random moment in its first
            # half, so that the task is still running, even the stage's last one
            left = max(1, tasks[stage] - tasks_done(faulty / "run" / stage))
            nth, delay = rng.randint(1, left), rng.uniform(0.0, 0.5) * task_s[stage]
            if kill_at(stage, cfg, project_root, faulty / "run" / stage, nth, delay):
                interrupted.append((stage, nth, round(delay, 2)))
                hits += 1
            else:
                break  # the resume ran to the end: the stage is done, there is nothing left to kill
        run_to_end(stage, cfg, project_root)
        assert output(faulty / "run" / stage, faulty / "run") == output(reference / "run" / stage, reference / "run"), (
            f"{stage} differs after kills {interrupted}"
        )
        assert hits >= 1, f"no kill hit a running {stage}: {interrupted}"
    print("kills that hit a running stage (stage, n-th task started, seconds after):", interrupted)
    assert len(interrupted) >= 10, f"only {len(interrupted)} kills hit a running stage: {interrupted}"
