"""Dedup speed and memory: datatrove's stock MinHash stages (the reference) vs winnow's two engines.

    .venv/bin/python benchmarks/bench_dedup.py [--docs 3000] [--keep DIR]

The same documents (real FineWeb sample-10BT and FineWeb-Edu annotation texts, plus 10 % near-duplicates
and copies made from them) go through
  - reference: datatrove 0.10.1 MinhashDedupSignature → Buckets → Cluster → Filter, all defaults
    (spaCy word tokenizer, 5-grams, 14 x 8 hashes, 64-bit xxhash);
  - winnow datatrove engine (`winnow dedup`, dedup.engine=datatrove, exact dedup on);
  - winnow datasketch engine (dedup.engine=datasketch).
Each runs alone in a fresh subprocess, one task, one worker, so CPU seconds are seconds of one core
and the peak resident memory is that process's. Throughput is documents per CPU-second of the pipeline
run (imports excluded); the machine is shared, so CPU time, not wall time, is the measure.
Duplicate decisions are compared as the partition of documents into clusters.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from winnow.pipelines.tools.bench import SHARED_DATA, cpu_seconds

DATA = SHARED_DATA


def build_corpus(base: Path, n_docs: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from winnow.blocks.dedup.filter import FINEWEB_FIELDS

    texts = []
    for path, key in [
        (DATA / "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz", "id"),
        (DATA / "annotations/fineweb-edu-llama3/train.jsonl.gz", "id"),
        (DATA / "annotations/fineweb-edu-llama3/val.jsonl.gz", "id"),
    ]:
        with gzip.open(path, "rt") as f:
            for line in f:
                row = json.loads(line)
                texts.append((f"{path.stem}-{row[key]}", row["text"]))
    rng = random.Random(0)
    originals = texts[: int(n_docs * 0.9)]
    docs = [(i, t) for i, t in originals]
    for k, (doc_id, text) in enumerate(rng.sample(originals, n_docs - len(originals))):
        lines = text.split("\n")
        variant = [text, "\n".join(["Skip to main content"] + lines[1:]), text + "\nShare this page"][k % 3]
        docs.append((f"{doc_id}-variant{k}", variant))
    rng.shuffle(docs)
    rows = [
        {
            "text": t,
            "id": i,
            "dump": "CC-MAIN-2024-10",
            "url": None,
            "date": None,
            "file_path": None,
            "language": "en",
            "language_score": 1.0,
            "token_count": None,
        }
        for i, t in docs
    ]
    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in FINEWEB_FIELDS])
    base.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half], schema=schema), base / "00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:], schema=schema), base / "00001.parquet")
    return len(rows)


def run_reference(work: Path, base: Path) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    config = MinhashConfig()
    steps = [
        ([ParquetReader(str(base)), MinhashDedupSignature(str(work / "sigs"), config=config)], 1),  # "signatures"
        ([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)], config.num_buckets),
        (
            [
                MinhashDedupCluster(
                    str(work / "buckets"),
                    str(work / "clusters"),
                    config=config,
                    save_cluster_id=True,
                    save_cluster_size=True,
                )
            ],
            1,
        ),
        (
            [
                ParquetReader(str(base)),
                MinhashDedupFilter(
                    str(work / "clusters"),
                    exclusion_writer=ParquetWriter(str(work / "out/removed")),
                    load_cluster_ids=True,
                    load_cluster_sizes=True,
                ),
                ParquetWriter(str(work / "out")),
            ],
            1,
        ),
    ]
    for name, (pipeline, tasks) in zip(["signatures", "buckets", "clusters", "filter"], steps):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(work / f"logs/{name}")).run()


def run_winnow(work: Path, base: Path, engine: str) -> None:
    from winnow.pipelines.config import RunConfig
    from winnow.pipelines.stages.dedup import run

    work.mkdir(parents=True, exist_ok=True)
    (work / "base").symlink_to(base.resolve())
    cfg = RunConfig(name="bench", output_dir=str(work), executor={"tasks": 1, "workers": 1}, dedup={"engine": engine})
    cfg.source_file = "bench"
    run(cfg)


def one(kind: str, work: Path, base: Path) -> None:
    """Run one configuration in this (fresh) process and print its measures as JSON."""
    import logging

    from loguru import logger

    logger.remove()
    logging.disable(logging.WARNING)
    # imports are a fixed cost of every process (spaCy alone pulls in torch): paid here, outside the measure
    import datasketch  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import spacy
    from datatrove.executor import LocalPipelineExecutor  # noqa: F401

    import winnow.blocks.dedup.minhash  # noqa: F401
    import winnow.pipelines.stages.dedup  # noqa: F401

    spacy.blank("en")
    steps = {}  # CPU seconds per datatrove step (each step is one LocalPipelineExecutor.run, in this process)
    executor_run = LocalPipelineExecutor.run

    def timed_run(self):
        start = cpu_seconds()
        executor_run(self)
        steps[Path(self.logging_dir.path).name] = cpu_seconds() - start

    LocalPipelineExecutor.run = timed_run
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if kind == "reference":
        run_reference(work, base)
    else:
        run_winnow(work, base, kind.removeprefix("winnow_"))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        json.dumps(
            {"cpu_s": cpu, "wall_s": time.perf_counter() - start, "peak_rss_mb": after.ru_maxrss / 1024, "steps": steps}
        )
    )


def clusters(folder: Path, metadata_column: bool = False) -> set[frozenset]:
    """Duplicate clusters (size > 1) as sets of ids, from a dedup output's minhash_cluster_id.

    datatrove's stock writer keeps the metadata as one struct column (`metadata_column`); ours, flat.
    """
    import pyarrow.parquet as pq

    groups = defaultdict(set)
    for path in folder.rglob("*.parquet"):
        if "logs" in path.parts or "work" in path.parts:
            continue
        rows = pq.read_table(path).to_pylist()
        pairs = [(r["id"], (r["metadata"] if metadata_column else r).get("minhash_cluster_id")) for r in rows]
        for doc_id, cluster in pairs:
            if cluster is not None and cluster >= 0:
                groups[cluster].add(doc_id)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def documents_with_shingles(base: Path) -> set[str]:
    """Ids of the documents with at least one 5-gram (the others get no MinHash signature)."""
    import pyarrow.parquet as pq

    from winnow.blocks.dedup.minhash import FastWordSplitter, normalize_for_minhash

    splitter = FastWordSplitter()
    ids = set()
    for path in sorted(base.glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        for doc_id, text in zip(table.column("id").to_pylist(), table.column("text").to_pylist()):
            if len(splitter.split(normalize_for_minhash(text))) >= 5:
                ids.add(doc_id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    parser.add_argument("--one", choices=["reference", "winnow_datatrove", "winnow_datasketch"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one, Path(args.work) / args.one, Path(args.work) / "base")

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-dedup-"))
    n = build_corpus(work / "base", args.docs)
    print(f"{n} documents ({args.docs} requested), one task, one worker per configuration; CPU time of one core\n")
    results = {}
    for kind in ["reference", "winnow_datatrove", "winnow_datasketch"]:
        out = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--work", str(work)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        if out.returncode != 0:
            sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    reference = clusters(work / "reference" / "out", metadata_column=True)
    signed = documents_with_shingles(work / "base")
    print(
        f"{'configuration':<20} {'docs/s/core':>12} {'CPU s':>8} {'wall s':>8} {'peak MB':>8} {'x ref':>7}  "
        "duplicate clusters vs reference"
    )
    for kind, r in results.items():
        found = reference if kind == "reference" else clusters(work / kind / "dedup")
        # exact dedup also joins texts too short for a MinHash signature, which the reference cannot see
        short = {c for c in found - reference if not c & signed}
        other = found - reference - short
        same = (
            "identical"
            if found == reference
            else (
                f"{len(found & reference)}/{len(reference)} identical, +{len(short)} of short texts (exact dedup), "
                f"{len(other)} other, {len(reference - found)} missing"
            )
        )
        print(
            f"{kind:<20} {n / r['cpu_s']:>12.0f} {r['cpu_s']:>8.1f} {r['wall_s']:>8.1f} {r['peak_rss_mb']:>8.0f} "
            f"{results['reference']['cpu_s'] / r['cpu_s']:>7.1f}  {same}"
        )
    print(f"\nreference: {len(reference)} duplicate clusters, {sum(len(c) - 1 for c in reference)} documents removed")
    print("\nCPU seconds per step (the signature step is where the reference spends its time):")
    for kind, r in results.items():
        ref_sig, sig = results["reference"]["steps"].get("signatures"), r["steps"].get("signatures")
        ratio = f"  signatures x{ref_sig / sig:.1f} vs reference ({n / sig:.0f} docs/s/core)" if sig else ""
        print(f"  {kind:<20} " + ", ".join(f"{k} {v:.2f}" for k, v in r["steps"].items()) + ratio)
    if not args.keep:
        import shutil

        shutil.rmtree(work)


if __name__ == "__main__":
    main()
