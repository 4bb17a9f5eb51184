"""Operator mistakes that used to mix or lose data are refused with one line (winnow.pipelines.guard).

Reproduces issue 14's cases on real WARC shards and real `winnow base` processes:
  1. resuming with another task count      → refused (fingerprint: executor.tasks), the resume completes
  3. two runs on one output folder         → the second is refused while the first lives (run lock)
  4. another dump / input.paths / filter   → refused, summary.json and input_files.txt untouched
and: a killed run's lock is taken over, a refused first run leaves nothing on disk, a full disk is one line.
"""

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

from winnow.errors import ConfigError
from winnow.pipelines.guard import stage_lock

SHARDS = "pages/pages-0000[0-3].warc.gz"


def write_config(tmp_path: Path, shared_data: Path, out: str, **extra: str) -> str:
    path = tmp_path / f"{out}.yaml"
    lines = [
        "name: guard",
        f"output_dir: {tmp_path / out}",
        f'input: {{paths: ["{shared_data}/warc/{SHARDS}"], format: warc}}',
        "executor: {kind: local, tasks: 4, workers: 1}",
        "extract: {extractor: resiliparse}",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def winnow(*args: str, project_root: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "winnow.pipelines.cli", *args], cwd=project_root, capture_output=True, text=True, **kw
    )


def start(*args: str, project_root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "winnow.pipelines.cli", *args],
        cwd=project_root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killpg takes the executor and its workers
    )


def one_config_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("winnow: config error:"), result.stderr[-2000:]
    return lines[0]


def rows(stage: Path, sub: str = "") -> list[tuple]:
    files = sorted(glob.glob(str(stage / sub / "**" / "*.parquet"), recursive=True))
    return sorted(tuple(str(v) for v in r.values()) for f in files for r in pq.read_table(f).to_pylist())


def counts(stage: Path) -> dict:
    summary = json.loads((stage / "summary.json").read_text())
    return {k: summary[k] for k in ("read", "kept", "removed", "failed")}


def kill_after_completions(proc: subprocess.Popen, completions: Path, n: int) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if completions.is_dir() and len(list(completions.iterdir())) >= n:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    return len(list(completions.iterdir())) if completions.is_dir() else 0


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, shared_data, project_root) -> Path:
    """The reference: base on the four shards, uninterrupted."""
    tmp = tmp_path_factory.mktemp("clean")
    result = winnow("base", "-c", write_config(tmp, shared_data, "clean"), project_root=project_root)
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp / "clean" / "base"


@pytest.mark.slow
def test_resume_with_another_task_count_is_refused_and_the_resume_matches_a_clean_run(
    tmp_path, shared_data, project_root, clean_run
):
    cfg = write_config(tmp_path, shared_data, "run")
    stage = tmp_path / "run" / "base"
    done = kill_after_completions(
        start("base", "-c", cfg, project_root=project_root), stage / "logs/base/completions", 2
    )
    assert 2 <= done < 4, "the run was not interrupted midway"

    line = one_config_error(winnow("base", "-c", cfg, "--set", "executor.tasks=2", project_root=project_root))
    assert "executor.tasks: 4 → 2" in line and "new output_dir" in line

    result = winnow("base", "-c", cfg, project_root=project_root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming after a run that ended without finishing" in result.stderr  # the killed run's lock record
    assert counts(stage) == counts(clean_run)
    assert rows(stage) == rows(clean_run) and rows(stage, "removed") == rows(clean_run, "removed")
    assert not [p for p in stage.rglob("*.parquet") if p.stat().st_size == 0]


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused_while_the_first_runs(
    tmp_path, shared_data, project_root, clean_run
):
    first_cfg = write_config(tmp_path, shared_data, "run")
    other = write_config(tmp_path, shared_data, "other", dump="CC-MAIN-2099-01")
    other_text = Path(other).read_text().replace(str(tmp_path / "other"), str(tmp_path / "run"))
    Path(other).write_text(other_text)  # a different config, same output_dir
    stage = tmp_path / "run" / "base"

    first = start("base", "-c", first_cfg, project_root=project_root)
    deadline = time.monotonic() + 60
    while not (stage / "fingerprint.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = one_config_error(winnow("base", "-c", other, project_root=project_root))
    assert "in use by another winnow run" in line and f"pid {first.pid}" in line
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    # once the first is over, the other config is still refused: its settings differ
    assert "dump" in one_config_error(winnow("base", "-c", other, project_root=project_root))
    assert counts(stage) == counts(clean_run)
    assert rows(stage) == rows(clean_run) and rows(stage, "removed") == rows(clean_run, "removed")


@pytest.mark.slow
def test_changed_dump_inputs_or_filters_never_rewrite_a_finished_base(tmp_path, shared_data, project_root, clean_run):
    cfg = write_config(tmp_path, shared_data, "run")
    stage = tmp_path / "run" / "base"
    assert winnow("base", "-c", cfg, project_root=project_root).returncode == 0
    before = {p: (stage / p).read_bytes() for p in ("summary.json", "input_files.txt", "fingerprint.json")}
    fewer = f"input.paths=[{shared_data}/warc/pages/pages-00000.warc.gz]"
    for change, named in (
        ("dump=CC-MAIN-2099-01", "dump"),
        (fewer, "input files: 4 files"),
        ("filters.gopher_quality.min_doc_words=80", "filters"),
    ):
        assert named in one_config_error(winnow("base", "-c", cfg, "--set", change, project_root=project_root))
    assert {p: (stage / p).read_bytes() for p in before} == before
    assert rows(stage) == rows(clean_run)
    # the same settings again: skipped as completed, nothing rewritten but the summary (same content)
    assert winnow("base", "-c", cfg, project_root=project_root).returncode == 0
    assert json.loads((stage / "summary.json").read_text()) == json.loads(before["summary.json"])


@pytest.mark.slow
def test_resume_with_a_changed_filter_argument_is_refused(tmp_path, shared_data, project_root):
    cfg = write_config(tmp_path, shared_data, "run")
    stage = tmp_path / "run" / "base"
    done = kill_after_completions(
        start("base", "-c", cfg, project_root=project_root), stage / "logs/base/completions", 1
    )
    assert done < 4
    change = "filters.gopher_quality.min_doc_words=80"
    line = one_config_error(winnow("base", "-c", cfg, "--set", change, "--set", "dump=X", project_root=project_root))
    assert "dump" in line and "filters" in line
    assert not (stage / "summary.json").exists()


def test_lock_held_by_a_live_process_refuses_and_a_dead_ones_is_taken_over(tmp_path):
    stage = tmp_path / "out" / "base"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from winnow.pipelines.guard import stage_lock\n"
            f"with stage_lock(Path({str(stage)!r})):\n    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ConfigError, match=f"in use by another winnow run \\(pid {holder.pid} on "):
        with stage_lock(stage):
            pass
    holder.kill()  # -9: the lock record stays, the flock goes with the process
    holder.wait()
    assert json.loads((stage / ".winnow.lock").read_text())["pid"] == holder.pid
    with stage_lock(stage) as previous:
        assert json.loads((stage / ".winnow.lock").read_text())["pid"] == os.getpid()
    assert previous["pid"] == holder.pid  # taken over, and the caller is told from whom
    assert (stage / ".winnow.lock").read_text() == ""  # released cleanly


def test_a_refused_first_run_leaves_nothing_on_disk(tmp_path, shared_data, project_root):
    # a Slurm config that the executor's checks refuse (a venv without bin/activate, or no Slurm tools here)
    cfg = write_config(tmp_path, shared_data, "run", executor="{kind: slurm, tasks: 2, venv: /nonexistent/venv}")
    line = one_config_error(winnow("base", "-c", cfg, project_root=project_root))
    assert "executor" in line
    assert not (tmp_path / "run").exists()


def test_full_disk_is_one_line_naming_the_path(tmp_path, shared_data, project_root):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk case is not testable")
    try:
        cfg = write_config(tmp_path, shared_data, "disk/run")
        result = winnow("base", "-c", cfg, project_root=project_root)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
        assert lines[0].startswith("winnow: error: No space left on device") and str(disk / "run" / "base") in lines[0]
        assert "Traceback" not in result.stderr
        assert not (disk / "run").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
