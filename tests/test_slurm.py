"""Stages on a real Slurm cluster (scripts/slurm-up.sh): the run folder ends identical to a local run, a failed
task cancels what depends on it, `winnow status` says so, and the same command relaunched finishes the run.

Without a cluster these tests skip (with the reason); CI sets REQUIRE_SLURM=1 after bringing one up, so a missing
or broken cluster fails there instead. The jobs run as root, which reads any file whatever its mode, so an input
"becomes unreadable" by being overwritten with bytes that are not gzip.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datatrove.pipeline.filters import RegexFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from winnow.errors import StageFailed
from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import ConfigError, ExecutorConfig, load_config
from winnow.pipelines.execution import Step, launch
from winnow.pipelines.execution.queue import active_jobs, job_tasks, read_jobs
from winnow.pipelines.status import wait_for_stage

FINEWEB_DOCS = "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz"


# ------------------------------------------------------------------------------------------- the cluster


def find_cluster() -> tuple[str | None, str]:
    """(default partition, why not) of the local cluster. `scontrol ping` first: `sinfo` hangs ~9 s without one."""
    for tool in ("sbatch", "squeue", "sinfo", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            return None, f"{tool} is not on PATH (make slurm-up)"
    try:
        if "is UP" not in subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10).stdout:
            return None, "slurmctld does not answer scontrol ping (make slurm-up)"
        rows = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"asking Slurm failed: {e}"
    usable = [
        p
        for p, state in (r.split() for r in rows.splitlines() if r.strip())
        if state.rstrip("*~#") in ("idle", "mixed", "allocated", "completing")
    ]
    if not usable:
        return None, f"no node takes jobs: {rows.strip()!r}"
    return next((p for p in usable if p.endswith("*")), usable[0]).rstrip("*"), ""


@pytest.fixture(scope="module")
def slurm_partition() -> str:
    partition, why = find_cluster()
    if partition is None:
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(f"REQUIRE_SLURM=1 but there is no usable Slurm cluster: {why}")
        pytest.skip(f"no local Slurm cluster: {why}")
    return partition


def write_config(folder: Path, kind: str, **executor) -> Path:
    """A run config file, as a user writes it; `winnow status -c` reads the same file."""
    path = folder / f"{kind}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "name": "slurmtest",
                "output_dir": str(folder / f"run-{kind}"),
                "executor": {
                    "kind": kind,
                    "tasks": 4,
                    "workers": 2,
                    "time": "00:10:00",
                    "mem_per_cpu_gb": 0.5,
                    **executor,
                },
            }
        )
    )
    return path


def data_files(stage_dir: Path) -> dict[str, object]:
    """What a later stage or a user reads from a stage folder: every file but the logs and the Slurm record,
    decoded (gzip headers carry a time stamp, so compressed bytes differ between two identical runs)."""
    found = {}
    for path in sorted(stage_dir.rglob("*")):
        rel = path.relative_to(stage_dir).as_posix()
        if not path.is_file() or rel.startswith("logs/") or rel == "slurm_jobs.json":
            continue
        if rel == "work/base_files.json":  # dedup's resume guard: recorded at submission only once base is final,
            continue  # so not when dedup is submitted behind a queued base (execution.queue.output_final)
        if rel.endswith(".parquet"):
            found[rel] = pq.read_table(path).to_pylist()
        elif rel.endswith(".gz"):
            found[rel] = gzip.decompress(path.read_bytes()).decode()
        elif rel.endswith(".json"):
            found[rel] = _without_timings(json.loads(path.read_text()))
        elif not rel.endswith(".png"):  # plots: same numbers, but a renderer may stamp metadata
            found[rel] = path.read_bytes()
        else:
            found[rel] = "png"
    return found


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in ("time_stats", "time", "runtime")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


# ------------------------------------------------------------------ a small two-stage run from datatrove blocks
# Stand-ins for the real stages, named like them because the names set the order stages wait for each other in
# (winnow.pipelines.registry). Everything the jobs unpickle is importable there: datatrove blocks and shutil.


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory) -> Path:
    """4 JSONL shards of 15 real FineWeb documents each."""
    folder = tmp_path_factory.mktemp("shards")
    with gzip.open(shared_data / FINEWEB_DOCS, "rt") as f:
        lines = [next(f) for _ in range(60)]
    for i in range(4):
        with gzip.open(folder / f"shard-{i}.jsonl.gz", "wt") as out:
            out.writelines(lines[i * 15 : (i + 1) * 15])
    return folder


def submit_filter_stage(cfg, shards: Path) -> None:
    """Stage "base": a regex filter (removed documents to removed/), then a re-sharding copy."""
    stage = Path(cfg.output_dir) / "base"
    steps = [
        Step(
            "filter",
            [
                JsonlReader(str(shards)),
                RegexFilter(r"\bcourt\b", exclusion_writer=JsonlWriter(str(stage / "removed" / "court"))),
                JsonlWriter(str(stage / "kept")),
            ],
            tasks=4,
        ),
        Step("reshard", [JsonlReader(str(stage / "kept")), JsonlWriter(str(stage))], tasks=2),
    ]
    # finalize runs after every step: it copies the filter step's per-task counters. (Not the merged
    # logs/<step>/stats.json: datatrove's merge_stats job writes another layout than the local executor's.)
    finalize = functools.partial(
        shutil.copytree, str(stage / "logs" / "filter" / "stats"), str(stage / "counters"), dirs_exist_ok=True
    )
    launch(cfg, "base", steps, finalize)


def submit_copy_stage(cfg) -> None:
    """Stage "dedup": reads base/ (top-level files only, as real stages do) and copies it."""
    base, stage = Path(cfg.output_dir) / "base", Path(cfg.output_dir) / "dedup"
    steps = [
        Step(
            "copy",
            [JsonlReader(str(base), glob_pattern="*.jsonl.gz", recursive=False), JsonlWriter(str(stage))],
            tasks=2,
        )
    ]
    launch(cfg, "dedup", steps, None)


@pytest.fixture(scope="module")
def local_run(shards, tmp_path_factory) -> Path:
    """The reference: the same two stages on the local executor."""
    cfg = load_config(write_config(tmp_path_factory.mktemp("local"), "local"), check_inputs=False)
    submit_filter_stage(cfg, shards)
    submit_copy_stage(cfg)
    return Path(cfg.output_dir)


@pytest.mark.slow
def test_chained_stages_on_slurm_match_the_local_run(slurm_partition, shards, local_run, tmp_path, capsys):
    config = write_config(tmp_path, "slurm", partition=slurm_partition)
    cfg = load_config(config, check_inputs=False)

    submit_filter_stage(cfg, shards)
    submit_copy_stage(cfg)  # submitted at once: its job waits for base's final job
    base_jobs, dedup_jobs = read_jobs(Path(cfg.output_dir) / "base"), read_jobs(Path(cfg.output_dir) / "dedup")
    assert dedup_jobs["upstream"] == [base_jobs["final_job"]]
    assert active_jobs(dedup_jobs), "launch waits for nothing: the jobs are still queued when it returns"
    script = (Path(cfg.output_dir) / "base/logs/filter/launch_script.slurm").read_text()
    assert f"source {Path(sys.prefix).resolve()}/bin/activate" in script  # the venv winnow runs from

    wait_for_stage(cfg, "base")
    wait_for_stage(cfg, "dedup")
    for stage in ("base", "dedup"):
        assert data_files(Path(cfg.output_dir) / stage) == data_files(local_run / stage), stage
    kept = data_files(Path(cfg.output_dir) / "base")
    assert "counters/00003.json" in kept and any(k.startswith("removed/court/") for k in kept)

    capsys.readouterr()
    assert winnow(["status", "-c", str(config)]) == 0
    report = capsys.readouterr().out
    assert "base: finished" in report and "filter       4/4 done" in report and "dedup: finished" in report


@pytest.mark.slow
def test_failed_task_cancels_dependents_and_a_relaunch_finishes(slurm_partition, shards, local_run, tmp_path, capsys):
    config = write_config(tmp_path, "slurm", partition=slurm_partition)  # workers: 2
    cfg = load_config(config, check_inputs=False)
    shard, good = shards / "shard-3.jsonl.gz", (shards / "shard-3.jsonl.gz").read_bytes()
    try:
        submit_filter_stage(cfg, shards)
        shard.write_bytes(b"this is not gzip")  # rank 3 starts once rank 0 or 1 has finished, well after this
        submit_copy_stage(cfg)
        with pytest.raises(StageFailed):  # the same command again while its jobs are queued would run tasks twice
            submit_filter_stage(cfg, shards)

        with pytest.raises(StageFailed, match="FAILED"):
            wait_for_stage(cfg, "base")
        deadline = time.monotonic() + 60
        while active_jobs(read_jobs(Path(cfg.output_dir) / "dedup")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not active_jobs(read_jobs(Path(cfg.output_dir) / "dedup")), "dedup still queued after base failed"
    finally:
        shard.write_bytes(good)  # the fix (the local reference run read the same, intact file)

    capsys.readouterr()
    winnow(["status", "-c", str(config)])
    report = capsys.readouterr().out
    assert "base: FAILED" in report
    assert "filter       3/4 done, 1 failed" in report
    assert "Not a gzipped file" in report  # the tail of the failed task's log
    assert "dedup: incomplete" in report and "copy         0/2 done, 2 cancelled" in report
    assert f"relaunch (runs only the missing tasks): winnow base -c {config}" in report

    with pytest.raises(StageFailed):  # dedup alone would read an incomplete base: relaunch base first
        submit_copy_stage(cfg)
    submit_filter_stage(cfg, shards)  # the same commands again
    submit_copy_stage(cfg)
    assert json.loads((Path(cfg.output_dir) / "base/logs/filter/ranks_to_run.json").read_text()) == [3]
    wait_for_stage(cfg, "base")
    wait_for_stage(cfg, "dedup")
    for stage in ("base", "dedup"):
        assert data_files(Path(cfg.output_dir) / stage) == data_files(local_run / stage), stage


# ------------------------------------------------------------------------------ the real base and dedup stages


@pytest.fixture(scope="module")
def fineweb_run(shared_data, tmp_path_factory) -> dict:
    """A run config over 2 JSONL shards of real FineWeb documents, the second repeating 5 of the first (so dedup
    removes something), and the reference: `winnow base` + `winnow dedup` with the local executor."""
    folder = tmp_path_factory.mktemp("fineweb")
    with gzip.open(shared_data / FINEWEB_DOCS, "rt") as f:
        lines = [next(f) for _ in range(40)]
    (folder / "input").mkdir()
    (folder / "input" / "a.jsonl").write_text("".join(lines[:20]))
    (folder / "input" / "b.jsonl").write_text("".join(lines[20:] + lines[3:8]))
    config = folder / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "slurmtest",
                "output_dir": str(folder / "run-slurm"),
                "input": {"paths": [str(folder / "input" / "*.jsonl")], "format": "jsonl"},
                "executor": {"kind": "slurm", "tasks": 2, "workers": 2, "time": "00:10:00", "mem_per_cpu_gb": 1.5},
                "filters": {"language": {"languages": ["en"], "language_threshold": 0.65}},
                "dedup": {"minhash": {"num_buckets": 2}},
            }
        )
    )
    local = ["--set", "executor.kind=local", "--set", f"output_dir={folder / 'run-local'}"]
    assert winnow(["base", "-c", str(config), *local]) == 0
    assert winnow(["dedup", "-c", str(config), *local]) == 0
    return {"config": str(config), "slurm": folder / "run-slurm", "local": folder / "run-local"}


@pytest.mark.slow
def test_base_and_dedup_on_slurm_survive_a_killed_task_and_match_the_local_run(slurm_partition, fineweb_run, capsys):
    config, out = fineweb_run["config"], fineweb_run["slurm"]
    cfg = load_config(config)
    assert winnow(["base", "-c", config]) == 0  # returns once submitted
    assert winnow(["dedup", "-c", config]) == 0  # submitted at once, waiting for base's final job
    job = read_jobs(out / "base")["steps"][0]["job_id"]
    task_log, deadline = out / "base/logs/base/logs/task_00000.log", time.monotonic() + 120
    while not task_log.is_file() and time.monotonic() < deadline:  # datatrove has started task 0
        time.sleep(0.1)
    assert job_tasks(job)["0"][0] == "RUNNING"
    subprocess.run(["scancel", f"{job}_0"], check=True)  # kill task 0 mid-run; task 1 goes on
    dedup = read_jobs(out / "dedup")
    assert dedup["upstream"] == [read_jobs(out / "base")["final_job"]] and len(dedup["steps"]) == 5

    with pytest.raises(StageFailed, match="CANCELLED"):
        wait_for_stage(cfg, "base")
    deadline = time.monotonic() + 60
    while active_jobs(read_jobs(out / "dedup")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not active_jobs(read_jobs(out / "dedup")), "dedup still queued after base failed"
    assert not (out / "dedup" / "summary.json").exists()

    capsys.readouterr()
    winnow(["status", "-c", config])
    report = capsys.readouterr().out
    assert "base: FAILED" in report and "base         1/2 done, 1 failed" in report
    assert f"task 0 (job {job}_0, CANCELLED):" in report and "CANCELLED AT" in report  # Slurm's own word on it
    assert "dedup: incomplete" in report and "signatures   0/2 done, 2 cancelled" in report
    assert f"winnow base -c {config}" in report and f"winnow dedup -c {config}" in report

    assert winnow(["base", "-c", config]) == 0  # the same commands again: only task 0 of base runs
    assert winnow(["dedup", "-c", config]) == 0
    wait_for_stage(cfg, "base")
    wait_for_stage(cfg, "dedup", timeout=400)
    assert json.loads((out / "base/logs/base/ranks_to_run.json").read_text()) == [0]
    for stage in ("base", "dedup"):
        assert data_files(out / stage) == data_files(fineweb_run["local"] / stage), stage
    summary = json.loads((out / "dedup" / "summary.json").read_text())
    assert summary["removed"].get("exact_duplicate", 0) > 0  # the repeated documents went


# ----------------------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    "field, value",
    [
        ("partition", "debug\nrm -rf /"),
        ("partition", "debug;id"),
        ("time", "1 hour"),
        ("time", "10:00; id"),
        ("qos", "$(id)"),
        ("sbatch_args", {"account": "a b"}),
        ("sbatch_args", {"x;id": "1"}),
        ("venv", "/tmp/v env"),
    ],
)
def test_values_that_reach_sbatch_cannot_carry_shell(field, value, tmp_path):
    config = write_config(tmp_path, "slurm", **{field: value})
    with pytest.raises(ConfigError) as err:
        load_config(config, check_inputs=False)
    assert len(str(err.value).splitlines()) == 1 and f"executor.{field}" in str(err.value)


def test_slurm_time_formats_are_accepted():
    for limit in ("30", "30:00", "04:00:00", "2-00", "2-12:00", "2-12:00:00", "UNLIMITED"):
        assert ExecutorConfig(time=limit).time == limit


@pytest.mark.parametrize(
    "executor, error",
    [
        ({"partition": "no_such_partition"}, "executor: Slurm refuses the job .*invalid partition"),
        # scripts/slurm-up.sh makes a partition "short" with a 5-minute limit
        ({"partition": "short", "time": "01:00:00"}, "executor.time: 01:00:00 is longer than the partition allows"),
        ({"venv": "/no/such/venv"}, "executor.venv: /no/such/venv has no bin/activate"),
    ],
)
def test_a_partition_or_time_the_cluster_refuses_is_one_clear_line(slurm_partition, shards, tmp_path, executor, error):
    cfg = load_config(write_config(tmp_path, "slurm", **executor), check_inputs=False)
    with pytest.raises(ConfigError, match=error) as err:
        submit_filter_stage(cfg, shards)
    assert len(str(err.value).splitlines()) == 1
    assert not (Path(cfg.output_dir) / "base" / "slurm_jobs.json").exists()  # nothing was submitted
