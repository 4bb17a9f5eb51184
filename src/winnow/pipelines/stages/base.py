"""The FineWeb base stage: WARC shards (or JSONL/Parquet documents) → extracted, filtered documents.

    reader → url → extractor → language → gopher_repetition → gopher_quality → c4_quality → fineweb_quality
           → PII masking → GPT-2 token_count → Parquet (FineWeb schema)

Output, under `<output_dir>/base/`: `${rank}.parquet` (kept), `removed/<filter>/` (with filter_reason),
`failed/extractor/` (extraction timeouts/errors), `failed/reader/` (JSONL/Parquet rows that are not documents),
`summary.json` (read = kept + Σremoved + Σfailed) and `funnel.png`. JSONL/Parquet input is already text: the
extractor step is left out.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from winnow.blocks.extractors import EXTRACTORS, build_extractor
from winnow.blocks.filters import FilterConfigError, build_filter, check_overrides
from winnow.blocks.formatters import GPT2TokenCounter, PIIFormatter
from winnow.blocks.readers import WebArchiveReader, document_reader
from winnow.blocks.writers.parquet import ExcludedParquetWriter, FineWebParquetWriter
from winnow.pipelines.cards import write_dataset_card
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, logging_dir, offline_environment
from winnow.pipelines.plots import plot_funnel
from winnow.pipelines.summary import stage_summary, step_counters, write_summary

STAGE = "base"
STEP = "base"
# extractors slow enough that a cheap language pre-screen pays (winnow.blocks.filters.LanguagePrescreen); turn it off
# with filters.language_prescreen.max_score=0
SLOW_EXTRACTORS = {"trafilatura"}


def fingerprint_inputs(cfg: RunConfig) -> list[str]:
    """The files the output depends on (their names and sizes go into base/fingerprint.json)."""
    return cfg.input.files()


def input_paths_file(cfg: RunConfig) -> tuple[str, str]:
    """(data folder, paths file): the input files, sorted, relative to their common folder, one per line."""
    files = [os.path.abspath(f) for f in cfg.input.files()]
    if not files:
        raise ConfigError(f"{cfg.source_file}: input.paths: no input file")
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    listing = cfg.stage_dir(STAGE) / "input_files.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(os.path.relpath(f, root) + "\n" for f in files)
    if not listing.is_file() or listing.read_text() != text:  # same list on a re-run: tasks map to the same files
        listing.write_text(text)
    return root, str(listing)


def build_reader(cfg: RunConfig):
    root, listing = input_paths_file(cfg)
    common = dict(paths_file=listing, limit=cfg.input.limit, default_metadata={"dump": cfg.dump})
    if cfg.input.format == "warc":
        return WebArchiveReader(root, **common)
    # rows that cannot become documents (not JSON, text not a string, ...) are kept, with their reason
    failed = ExcludedParquetWriter(str(cfg.stage_dir(STAGE) / "failed" / "reader"))
    return document_reader(cfg.input.format)(
        root, text_key=cfg.input.text_key, id_key=cfg.input.id_key, failure_writer=failed, **common
    )


def build_pipeline(cfg: RunConfig) -> tuple[list, list[tuple[str, str]]]:
    """The stage's datatrove blocks, and for each its (role, name) so the summary can read the counters."""
    stage_dir = cfg.stage_dir(STAGE)
    overrides = cfg.filters.overrides()
    try:
        check_overrides(overrides)
        for name in cfg.filters.enabled:
            build_filter(name, overrides.get(name))  # unknown name → error before any work
    except FilterConfigError as e:
        raise ConfigError(f"{cfg.source_file}: {e}") from None
    if cfg.input.format == "warc" and cfg.extract.extractor not in EXTRACTORS:
        raise ConfigError(
            f"{cfg.source_file}: extract.extractor: unknown extractor {cfg.extract.extractor!r} "
            f"(known: {', '.join(EXTRACTORS)})"
        )

    def removed(name: str):
        return ExcludedParquetWriter(str(stage_dir / "removed" / name))

    def add_extractor():
        prescreen = {**overrides.get("language_prescreen", {})}
        if "languages" in overrides.get("language", {}):
            prescreen.setdefault("languages", overrides["language"]["languages"])
        wanted = "language_prescreen" in cfg.filters.enabled or (
            cfg.extract.extractor in SLOW_EXTRACTORS and "language" in cfg.filters.enabled
        )
        if wanted and prescreen.get("max_score", 1) > 0:
            pipeline.append(
                build_filter("language_prescreen", prescreen, exclusion_writer=removed("language_prescreen"))
            )
            roles.append(("filter", "language_prescreen"))
        pipeline.append(
            build_extractor(
                cfg.extract.extractor,
                timeout=cfg.extract.timeout,
                favour_precision=cfg.extract.favour_precision,
                exclusion_writer=removed("extractor"),
                failure_writer=ExcludedParquetWriter(str(stage_dir / "failed" / "extractor")),
            )
        )
        roles.append(("extractor", "extractor"))

    # FineWeb's order: the URL filter first (cheap, on the record's url), then extraction, then the text filters
    extract = cfg.input.format == "warc"
    pipeline, roles = [build_reader(cfg)], [("reader", "reader")]
    if extract and "url" not in cfg.filters.enabled:
        add_extractor()
    for name in cfg.filters.enabled:
        if name == "language_prescreen":  # placed by add_extractor, just before the extractor
            continue
        pipeline.append(
            build_filter(
                name, overrides.get(name), exclusion_writer=removed(name), word_splitter=cfg.filters.word_splitter
            )
        )
        roles.append(("filter", name))
        if extract and name == "url":
            add_extractor()
    if cfg.pii.emails or cfg.pii.ips:
        pipeline.append(PIIFormatter(remove_emails=cfg.pii.emails, remove_ips=cfg.pii.ips))
        roles.append(("formatter", "pii"))
    pipeline.append(GPT2TokenCounter())
    roles.append(("formatter", "token_count"))
    pipeline.append(FineWebParquetWriter(str(stage_dir)))
    roles.append(("writer", "writer"))
    return pipeline, roles


def summarize(log_dir: str, roles: list[tuple[str, str]]) -> dict:
    """summary.json's content from the step's datatrove stats: read, kept, removed, failed, skipped, funnel."""
    counters = [c for _, c in step_counters(log_dir)]
    if not counters:
        raise RuntimeError(f"no stats under {log_dir}: did the step run?")
    summary = stage_summary(0, 0, decoded={}, funnel=[])
    remaining = None
    for (role, name), counter in zip(roles, counters):
        failed = {k.removeprefix("failed_"): v for k, v in counter.items() if k.startswith("failed_")}
        if role == "reader":
            summary["read"] = counter["documents"] + sum(failed.values())
            summary["skipped"] = {k.removeprefix("skipped_"): v for k, v in counter.items() if k.startswith("skipped_")}
            summary["decoded"] = {k.removeprefix("decoded_"): v for k, v in counter.items() if k.startswith("decoded_")}
            summary["failed"].update({f"reader_{k}": v for k, v in failed.items()})
            remaining = counter["documents"]  # documents that went on (reader failures are in "failed")
            summary["funnel"].append({"step": "read", "documents": summary["read"], "failed": sum(failed.values())})
            continue
        if role == "writer":
            summary["kept"] = counter["total"]
            continue
        dropped = {k.removeprefix("dropped_"): v for k, v in counter.items() if k.startswith("dropped_")}
        if counter.get("dropped", 0) > sum(dropped.values()):
            dropped["unspecified"] = counter["dropped"] - sum(dropped.values())
        if dropped:
            summary["removed"][name] = dropped
        summary["failed"].update({f"{name}_{k}": v for k, v in failed.items()})
        if role in ("filter", "extractor"):
            remaining -= sum(dropped.values()) + sum(failed.values())
            summary["funnel"].append(
                {"step": name, "documents": remaining, "removed": sum(dropped.values()), "failed": sum(failed.values())}
            )
    return summary


def finalize(cfg: RunConfig, roles: list[tuple[str, str]]) -> dict:
    """Write summary.json (checking the invariant), funnel.png and the dataset card once every task has finished."""
    stage_dir = cfg.stage_dir(STAGE)
    summary = summarize(logging_dir(cfg, STAGE, STEP), roles)
    summary = {
        "stage": STAGE,
        "config": cfg.source_file,
        "dump": cfg.dump,
        "extractor": cfg.extract.extractor if cfg.input.format == "warc" else None,
        **summary,
    }
    write_summary(stage_dir, summary)
    plot_funnel(summary, Path(stage_dir) / "funnel.png", title=f"{cfg.name}: base stage funnel")
    write_dataset_card(stage_dir, STAGE, cfg.source_file)
    print(
        f"winnow base: read {summary['read']}, kept {summary['kept']}, "
        f"removed {sum(sum(r.values()) for r in summary['removed'].values())}, "
        f"failed {sum(summary['failed'].values())} → {stage_dir}"
    )
    return summary


def run(cfg: RunConfig, args=None):
    offline_environment()
    pipeline, roles = build_pipeline(cfg)
    step = Step(name=STEP, pipeline=pipeline, tasks=cfg.executor.tasks)
    launch(cfg, STAGE, [step], finalize=functools.partial(finalize, cfg, roles))
    return 0
