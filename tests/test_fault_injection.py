"""Fault injection: kill -9 at seeded random moments across base, dedup, score and subsets, resume, and compare
every stage's output with an uninterrupted run of the same config: identical every time.

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
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

KILLS = {"base": 4, "dedup": 3, "score": 2, "subsets": 2}  # kill points; ≥ 10 must hit a running stage
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


def run_to_end(stage: str, cfg: str, cwd: Path) -> float:
    t0 = time.monotonic()
    result = subprocess.run(command(stage, cfg), cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{stage}: {result.stderr[-3000:]}"
    return time.monotonic() - t0


def kill_at(stage: str, cfg: str, cwd: Path, after_s: float) -> bool:
    """Start the stage, SIGKILL its process group after `after_s` seconds; True if it was still running."""
    proc = subprocess.Popen(
        command(stage, cfg), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        proc.wait(timeout=after_s)
        return False  # finished before the kill point
    except subprocess.TimeoutExpired:
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


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_gives_the_uninterrupted_output(tmp_path, shared_data, project_root):
    reference, faulty = tmp_path / "reference", tmp_path / "faulty"
    ref_cfg, cfg = write_config(reference.mkdir() or reference, shared_data), None
    durations = {}
    for stage in ("base", "dedup", "classifier", "score", "subsets"):
        durations[stage] = run_to_end(stage, ref_cfg, project_root)

    faulty.mkdir()
    cfg = write_config(faulty, shared_data)
    rng = random.Random(SEED)
    interrupted = []
    for stage in ("base", "dedup", "classifier", "score", "subsets"):
        if stage == "classifier":
            shutil.copytree(reference / "run" / "classifier", faulty / "run" / "classifier")
            continue
        for i in range(KILLS[stage]):
            # each resume has less left to do (completed tasks are skipped): draw the i-th moment in a shorter span
            moment = max(0.3, rng.uniform(0.5, 0.9) * durations[stage] / (i + 1))
            if kill_at(stage, cfg, project_root, moment):
                interrupted.append((stage, round(moment, 2)))
        run_to_end(stage, cfg, project_root)
        assert output(faulty / "run" / stage, faulty / "run") == output(reference / "run" / stage, reference / "run"), (
            f"{stage} differs after kills {interrupted}"
        )
    assert len(interrupted) >= 10, f"only {len(interrupted)} kills hit a running stage: {interrupted}"
