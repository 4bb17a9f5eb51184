"""The whole recipe as one Slurm job graph (`winnow run` with executor.kind slurm) on the live local cluster.

One small config (2 WARC shards, a 10-document annotation with the embedded SmolLM2 server started inside its
job, fastText classifier on the shared Llama-3 labels, a tiny ablation) runs twice: with the local executor, and
submitted as a graph. During the Slurm run the annotate job is killed: everything downstream is cancelled,
`winnow status` says so, and `winnow run` again completes the graph. Then every stage's output must equal the
local run's: kept ids and rows, removed reasons, annotation scores, document scores, subsets, ablation losses.

Needs the cluster of `make slurm-up`; skipped without it unless REQUIRE_SLURM=1 (CI), like tests/test_slurm.py.
"""

import glob
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

from winnow.pipelines.execution.queue import read_jobs
from winnow.pipelines.summary import check_invariant


def cluster_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode == 0


if not cluster_up():
    if os.environ.get("REQUIRE_SLURM") == "1":
        pytest.fail("REQUIRE_SLURM=1 but no Slurm cluster answers (make slurm-up)", pytrace=False)
    pytest.skip(
        "no local Slurm cluster: slurmctld does not answer scontrol ping (make slurm-up)", allow_module_level=True
    )

STAGES = ["base", "dedup", "annotate", "classifier", "score", "subsets", "ablate", "report"]


def config(root: Path, shared_data: Path, kind: str) -> Path:
    labels = shared_data / "annotations" / "fineweb-edu-llama3"
    out = root / kind
    data = {
        "name": f"graph-{kind}",
        "output_dir": str(out),
        "input": {"paths": [f"{shared_data}/warc/pages/pages-0000[0-1].warc.gz"], "format": "warc"},
        "executor": {"kind": kind, "tasks": 2, "workers": 2, "time": "00:30:00", "mem_per_cpu_gb": 2},
        "extract": {"extractor": "resiliparse"},
        "annotate": {"n_documents": 10, "checkpoint_every": 2},
        "annotator": {"threads": 1},
        "classifier": {
            "backbone": "fasttext",
            "labels": str(labels / "train.jsonl.gz"),
            "eval_labels": str(labels / "val.jsonl.gz"),
            "learning_curve": [1.0],
            "calibration_folds": 2,
            "cv_folds": 2,
        },
        "subsets": {"thresholds": [1, 2]},
        "ablate": {
            "ablations": [
                {"name": "all", "data": str(out / "subsets" / "all")},
                {"name": "edu-1", "data": str(out / "subsets" / "edu-1")},
            ],
            "model_overrides": {
                "n_layer": 1,
                "d_model": 32,
                "n_head": 2,
                "d_ffn": 64,
                "context_length": 64,
                "corpus_vocab_size": 512,
            },
            "tokens": 10 * 4 * 64,
            "batch_size": 4,
            "eval_every": 5,
            "seeds": [0],
            "tasks": ["arc_easy", "piqa"],
            "eval_limit": 4,
            "wikitext_articles": 1,
            "benchmarks_dir": str(shared_data / "benchmarks"),
        },
        # the annotate job gets its own resources: the embedded server's threads (a per-stage override)
        "stages": {"annotate": {"executor": {"cpus_per_task": 1, "mem_per_cpu_gb": 4}}},
    }
    path = root / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def winnow(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "winnow.pipelines.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    fields = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
    return fields.get("JobState", "GONE")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def queue_empty(name: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    return not any(line.startswith(f"winnow.{name}.") for line in out.splitlines())


def table_rows(folder: Path, columns: list[str] | None = None) -> list[str]:
    rows = []
    for f in sorted(glob.glob(str(folder / "*.parquet"))):
        table = pq.read_table(f)
        keep = [c for c in (columns or table.column_names) if c in table.column_names]
        rows += [json.dumps(r, sort_keys=True, default=str) for r in table.select(keep).to_pylist()]
    return sorted(rows)


def published(out: Path) -> dict:
    """What each stage publishes, with run-specific paths left out."""
    doc = ["id", "text", "url", "dump", "token_count", "language", "language_score"]
    result = {
        "base": table_rows(out / "base", doc),
        "base/removed": sorted(
            r for d in (out / "base" / "removed").iterdir() for r in table_rows(d, ["id", "filter_reason"])
        ),
        "dedup": table_rows(out / "dedup", [*doc, "minhash_cluster_size"]),
        "annotate": table_rows(out / "annotate", ["id", "score", "score_expected"]),
        "score": table_rows(out / "score", ["id", "score", "int_score"]),
    }
    for sub in sorted(p.name for p in (out / "subsets").iterdir() if p.is_dir()):
        result[f"subsets/{sub}"] = table_rows(out / "subsets" / sub, ["id", "int_score"])
    for metrics in sorted((out / "ablate").glob("*/seed-*/metrics.jsonl")):
        losses = [json.loads(line).get("loss") for line in metrics.read_text().splitlines()]
        result[str(metrics.relative_to(out))] = [round(x, 5) for x in losses if x is not None]
    for stage in ("base", "dedup", "score"):
        summary = json.loads((out / stage / "summary.json").read_text())
        result[f"{stage}/counts"] = [summary["read"], summary["kept"], summary["removed"], summary["failed"]]
    return result


@pytest.mark.slow
def test_the_whole_recipe_as_one_slurm_graph_equals_the_local_run(tmp_path, shared_data, project_root):
    local_cfg = config(tmp_path, shared_data, "local")
    result = winnow("run", "-c", str(local_cfg), cwd=project_root)
    assert result.returncode == 0, result.stderr[-3000:]
    local = published(tmp_path / "local")

    slurm_cfg = config(tmp_path, shared_data, "slurm")
    out = tmp_path / "slurm"
    result = winnow("run", "-c", str(slurm_cfg), cwd=project_root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {s: read_jobs(out / s) for s in STAGES}
    assert all(records[s] for s in STAGES), "every stage is queued at once"
    assert records["annotate"]["mode"] == "job" and records["base"].get("mode") != "job"
    # each stage waits on its upstream's final jobs (afterok): the graph's edges
    for i, stage in enumerate(STAGES[1:], 1):
        assert records[STAGES[i - 1]]["final_job"] in records[stage]["upstream"], stage
    assert "#SBATCH --mem-per-cpu=4096M" in (out / "annotate" / "logs" / "job" / "job.sh").read_text()

    # kill the annotate job while it runs (its embedded server started inside it): downstream is cancelled
    annotate_job = records["annotate"]["final_job"]
    wait_for(lambda: job_state(annotate_job) == "RUNNING", 600, "the annotate job to start")
    time.sleep(5)
    subprocess.run(["scancel", "--signal=KILL", "--full", annotate_job], check=True)
    wait_for(lambda: job_state(annotate_job) in ("FAILED", "CANCELLED", "GONE"), 120, "the annotate job to end")
    wait_for(lambda: queue_empty("graph-slurm"), 120, "downstream jobs to be cancelled")
    status = winnow("status", "-c", str(slurm_cfg), cwd=project_root, timeout=120)
    assert "annotate: FAILED" in status.stdout, status.stdout
    for stage in STAGES[3:]:
        assert f"{stage}: incomplete" in status.stdout, status.stdout
    assert "cancelled" in status.stdout and f"winnow run -c {slurm_cfg}" in status.stdout
    assert not (out / "annotate" / "summary.json").exists()

    # the relaunch resubmits only what is unfinished
    result = winnow("run", "-c", str(slurm_cfg), cwd=project_root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "base finished: skipped" in result.stderr and "dedup finished: skipped" in result.stderr
    wait_for(lambda: queue_empty("graph-slurm"), 900, "the relaunched graph to finish")
    status = winnow("status", "-c", str(slurm_cfg), cwd=project_root, timeout=120)
    for stage in STAGES:
        assert f"{stage}: finished" in status.stdout, status.stdout
    assert (out / "report" / "index.html").is_file()
    # annotation as a cluster job: the embedded server started inside the job, every requested document accounted
    annotated = json.loads((out / "annotate" / "summary.json").read_text())
    assert annotated["read"] == 10
    check_invariant(annotated)  # read = kept + removed + failed
    assert published(out) == local
