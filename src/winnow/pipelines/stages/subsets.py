"""`winnow subsets`: FineWeb-Edu style threshold subsets of the scored documents; selection only, never re-scoring.

Reads `<output_dir>/score/*.parquet` and writes `<output_dir>/subsets/all/` and `subsets/edu-<t>/` for each
threshold in `subsets.thresholds` (documents with `int_score >= t`), as Parquet with the input's columns
(text, id, url, ..., token_count, score, int_score). summary.json gives documents and tokens per subset;
score_histogram.png shows where the thresholds cut. Documents `winnow score` could not score are not in
score/ at all: they sit in score/removed/unscorable/ with their reason and are repeated in the summary.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path

from winnow.blocks.writers.parquet import ScoredParquetWriter
from winnow.blocks.writers.subsets import EduSubsetWriter
from winnow.pipelines.cards import write_dataset_card
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, offline_environment
from winnow.pipelines.plots import plot_score_histogram
from winnow.pipelines.summary import stage_summary, step_counters, write_summary

STAGE = "subsets"


def subset_step(
    source: Path, out: Path, thresholds: list[int], tasks: int, layout: str = "flat", columns: str = "winnow"
) -> Step:
    from winnow.blocks.readers import StreamingParquetReader

    def writer(folder: Path) -> ScoredParquetWriter:
        return ScoredParquetWriter(str(folder), layout=layout, columns=columns)

    names = ["all"] + [f"edu-{t}" for t in thresholds]
    reader = StreamingParquetReader(str(source), glob_pattern="*.parquet", recursive=False)
    block = EduSubsetWriter(
        {name: writer(out / name) for name in names},
        thresholds,
        exclusion_writer=ScoredParquetWriter(str(out / "removed" / "no_score")),
    )
    return Step(name="subsets", pipeline=[reader, block], tasks=tasks)


def finalize(stage_dir: str, source: str, thresholds: list[int], config_file: str | None = None) -> None:
    counts = Counter()
    for block, counter in step_counters(Path(stage_dir) / "logs" / "subsets"):
        if block.endswith("EduSubsetWriter"):
            counts.update(counter)
    total_tokens = counts["tokens/all"]
    subsets = {}
    for name, threshold in [("all", None)] + [(f"edu-{t}", t) for t in thresholds]:
        subsets[name] = {
            "int_score_at_least": threshold,
            "documents": counts[name],
            "tokens": counts[f"tokens/{name}"],
            "share_of_documents": round(counts[name] / counts["all"], 4) if counts["all"] else 0.0,
            "share_of_tokens": round(counts[f"tokens/{name}"] / total_tokens, 4) if total_tokens else 0.0,
        }
    scored_summary = Path(source) / "summary.json"
    unscorable = json.loads(scored_summary.read_text())["removed"] if scored_summary.exists() else {}
    write_summary(
        stage_dir,
        stage_summary(
            counts["documents"],
            counts["all"],
            removed={"no_score": counts["no_score"]},
            subsets=subsets,
            not_in_subsets_from_score_stage=unscorable,
        ),
    )
    plot_score_histogram(source, Path(stage_dir) / "score_histogram.png", thresholds)
    write_dataset_card(stage_dir, STAGE, config_file)


def run(cfg: RunConfig, args) -> int:
    offline_environment()
    source = Path(cfg.subsets.source or cfg.stage_dir("score"))
    files = sorted(source.glob("*.parquet"))
    if not files:
        raise ConfigError(f"{cfg.source_file}: no scored documents in {source}; run `winnow score` first")
    thresholds = sorted(set(cfg.subsets.thresholds))
    if any(not 0 <= t <= 5 for t in thresholds):
        raise ConfigError(f"{cfg.source_file}: subsets.thresholds must be integers 0–5, got {thresholds}")
    out = cfg.stage_dir(STAGE)
    tasks = min(len(files), cfg.subsets.tasks or cfg.executor.tasks)
    launch(
        cfg,
        STAGE,
        [subset_step(source, out, thresholds, tasks, cfg.output.layout, cfg.output.columns)],
        functools.partial(finalize, str(out), str(source), thresholds, cfg.source_file),
    )
    summary = json.loads((out / "summary.json").read_text())
    parts = ", ".join(f"{name}: {s['documents']} docs / {s['tokens']} tokens" for name, s in summary["subsets"].items())
    print(f"winnow: subsets: {parts} → {out}/", file=sys.stderr)
    return 0
