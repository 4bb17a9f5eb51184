"""Decontamination speed, index size and false removals on real documents.

    .venv/bin/python benchmarks/bench_decontaminate.py [--repeats 3]

The benchmark items of every default task (winnow.pipelines.stages.decontaminate: ablate.tasks without wikitext)
are read and indexed once (DecontaminationFilter's NgramIndex, n = 13); then the 2,800 FineWeb sample-10BT documents
of ../shared/data/fineweb go through the block as a datatrove step runs it. The machine is shared, so CPU seconds of
this process (one core), not wall time, are the measure: documents and characters per CPU-second, best of
`--repeats`. Every removed document is listed with its task, item and matching n-gram (docs/sections/decontaminate.md
explains each one).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource

from winnow.pipelines.tools.bench import SHARED_DATA, cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from datatrove.data import Document

    from winnow.blocks.filters.decontamination import DecontaminationFilter, NgramIndex
    from winnow.pipelines.stages.decontaminate import benchmark_items
    from winnow.proxy.tasks import TASKS

    tasks = [t for t in TASKS if t != "wikitext"]
    start = cpu_seconds()
    items = benchmark_items(tasks, SHARED_DATA / "benchmarks")
    read = cpu_seconds() - start
    index = NgramIndex(items)
    built = cpu_seconds() - start - read
    print(
        f"index: {len(items):,} items of {len(tasks)} tasks read in {read:.1f} CPU-s; {index.ngrams:,} n-grams, "
        f"{index.nbytes() / 2**20:.1f} MiB, built in {built:.1f} CPU-s; "
        f"{sum(index.skipped_short_items.values())} items under {index.min_words} words skipped"
    )

    with gzip.open(SHARED_DATA / "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    chars = sum(len(r["text"]) for r in rows)
    best, removed = None, []
    for _ in range(args.repeats):
        documents = [Document(text=r["text"], id=r["id"]) for r in rows]
        block = DecontaminationFilter(index)
        start = cpu_seconds()
        kept = list(block.run(iter(documents)))
        spent = cpu_seconds() - start
        best = spent if best is None else min(best, spent)
        removed = [d for d in documents if "contaminated_item" in d.metadata]
        assert len(kept) + len(removed) == len(documents)
    print(
        f"filter: {len(rows):,} documents ({chars / 1e6:.1f} M characters) in {best:.2f} CPU-s (best of "
        f"{args.repeats}): {len(rows) / best:,.0f} documents/CPU-s, {chars / best / 1e6:.2f} M characters/CPU-s; "
        f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print(f"removed {len(removed)} of {len(rows):,}:")
    for d in removed:
        m = d.metadata
        print(f'  {d.id}  {m["contaminated_item"]}  "{m["contaminated_ngram"]}"')


if __name__ == "__main__":
    main()
