"""`winnow decontaminate`: remove from each subset every document that shares a 13-gram with a benchmark item.

    subsets/<source>/*.parquet ──► DecontaminationFilter (items of decontaminate.tasks) ──► decontaminate/<source>/
                                                    └─ contaminated ──► decontaminate/<source>/removed/contaminated/

The evaluation items are those the ablations score (winnow.proxy.tasks.load_task, whole task files, not the
`ablate.eval_limit` sample): for each item its question (the prompt's "Question:"/"Answer:" words left out) and gold
answer, as `benchmark_items` returns them. The block is winnow.blocks.filters.decontamination (normalisation, n-gram
index, short items).

Output, under `<output_dir>/decontaminate/`:
  <source>/*.parquet                      the kept documents, in the subset's columns and `output.layout`
  <source>/removed/contaminated/*.parquet  the removed ones, with filter_reason, contaminated_task,
                                           contaminated_item (`<task>/<index in the task file>`), contaminated_ngram
  summary.json   read = kept + removed + failed over all sources, then per source (each balanced too), removals per
                 task, the index (items per task, items matched whole, items too short to index, n-grams)
  README.md      the dataset card (one config per source)
  logs/<source>/ the datatrove logs of each source's step

A source is one datatrove step; a re-run skips its completed tasks and never writes a document twice.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections import Counter
from pathlib import Path

from winnow.blocks.filters.decontamination import DecontaminationFilter, NgramIndex
from winnow.blocks.writers.parquet import ScoredParquetWriter
from winnow.pipelines.cards import write_dataset_card
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, offline_environment
from winnow.pipelines.stages.score import keep_empty_text
from winnow.pipelines.summary import stage_summary, step_counters, write_summary
from winnow.proxy.tasks import load_task

STAGE = "decontaminate"
REASON = "contaminated"
# the prompt's own words around a question (winnow.proxy.tasks): not part of the item a web page would copy
_PROMPT_HEAD = re.compile(r"^\s*Question:\s*")
_PROMPT_TAIL = re.compile(r"\s*Answer:\s*$")


def item_text(context: str, continuation: str) -> str:
    """A multiple-choice request as the text a page would hold: the context without the prompt's
    "Question:"/"Answer:", then the gold continuation."""
    question = _PROMPT_TAIL.sub("", _PROMPT_HEAD.sub("", context))
    return f"{question.rstrip()} {continuation.strip()}".strip()


def benchmark_items(tasks: list[str], benchmarks_dir: str | Path | None) -> list[tuple[str, str, str]]:
    """(task, item_id, text) of every item of `tasks`, whole files: item_id is `<task>/<index in load_task's list>`,
    the text the question and gold answer (a WikiText article whole)."""
    items = []
    for task in tasks:
        for i, item in enumerate(load_task(task, benchmarks_dir)):
            if isinstance(item, str):  # wikitext: articles, no question
                text = item
            else:
                context, continuation = item.requests[item.gold]
                text = item_text(context, continuation)
            items.append((task, f"{task}/{i}", text))
    return items


def subset_files(folder: Path) -> tuple[str, list[Path]]:
    """(glob, files) of a subset folder in either layout: flat `*.parquet`, or FineWeb's `data/*/*.parquet`."""
    for pattern in ("*.parquet", "data/*/*.parquet"):
        files = sorted(folder.glob(pattern))
        if files:
            return pattern, files
    return "*.parquet", []


def sources(cfg: RunConfig) -> tuple[dict[str, Path], list[str]]:
    """(source name → subset folder, empty subsets left out): `decontaminate.sources`, or every subset of
    subsets/summary.json that holds documents (a threshold no document reaches leaves an empty subset)."""
    subsets_dir = cfg.stage_dir("subsets")
    names = cfg.decontaminate.sources
    defaulted = names is None
    if defaulted:
        summary = subsets_dir / "summary.json"
        if not summary.is_file():
            raise ConfigError(
                f"{cfg.source_file}: nothing to decontaminate: {summary} is missing (run `winnow subsets` first)"
            )
        names = list(json.loads(summary.read_text())["subsets"])
    found, empty = {}, []
    for name in names:
        folder = subsets_dir / name
        if subset_files(folder)[1]:
            found[name] = folder
        elif defaulted:
            empty.append(name)
        else:
            raise ConfigError(
                f"{cfg.source_file}: decontaminate.sources: no documents in {folder} "
                "(name a subset of subsets/, or run `winnow subsets` first)"
            )
    if not found:
        raise ConfigError(f"{cfg.source_file}: nothing to decontaminate: every subset in {subsets_dir} is empty")
    return found, empty


def decontamination_step(
    source: str, folder: Path, out: Path, index: NgramIndex, tasks: int, layout: str = "flat", columns: str = "winnow"
) -> Step:
    from winnow.blocks.readers import StreamingParquetReader

    pattern, _ = subset_files(folder)
    reader = StreamingParquetReader(str(folder), glob_pattern=pattern, recursive=False, adapter=keep_empty_text)
    reader.add_file_path = False  # kept documents get exactly the subset's columns (the reader has no such argument)
    # removed documents keep every column they arrive with, plus the match (never FineWeb-Edu's ten columns alone)
    block = DecontaminationFilter(index, exclusion_writer=ScoredParquetWriter(str(out / source / "removed" / REASON)))
    writer = ScoredParquetWriter(str(out / source), layout=layout, columns=columns)
    return Step(name=source, pipeline=[reader, block, writer], tasks=tasks)


def rows_in(folder: Path) -> int:
    """Rows of a subset folder's Parquet files, from their footers: what `read` must account for."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in subset_files(folder)[1])


def finalize(
    stage_dir: str, found: dict[str, str], index_info: dict, config_file: str | None = None, empty: list[str] = ()
) -> dict:
    """summary.json (per source and in all, each read = kept + removed + failed) and the dataset card. `read` is
    counted in the subset's files, independently of the pipeline: a row the pipeline never saw is `failed: not_read`
    (none expected), so no row can go missing unnoticed."""
    stage_dir = Path(stage_dir)
    subsets_summary = stage_dir.parent / "subsets" / "summary.json"
    subsets = json.loads(subsets_summary.read_text()).get("subsets", {}) if subsets_summary.is_file() else {}
    per_source, per_task, cards = {}, Counter(), {}
    for name, folder in found.items():
        counts = Counter()
        for block, counter in step_counters(stage_dir / "logs" / name):
            if block.endswith(DecontaminationFilter.name):
                counts.update(counter)
        removed = {k.split("/", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith(f"{REASON}/")}
        per_task.update(removed)
        read = rows_in(Path(folder))
        per_source[name] = stage_summary(
            read,
            counts["forwarded"],
            removed={REASON: removed},
            failed={"not_read": read - counts["total"]} if read != counts["total"] else {},
            tokens=counts["tokens"],
            tokens_removed=counts[f"tokens/{REASON}"],
        )
        cards[name] = {
            "int_score_at_least": subsets.get(name, {}).get("int_score_at_least"),
            "documents": counts["forwarded"],
            "tokens": counts["tokens"] - counts[f"tokens/{REASON}"],
        }
    summary = stage_summary(
        sum(s["read"] for s in per_source.values()),
        sum(s["kept"] for s in per_source.values()),
        removed={REASON: dict(sorted(per_task.items()))},
        failed={"not_read": sum(s["failed"].get("not_read", 0) for s in per_source.values())}
        if any(s["failed"] for s in per_source.values())
        else {},
        sources=per_source,
        empty_sources=list(empty),  # subsets without documents: nothing to read, no folder written
        index=index_info,
        subsets=cards,  # the dataset card's configs: one per source, the kept documents
    )
    write_summary(stage_dir, summary)
    write_dataset_card(stage_dir, STAGE, config_file)
    return summary


def resolved_tasks(cfg: RunConfig) -> list[str]:
    """decontaminate.tasks, or the ablations' tasks without wikitext (see DecontaminateConfig)."""
    if cfg.decontaminate.tasks is not None:
        return list(cfg.decontaminate.tasks)
    return [t for t in cfg.ablate.tasks if t != "wikitext"]


def run(cfg: RunConfig, args) -> int:
    offline_environment()
    found, empty = sources(cfg)
    tasks = resolved_tasks(cfg)
    benchmarks_dir = cfg.decontaminate.benchmarks_dir or cfg.ablate.benchmarks_dir
    if not Path(benchmarks_dir).is_dir():
        raise ConfigError(f"{cfg.source_file}: decontaminate.benchmarks_dir: no folder {benchmarks_dir}")
    index = NgramIndex(benchmark_items(tasks, benchmarks_dir), cfg.decontaminate.n, cfg.decontaminate.min_words)
    out = cfg.stage_dir(STAGE)
    steps = [
        decontamination_step(
            name,
            folder,
            out,
            index,
            min(len(subset_files(folder)[1]), cfg.executor.tasks),
            cfg.output.layout,
            cfg.output.columns,
        )
        for name, folder in found.items()
    ]
    index_info = {
        "n": index.n,
        "min_words": index.min_words,
        "tasks": tasks,
        "benchmarks_dir": str(benchmarks_dir),
        "items": dict(index.items_per_task),
        "items_matched_whole": dict(index.whole_items),
        "skipped_short_items": dict(index.skipped_short_items),
        "ngrams": index.ngrams,
        "index_bytes": index.nbytes(),
    }
    launch(
        cfg,
        STAGE,
        steps,
        functools.partial(
            finalize,
            str(out),
            {name: str(folder) for name, folder in found.items()},
            index_info,
            cfg.source_file,
            empty,
        ),
    )
    summary = json.loads((out / "summary.json").read_text())
    parts = ", ".join(f"{name}: {s['kept']} of {s['read']} kept" for name, s in summary["sources"].items())
    print(f"winnow: decontaminate: {parts}; removed per task {summary['removed'][REASON]} → {out}/", file=sys.stderr)
    return 0
