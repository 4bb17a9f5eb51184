"""The shipped presets load and every stage builds its pipeline from them, without running anything.

configs/fineweb-cc-dump.yaml points at cluster paths (WARC files, a GPU endpoint, model folders) that do not
exist here; the test swaps only the run folder and the input files for real local ones, builds each stage's
datatrove steps, and for Slurm writes the sbatch scripts the cluster would get (nothing is submitted).
"""

import pytest

from winnow.pipelines.config import load_config
from winnow.pipelines.stages import ablate, annotate, base, dedup, score, subsets


def cluster_preset(tmp_path, shared_data, *extra):
    overrides = [f"output_dir={tmp_path / 'run'}", f"input.paths={shared_data}/warc/pages/pages-00000.warc.gz", *extra]
    return load_config("configs/fineweb-cc-dump.yaml", overrides, check_inputs=True)


def test_cluster_preset_has_finewebs_task_counts_and_resources(tmp_path, shared_data):
    cfg = cluster_preset(tmp_path, shared_data)
    assert (cfg.executor.kind, cfg.executor.tasks, cfg.executor.time, cfg.executor.mem_per_cpu_gb) == (
        "slurm",
        8000,
        "10:00:00",
        2,
    )
    assert (cfg.dedup.tasks, cfg.dedup.minhash.num_buckets, cfg.dedup.bucket_workers) == (1000, 14, 50)
    assert (cfg.score.device, cfg.classifier.device, cfg.annotator.kind) == ("cuda", "cuda", "endpoint")
    assert (cfg.ablate.preset, cfg.ablate.tokens) == ("fineweb-1.8b", 28_000_000_000)


def test_every_stage_builds_from_the_cluster_preset(tmp_path, shared_data):
    cfg = cluster_preset(tmp_path, shared_data)

    pipeline, roles = base.build_pipeline(cfg)
    fineweb_order = [
        "reader",
        "url",
        "extractor",
        "language",
        "gopher_repetition",
        "gopher_quality",
        "c4_quality",
        "fineweb_quality",
        "pii",
        "token_count",
        "writer",
    ]
    assert [name for _, name in roles if name in fineweb_order] == fineweb_order  # FineWeb's blocks, in its order
    assert len(pipeline) == len(roles)

    steps = {s.name: s.tasks for s in dedup.build_steps(cfg)}
    assert steps == {"signatures": 1000, "buckets": 14 * 50, "exact_buckets": 50, "clusters": 1, "filter": 1000}

    runner = annotate.build_runner(cfg, annotate.annotations_dir(cfg))
    assert runner.config.endpoint_url == "http://llm-gpu-node:8000/v1"
    assert runner.config.max_concurrent_documents == 64

    from datatrove.pipeline.readers import ParquetReader

    reader = ParquetReader(str(cfg.stage_dir("dedup")), glob_pattern="*.parquet", recursive=False)
    (scoring,) = score.scoring_steps(
        [("parquet", reader)], cfg.stage_dir("score"), "/models/classifier", cfg, cfg.score.tasks
    )
    scorer = scoring.pipeline[1]
    assert (scoring.tasks, scorer.device, scorer.batch_size) == (256, "cuda", 512)

    step = subsets.subset_step(cfg.stage_dir("score"), cfg.stage_dir("subsets"), cfg.subsets.thresholds, 100)
    assert sorted(step.pipeline[1].writers) == ["all", "edu-2", "edu-3"]


def test_the_ablation_preset_is_finewebs_1_8b_model(tmp_path, shared_data):
    from winnow.proxy.model import preset

    cfg = cluster_preset(tmp_path, shared_data)
    model = preset(cfg.ablate.preset)
    assert (model.n_layer, model.d_model, model.n_head, model.d_ffn, model.context_length) == (24, 2048, 32, 8192, 2048)
    train = ablate.train_config(cfg.ablate, tmp_path / "tokens", tmp_path / "tokenizer.json", tmp_path / "seed-0", 0)
    assert (train.preset, train.tokens, train.batch_size, train.device) == (
        "fineweb-1.8b",
        28_000_000_000,
        1024,
        "cuda",
    )
    # ~2M tokens per optimiser step, as FineWeb's ablations
    assert train.batch_size * model.context_length == pytest.approx(2_000_000, rel=0.1)


def test_cluster_preset_writes_finewebs_sbatch_scripts(tmp_path, shared_data):
    """The array job for the base stage, as Slurm would receive it (built, not submitted)."""
    from winnow.pipelines.execution.slurm import _executor

    cfg = cluster_preset(tmp_path, shared_data)
    pipeline, _ = base.build_pipeline(cfg)
    executor = _executor(cfg, "base", "base", pipeline, cfg.executor.tasks, -1, {}, cfg.executor.partition, None)
    script = executor.get_launch_file_contents(executor.get_sbatch_args(), "echo run")
    assert executor.world_size == 8000  # the array's size is set at submission, from the tasks not yet completed
    for line in (
        "#SBATCH --time=10:00:00",
        "#SBATCH --mem-per-cpu=2048M",
        "#SBATCH --partition=cpu",
        "#SBATCH --cpus-per-task=1",
    ):
        assert line in script, line
    assert "source /opt/winnow/.venv/bin/activate" in script

    gpu = cluster_preset(tmp_path, shared_data, "executor.partition=gpu", "executor.sbatch_args.gres=gpu:1")
    reader_steps = score.scoring_steps(
        [("parquet", pipeline[0])], gpu.stage_dir("score"), "/models/classifier", gpu, gpu.score.tasks
    )
    executor = _executor(gpu, "score", "score", reader_steps[0].pipeline, 256, -1, {}, "gpu", None)
    script = executor.get_launch_file_contents(executor.get_sbatch_args(), "echo run")
    assert executor.world_size == 256
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --partition=gpu" in script


def test_demo_preset_builds_every_stage(tmp_path, shared_data):
    cfg = load_config("configs/demo.yaml", [f"output_dir={tmp_path / 'run'}"])
    assert cfg.executor.kind == "local" and cfg.input.files()
    pipeline, roles = base.build_pipeline(cfg)
    assert ("extractor", "extractor") in roles and roles[-1] == ("writer", "writer")
    assert {s.name for s in dedup.build_steps(cfg)} >= {"signatures", "clusters", "filter"}
    runner = annotate.build_runner(cfg, annotate.annotations_dir(cfg))
    assert runner.config.max_concurrent_documents == 1  # the embedded server answers one request at a time
    assert [a.name for a in cfg.ablate.ablations] and cfg.ablate.preset == "cpu-tiny"
    train = ablate.train_config(cfg.ablate, tmp_path / "tokens", tmp_path / "tok.json", tmp_path / "s", 0)
    assert train.device == "auto" and train.tokens == cfg.ablate.tokens


def test_the_cluster_presets_whole_graph_as_sbatch_would_get_it(tmp_path, shared_data, project_root):
    """`winnow run --dry-run` on the preset: every job's resources and every dependency edge, nothing submitted."""
    import re
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable, "-m", "winnow.pipelines.cli", "run", "-c", "configs/fineweb-cc-dump.yaml", "--dry-run",
            "--set", f"output_dir={tmp_path / 'run'}",
            "--set", f"input.paths={shared_data}/warc/pages/pages-00000.warc.gz",
        ],
        cwd=project_root, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sandbox = tmp_path / "run.dry-run"
    assert not (tmp_path / "run").exists()  # the dry run writes only into its sandbox

    def sbatch(stage: str, step: str) -> dict:
        folder = sandbox / stage / "logs" / step
        script = folder / ("job.sh" if step == "job" else "launch_script.sh")
        lines = script.read_text().splitlines()
        return dict(ln.removeprefix("#SBATCH --").partition("=")[::2] for ln in lines if ln.startswith("#SBATCH --"))

    def after(args: dict) -> set[str]:
        return {re.sub(r"^dry-(winnow\.cc-main-2024-10\.)?", "", j) for j in args["dependency"].split(":")[1:]}

    expected = {  # (stage, step): (array, partition, time, cpus, mem per cpu, gres)
        ("base", "base"): ("0-7999", "cpu", "10:00:00", "1", "2048M", None),
        ("dedup", "signatures"): ("0-999", "cpu", "05:00:00", "1", "4096M", None),
        ("dedup", "buckets"): ("0-699", "cpu", "02:00:00", "3", "4096M", None),
        ("dedup", "clusters"): ("0-0", "cpu", "30:00:00", "8", "25600M", None),
        ("dedup", "filter"): ("0-999", "cpu", "05:00:00", "1", "4096M", None),
        ("annotate", "job"): (None, "cpu", "48:00:00", "32", "1024M", None),
        ("classifier", "job"): (None, "gpu", "12:00:00", "8", "8192M", "gpu:1"),
        ("score", "job"): (None, "gpu", "72:00:00", "8", "8192M", "gpu:1"),
        ("subsets", "job"): (None, "cpu", "12:00:00", "16", "2048M", None),
        ("decontaminate", "job"): (None, "cpu", "12:00:00", "16", "2048M", None),
        ("ablate", "job"): (None, "gpu", "7-00:00:00", "64", "4096M", "gpu:8"),
        ("report", "job"): (None, "cpu", "01:00:00", "2", "4096M", None),
    }
    for (stage, step), (array, partition, time, cpus, mem, gres) in expected.items():
        args = sbatch(stage, step)
        got = (args.get("array"), args["partition"], args["time"], args["cpus-per-task"], args["mem-per-cpu"])
        assert got == (array, partition, time, cpus, mem), (stage, step, got)
        assert args.get("gres") == gres, (stage, step)
        assert args.get("kill-on-invalid-dep") == "yes"  # a failure cancels what waits on it

    # the edges: each step after the previous one, each stage after the final jobs of every stage before it
    assert "dependency" not in sbatch("base", "base")
    assert after(sbatch("dedup", "signatures")) == {"base.finalize"}
    assert after(sbatch("dedup", "clusters")) == {"dedup.exact_buckets"}
    assert after(sbatch("dedup", "filter")) == {"dedup.clusters"}
    upstream = {"base.finalize", "dedup.finalize"}
    for stage in ("annotate", "classifier", "score", "subsets", "decontaminate", "ablate", "report"):
        assert after(sbatch(stage, "job")) == upstream, stage
        upstream = upstream | {stage}
    job = (sandbox / "score" / "logs" / "job" / "job.sh").read_text()
    assert (
        "--set executor.kind=local" in job
        and "run-config.yaml" in job
        and "source /opt/winnow/.venv/bin/activate" in job
    )
