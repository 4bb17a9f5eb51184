"""Stages on a real Ray head (scripts/ray-up.sh): `winnow base` and `winnow dedup` with `executor.kind: ray` leave
the run folder a local run leaves, a relaunch runs only the missing tasks, a failed task is a StageFailed naming its
error; `make ray-up` / `make ray-down` start and stop only their own processes; no cluster is a one-line
config error.

The tests that need a head skip without one (with the reason); CI sets REQUIRE_RAY=1 after `make ray-up`, so a
missing or broken head fails there instead.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from winnow.errors import ConfigError, StageFailed
from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import load_config
from winnow.pipelines.execution import Step, launch
from winnow.pipelines.execution.ray import _answers, connect, ray_address

pytestmark = [
    pytest.mark.ray,
    # datatrove's Ray executor still passes placement_group= to .options() (Ray 2.60 deprecates it)
    pytest.mark.filterwarnings(r"ignore:placement_group\w* parameter is deprecated:DeprecationWarning"),
]
SHARDS = ["pages-00000.warc.gz", "pages-00001.warc.gz"]  # 500 pages
FINEWEB_DOCS = "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz"


def unavailable(why: str):
    if os.environ.get("REQUIRE_RAY") == "1":
        pytest.fail(f"REQUIRE_RAY=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def ray_installed() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="module")
def ray_head(ray_installed) -> str:
    """The address winnow connects to with `executor.ray_address: auto`, when a head answers there."""
    address, origin = ray_address("auto")
    if address == "auto":
        unavailable("no Ray head: RAY_ADDRESS is unset and make ray-up has not started one")
    if not _answers(address):
        unavailable(f"no Ray head answers at {address} ({origin}; make ray-up)")
    return address


def write_config(folder: Path, shared_data: Path, kind: str, **executor) -> Path:
    """The same run config in each folder but for the executor; `output_dir` is relative (to the folder winnow
    runs in), as in configs/demo.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "raytest",
                "output_dir": "run",
                "dump": "CC-MAIN-2024-10",
                "input": {"paths": [str(shared_data / "warc" / "pages" / s) for s in SHARDS], "format": "warc"},
                "executor": {"kind": kind, "tasks": 2, "workers": 2, "mem_per_cpu_gb": 1, **executor},
                "extract": {"extractor": "resiliparse"},
                "dedup": {"minhash": {"num_buckets": 2}},  # 2 bucket tasks instead of 14: each Ray task starts a worker
            }
        )
    )
    return path


def run_winnow(stage: str, folder: Path) -> subprocess.CompletedProcess:
    """`winnow <stage> -c run.yaml` in `folder`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "winnow.pipelines.cli", stage, "-c", "run.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )


def outputs(stage_dir: Path) -> dict[str, object]:
    """What a later stage or a user reads from a stage folder: every file but the logs, Parquet decoded."""
    found = {}
    for path in sorted(stage_dir.rglob("*")):
        rel = path.relative_to(stage_dir).as_posix()
        if not path.is_file() or rel.startswith("logs/"):
            continue
        if rel.endswith(".parquet"):
            found[rel] = pq.read_table(path).to_pylist()
        elif rel.endswith(".png"):  # the same numbers; a renderer may stamp metadata
            found[rel] = "png"
        else:
            found[rel] = path.read_bytes()
    return found


def rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def total(counts: int | dict) -> int:
    """summary.json's removed counts: per folder, a number (dedup) or a number per filter reason (base)."""
    return counts if isinstance(counts, int) else sum(total(c) for c in counts.values())


def removed(stage_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Per reason folder under removed/: the (id, filter_reason) of each removed document."""
    return {
        d.name: sorted((r["id"], r["filter_reason"]) for r in rows(d))
        for d in sorted((stage_dir / "removed").iterdir())
    }


# ---------------------------------------------------------------------- base and dedup: Ray against local


@pytest.fixture(scope="module")
def local_run(shared_data, tmp_path_factory) -> Path:
    """The reference: `winnow base` + `winnow dedup` on the local executor."""
    folder = tmp_path_factory.mktemp("local")
    write_config(folder, shared_data, "local")
    for stage in ("base", "dedup"):
        done = run_winnow(stage, folder)
        assert done.returncode == 0, done.stderr[-2000:]
    return folder / "run"


@pytest.fixture(scope="module")
def ray_run(ray_head, shared_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray")
    write_config(folder, shared_data, "ray")
    for stage in ("base", "dedup"):
        done = run_winnow(stage, folder)
        assert done.returncode == 0, done.stderr[-2000:]
    return folder / "run"


@pytest.mark.slow
def test_base_and_dedup_on_ray_match_the_local_run(local_run, ray_run):
    for stage in ("base", "dedup"):
        assert outputs(ray_run / stage) == outputs(local_run / stage), stage  # every file but the logs
        summary_ray, summary_local = (
            json.loads((run / stage / "summary.json").read_text()) for run in (ray_run, local_run)
        )
        for key in ("read", "kept", "removed", "failed", "skipped"):
            assert summary_ray[key] == summary_local[key], (stage, key)
        kept = [r["id"] for r in rows(ray_run / stage)]
        assert kept and kept == [r["id"] for r in rows(local_run / stage)]
        assert removed(ray_run / stage) == removed(local_run / stage)
        assert summary_ray["kept"] == len(kept)
        assert {k: total(v) for k, v in summary_ray["removed"].items()} == {
            k: len(v) for k, v in removed(ray_run / stage).items()
        }
    base = json.loads((ray_run / "base" / "summary.json").read_text())
    assert base["read"] == 500 and total(base["removed"]["language"]) > 0  # real pages, real filtering
    assert json.loads((ray_run / "dedup" / "summary.json").read_text())["read"] == base["kept"]
    # datatrove's own records, as a local run leaves them: one completion and one stats file per task
    for step in ("base/logs/base", "dedup/logs/signatures", "dedup/logs/filter"):
        assert sorted(p.name for p in (ray_run / step / "completions").iterdir()) == ["00000", "00001"]
        assert len(list((ray_run / step / "stats").iterdir())) == 2
        assert json.loads((ray_run / step / "executor.json").read_text())["cpus_per_task"] == 1


def workers_in(folder: Path) -> list[int]:
    """Pids of the Ray workers running tasks of a run started in `folder` (EnterFolder moved them there)."""
    pids = []
    for pid, (name, _, _) in processes().items():
        try:
            if name.startswith("ray::") and os.readlink(f"/proc/{pid}/cwd") == str(folder):
                pids.append(pid)
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_killed_winnow_stops_its_ray_tasks_and_a_relaunch_runs_only_the_missing_one(
    ray_head, local_run, shared_data, tmp_path
):
    write_config(tmp_path, shared_data, "ray", workers=1)  # one task after the other
    done = tmp_path / "run" / "base" / "logs" / "base" / "completions"
    winnow_base = subprocess.Popen(
        [sys.executable, "-m", "winnow.pipelines.cli", "base", "-c", "run.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while winnow_base.poll() is None and time.monotonic() < deadline:  # task 0 done and task 1 running
        if done.is_dir() and any(done.iterdir()) and workers_in(tmp_path):
            break
        time.sleep(0.05)
    assert winnow_base.poll() is None and workers_in(tmp_path), "the run was not caught with task 1 running"
    winnow_base.kill()  # SIGKILL: nothing of winnow's own cleanup runs
    winnow_base.wait()
    deadline = time.monotonic() + 30
    while workers_in(tmp_path) and time.monotonic() < deadline:  # Ray ends a job's workers when its driver goes
        time.sleep(0.2)
    assert not workers_in(tmp_path), "Ray workers of the killed run still run"
    assert sorted(p.name for p in done.iterdir()) == ["00000"]
    kept_mtime = (done / "00000").stat().st_mtime_ns

    relaunch = run_winnow("base", tmp_path)
    assert relaunch.returncode == 0, relaunch.stderr[-2000:]
    assert "Will run pipeline on 1 incomplete ranks out of 2 total" in relaunch.stderr
    assert (done / "00000").stat().st_mtime_ns == kept_mtime  # task 0 was not run again
    assert outputs(tmp_path / "run" / "base") == outputs(local_run / "base")


def test_a_failed_task_on_ray_is_a_stage_failure_naming_its_error(ray_head, shared_data, tmp_path):
    cfg = load_config(write_config(tmp_path, shared_data, "ray"), check_inputs=False)
    cfg.output_dir = str(tmp_path / "run")
    shards = tmp_path / "shards"
    shards.mkdir()
    with gzip.open(shared_data / FINEWEB_DOCS, "rt") as f:
        docs = "".join(next(f) for _ in range(5))
    (shards / "a.jsonl").write_text(docs)
    (shards / "b.jsonl.gz").write_bytes(gzip.compress(docs.encode())[:-100])  # a shard cut short in transfer
    step = Step("copy", [JsonlReader(str(shards)), JsonlWriter(str(tmp_path / "run" / "copy"))], tasks=2)

    with pytest.raises(StageFailed, match=r"copy/copy: 1 of 2 tasks failed \(task 1: EOFError: Compressed file ended"):
        launch(cfg, "copy", [step])
    assert (tmp_path / "run" / "copy" / "logs" / "copy" / "completions" / "00000").is_file()


def test_a_task_larger_than_any_node_is_a_config_error(ray_head, shared_data, tmp_path):
    cfg = load_config(write_config(tmp_path, shared_data, "ray", mem_per_cpu_gb=100000), check_inputs=False)
    step = Step("copy", [JsonlReader(str(tmp_path / "none"))], tasks=1)
    with pytest.raises(ConfigError, match="asks 1 CPUs and 100000 GB .* no node of the cluster has that much"):
        launch(cfg, "copy", [step])  # instead of waiting forever for a placement group


# ------------------------------------------------------------------------------------- no cluster, no ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_cluster_is_a_one_line_config_error(ray_installed, shared_data, tmp_path, capsys):
    port = free_port()
    config = write_config(tmp_path, shared_data, "ray", ray_address=f"127.0.0.1:{port}")
    assert winnow(["base", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"winnow: config error: {config}: executor.kind is ray but no Ray cluster answers at 127.0.0.1:{port} "
        "(executor.ray_address); start one: make ray-up, or set executor.ray_address"
    )


def test_auto_reads_ray_address_then_the_head_of_ray_up(monkeypatch, tmp_path):
    monkeypatch.setenv("WINNOW_RAY_ROOT", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address("auto") == ("auto", "Ray's lookup of a local head")
    (tmp_path / "ray_current_cluster").write_text("10.0.0.7:6380")  # what `ray start --temp-dir` records
    assert ray_address("auto") == ("10.0.0.7:6380", f"the head of make ray-up, {tmp_path / 'ray_current_cluster'}")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.8:6379")
    assert ray_address("auto") == ("10.0.0.8:6379", "RAY_ADDRESS")
    assert ray_address("10.0.0.9:6379") == ("10.0.0.9:6379", "executor.ray_address")  # the config wins


def test_without_ray_installed_it_is_a_config_error(monkeypatch, shared_data, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    cfg = load_config(write_config(tmp_path, shared_data, "ray"), check_inputs=False)
    with pytest.raises(ConfigError, match=r"executor.kind is ray but ray is not installed \(pip install"):
        connect(cfg)


# ------------------------------------------------------------------------------- make ray-up / make ray-down


def processes() -> dict[int, tuple[str, int, int]]:
    """Every live process: pid → (name, session id, start time). The start time tells a reused pid apart."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(stat.parent.name)] = (name, int(fields[3]), int(fields[19]))
    return found


def test_ray_up_then_ray_down_leaves_nothing_it_started(ray_installed, project_root):
    root = Path(tempfile.mkdtemp(prefix="wr", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    env = {**os.environ, "WINNOW_RAY_ROOT": str(root), "WINNOW_RAY_PORT": str(port), "WINNOW_RAY_CPUS": "1"}
    make = ["make", "--no-print-directory", "-C", str(project_root)]
    others = {pid: p for pid, p in processes().items() if p[0] in ("gcs_server", "raylet")}  # e.g. CI's head
    try:
        up = subprocess.run([*make, "ray-up"], env=env, capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stderr[-2000:]
        sid = int((root / "winnow-ray.sid").read_text())
        ours = {pid: p for pid, p in processes().items() if p[1] == sid}
        assert {"gcs_server", "raylet"} <= {p[0] for p in ours.values()}
        address = (root / "ray_current_cluster").read_text().strip()
        assert address.endswith(f":{port}") and _answers(address)

        again = subprocess.run([*make, "ray-up"], env=env, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0 and "already up" in again.stderr
        assert int((root / "winnow-ray.sid").read_text()) == sid

        down = subprocess.run([*make, "ray-down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr[-2000:]
        now = processes()
        assert not [pid for pid, p in now.items() if p[1] == sid], "a process of the head's session is left"
        assert not [pid for pid, p in ours.items() if now.get(pid) == p], "a process ray-up started is left"
        assert all(now.get(pid) == p for pid, p in others.items()), "ray-down stopped a Ray head it did not start"
        assert not (root / "ray_current_cluster").exists() and not _answers(address)

        twice = subprocess.run([*make, "ray-down"], env=env, capture_output=True, text=True, timeout=60)
        assert twice.returncode == 0 and "nothing to stop" in twice.stderr
    finally:
        subprocess.run([*make, "ray-down"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
