"""Kill `winnow base` midway, run it again: only the missing tasks run and the output equals an uninterrupted run."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def config(tmp_path, shared_data, out: str) -> str:
    path = tmp_path / f"{out}.yaml"
    path.write_text(f"""
name: resume
output_dir: {tmp_path / out}
input:
  paths: [{shared_data}/warc/edge/*, {shared_data}/warc/cc/*]
  format: warc
executor: {{kind: local, tasks: 10, workers: 1}}
extract: {{extractor: resiliparse}}
""")
    return str(path)


def winnow_base(cfg: str, project_root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "winnow.pipelines.cli", "base", "-c", cfg],
        cwd=project_root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def rows(stage: Path, sub: str = "") -> list[tuple]:
    files = sorted(glob.glob(str(stage / sub / "*.parquet")))
    return sorted(tuple(r.values()) for f in files for r in pq.read_table(f).to_pylist())


@pytest.mark.slow
def test_killed_run_resumes_only_missing_tasks_and_matches_an_uninterrupted_run(tmp_path, shared_data, project_root):
    killed_cfg = config(tmp_path, shared_data, "killed")
    completions = tmp_path / "killed" / "base" / "logs" / "base" / "completions"
    proc = winnow_base(killed_cfg, project_root)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if completions.is_dir() and len(list(completions.iterdir())) >= 3:
            os.killpg(proc.pid, signal.SIGKILL)  # the executor and everything it started
            break
        time.sleep(0.02)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in completions.iterdir()}
    assert 3 <= len(done_before) < 10, "the run was not interrupted midway"
    assert not (tmp_path / "killed" / "base" / "summary.json").exists()
    stats_before = {n: (completions.parent / "stats" / f"{n}.json").read_bytes() for n in done_before}

    assert winnow_base(killed_cfg, project_root).wait(timeout=300) == 0  # the re-run
    done_after = {p.name: p.stat().st_mtime_ns for p in completions.iterdir()}
    assert len(done_after) == 10
    for name, mtime in done_before.items():  # completed tasks were not run again
        assert done_after[name] == mtime
        assert (completions.parent / "stats" / f"{name}.json").read_bytes() == stats_before[name]

    assert winnow_base(config(tmp_path, shared_data, "whole"), project_root).wait(timeout=300) == 0
    killed, whole = tmp_path / "killed" / "base", tmp_path / "whole" / "base"
    assert rows(killed) and rows(killed) == rows(whole)  # same documents, same ids, same text
    for name in {Path(p).name for p in glob.glob(str(whole / "removed" / "*"))}:
        assert rows(killed, f"removed/{name}") == rows(whole, f"removed/{name}")
    summary_k, summary_w = (json.loads((d / "summary.json").read_text()) for d in (killed, whole))
    for key in ("read", "kept", "removed", "failed", "skipped"):
        assert summary_k[key] == summary_w[key]
