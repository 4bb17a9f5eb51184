"""The dedup stage: exact + MinHash deduplication of `<output_dir>/base/` (FineWeb: per dump; FineWeb-2: global).

    engine: datatrove (sharded, bounded memory, resumable, Slurm-ready)
        signatures (N tasks) → buckets (num_buckets × bucket_workers) → exact buckets (bucket_workers)
        → clusters (1) → filter (N tasks)
    engine: datasketch (in memory, one node)
        datasketch (1 task: MinHash + MinHashLSH) → filter (N tasks)

Output, under `<output_dir>/dedup/`: `${rank}.parquet` (kept documents, the base columns plus
`minhash_cluster_id` and `minhash_cluster_size`), `removed/exact_duplicate/` and
`removed/minhash_duplicate/` (with `filter_reason` and `duplicate_of`, the id of the kept document),
`summary.json` (read / kept / removed, cluster-size histogram), `logs/` and `work/` (signatures, pairs,
decisions: what a re-run resumes from; it can be deleted once the stage has finished).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

from winnow.blocks.dedup.clusters import DuplicateClusters
from winnow.blocks.dedup.datasketch import DatasketchDedup, refusal_message
from winnow.blocks.dedup.filter import DedupParquetWriter, DuplicateFilter
from winnow.blocks.dedup.minhash import MinhashSignatures
from winnow.pipelines.cards import write_dataset_card
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch
from winnow.pipelines.execution.queue import output_final
from winnow.pipelines.plots import plot_cluster_sizes
from winnow.pipelines.summary import stage_summary, step_counters, write_summary

STAGE = "dedup"
SOURCE = "base"


def minhash_config(cfg: RunConfig):
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    p = cfg.dedup.minhash
    return MinhashConfig(
        n_grams=p.n_grams,
        num_buckets=p.num_buckets,
        hashes_per_bucket=p.hashes_per_bucket,
        seed=p.seed,
        hash_config=HashConfig(precision=p.hash_bits, hash_fc="xxhash"),
    )


def exact_config():
    """The exact step reuses datatrove's bucket step: one 'bucket' of one 64-bit hash per document."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(num_buckets=1, hashes_per_bucket=1, hash_config=HashConfig(precision=64, hash_fc="xxhash"))


def base_reader(cfg: RunConfig):
    from winnow.blocks.readers import StreamingParquetReader

    # sorted file listing (datatrove sorts it), no shuffling: every step sees the same documents in the same order
    return StreamingParquetReader(str(cfg.stage_dir(SOURCE)), glob_pattern="*.parquet", recursive=False)


def n_tasks(cfg: RunConfig) -> int:
    return cfg.dedup.tasks or cfg.executor.tasks


def build_steps(cfg: RunConfig) -> list[Step]:
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets

    d, stage_dir = cfg.dedup, cfg.stage_dir(STAGE)
    work, tasks, config = str(stage_dir / "work"), n_tasks(cfg), minhash_config(cfg)
    steps = []
    if d.engine == "datatrove":
        steps.append(
            Step(
                "signatures",
                [
                    base_reader(cfg),
                    MinhashSignatures(work, config=config, language=d.minhash.language, scope=d.scope, exact=d.exact),
                ],
                tasks,
            )
        )
        steps.append(
            Step(
                "buckets",
                [MinhashDedupBuckets(f"{work}/signatures", f"{work}/pairs", config=config)],
                config.num_buckets * d.bucket_workers,
            )
        )
        pair_folders = ["pairs"]
        if d.exact:
            steps.append(
                Step(
                    "exact_buckets",
                    [MinhashDedupBuckets(f"{work}/exact", f"{work}/exact_pairs", config=exact_config())],
                    d.bucket_workers,
                )
            )
            pair_folders.append("exact_pairs")
        steps.append(Step("clusters", [DuplicateClusters(work, pair_folders, exact=d.exact)], 1))
    else:
        steps.append(
            Step(
                "datasketch",
                [
                    DatasketchDedup(
                        base_reader(cfg),
                        work,
                        tasks,
                        config=config,
                        language=d.minhash.language,
                        scope=d.scope,
                        exact=d.exact,
                        max_documents=d.max_documents_in_memory,
                    )
                ],
                1,
            )
        )
    base = str(cfg.stage_dir(SOURCE))
    removed = DedupParquetWriter(str(stage_dir / "removed"), base, removed=True)
    steps.append(
        Step(
            "filter",
            [base_reader(cfg), DuplicateFilter(work, removed), DedupParquetWriter(str(stage_dir), base)],
            tasks,
        )
    )
    return steps


def settings(cfg: RunConfig) -> dict:
    """What the work folder depends on: a re-run with other values would mix incompatible files."""
    d = cfg.dedup
    return {
        "engine": d.engine,
        "scope": d.scope,
        "exact": d.exact,
        "minhash": d.minhash.model_dump(),
        "tasks": n_tasks(cfg),
        "bucket_workers": d.bucket_workers,
    }


def check_work_settings(cfg: RunConfig) -> None:
    path = cfg.stage_dir(STAGE) / "work" / "settings.json"
    wanted = settings(cfg)
    if path.is_file():
        found = json.loads(path.read_text())
        if found != wanted:
            changed = ", ".join(k for k in wanted if found.get(k) != wanted[k])
            raise ConfigError(
                f"{cfg.source_file}: dedup settings changed since {path.parent} was made ({changed}); "
                f"delete {cfg.stage_dir(STAGE)} to start over, or restore them to resume"
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(wanted, indent=2) + "\n")


def check_base_unchanged(cfg: RunConfig) -> None:
    """A finished dedup is skipped on a re-run: refuse if the base output it was computed on has changed."""
    base_files = sorted(cfg.stage_dir(SOURCE).glob("*.parquet"))
    if not base_files:
        return  # on Slurm the base stage may still be queued
    if cfg.executor.kind == "slurm":
        if not output_final(cfg, SOURCE):
            return  # base is still queued or being relaunched on Slurm: its files are not final yet
    path = cfg.stage_dir(STAGE) / "work" / "base_files.json"
    listing = {p.name: p.stat().st_size for p in base_files}
    if path.is_file() and json.loads(path.read_text()) != listing:
        raise ConfigError(
            f"{cfg.source_file}: {cfg.stage_dir(SOURCE)} changed since the dedup of "
            f"{cfg.stage_dir(STAGE)} was computed; delete {cfg.stage_dir(STAGE)} and run again"
        )
    path.write_text(json.dumps(listing, indent=2) + "\n")


def base_rows(base_dir: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(base_dir.glob("*.parquet")))


def fineweb2_upsampling(cluster_size: int) -> int:
    """FineWeb-2's rehydration: how many times a kept document is repeated, by its minhash_cluster_size."""
    # huggingface/fineweb-2 README, "Deduplication": weights that "observed promising results"
    if cluster_size >= 1000:
        return 1  # very large clusters are assumed to be low quality
    if cluster_size >= 100:
        return 8
    if cluster_size >= 5:
        return 5
    if cluster_size == 4:
        return 3
    return cluster_size  # 1, 2, 3


def summarize(stage_dir: str, base_dir: str) -> dict:
    import pyarrow.parquet as pq

    stage = Path(stage_dir)
    counters = step_counters(stage / "logs" / "filter")  # reader, DuplicateFilter, writer
    if len(counters) < 2:
        raise RuntimeError(f"no stats under {stage / 'logs' / 'filter'}: did the filter step run?")
    counts = counters[1][1]
    removed = {reason: counts[reason] for reason in ("exact_duplicate", "minhash_duplicate") if counts.get(reason)}
    read = base_rows(Path(base_dir))
    summary = stage_summary(read, counts["forwarded"], removed=removed)
    if read != counts["total"]:  # datatrove's reader drops documents with an empty text
        summary["failed"]["empty_text_not_read"] = read - counts["total"]
    sizes: Counter = Counter()
    for path in sorted((stage / "work" / "clusters").glob("*.parquet")):
        table = pq.read_table(path, columns=["reason", "cluster_size"])
        for reason, size in zip(table.column("reason").to_pylist(), table.column("cluster_size").to_pylist()):
            if reason is None:
                sizes[size] += 1
    sizes[1] = summary["kept"] - sum(sizes.values())
    summary["cluster_sizes"] = {str(k): sizes[k] for k in sorted(sizes)}  # cluster size → kept documents
    summary["clusters"] = sum(v for k, v in sizes.items() if k > 1)
    summary["rehydrated_documents_fineweb2"] = sum(fineweb2_upsampling(k) * v for k, v in sizes.items())
    return summary


def finalize(stage_dir: str, base_dir: str, settings_: dict, config_file: str | None = None) -> dict:
    summary = summarize(stage_dir, base_dir)
    summary["settings"] = settings_
    write_summary(stage_dir, summary)
    plot_cluster_sizes(summary, Path(stage_dir) / "cluster_sizes.png")
    write_dataset_card(stage_dir, STAGE, config_file)
    return summary


def run(cfg: RunConfig, args=None) -> int:
    base_dir = cfg.stage_dir(SOURCE)
    if cfg.executor.kind == "local":
        if not any(base_dir.glob("*.parquet")):
            raise ConfigError(f"{cfg.source_file}: no base output in {base_dir}: run `winnow base` (make base) first")
        if cfg.dedup.engine == "datasketch":
            rows = base_rows(base_dir)
            if rows > cfg.dedup.max_documents_in_memory:
                raise ConfigError(f"{cfg.source_file}: {refusal_message(rows, cfg.dedup.max_documents_in_memory)}")
    check_work_settings(cfg)
    check_base_unchanged(cfg)
    stage_dir = cfg.stage_dir(STAGE)
    launch(
        cfg,
        STAGE,
        build_steps(cfg),
        functools.partial(finalize, str(stage_dir), str(base_dir), settings(cfg), cfg.source_file),
    )
    return 0
