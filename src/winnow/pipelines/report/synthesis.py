"""The run report's "Synthetic data" section: what `winnow synthesize` asked for, what it kept, and how diverse it is.

Read from synthesize/summary.json only (the stage computes every number when it finishes): requested / generated /
kept with the reasons for the rest, generations per topic, format and audience (planned and kept), the distinct
word 3-gram ratio, the share removed as near-duplicates, token counts, and a few kept examples per format.
"""

from __future__ import annotations

from winnow.pipelines.config import RunConfig
from winnow.pipelines.report.data import one_line, read_json
from winnow.pipelines.summary import total

EXAMPLE_CHARS = 400


def _spread_table(summary: dict, key: str) -> list[str]:
    planned, kept = summary["planned"][key], summary["kept_by"][key]
    return [
        f"| {key} | planned | kept |",
        "|---|---:|---:|",
        *[f"| {name} | {n:,} | {kept.get(name, 0):,} |" for name, n in planned.items()],
        "",
    ]


def synthesis_section(report, cfg: RunConfig) -> None:
    """Markdown lines for the synthetic set (report: anything with `add(*lines)`)."""
    report.add("## Synthetic data", "")
    summary = read_json(cfg.stage_dir("synthesize") / "summary.json")
    if summary is None:
        report.add(
            f"> **Not run.** No `{cfg.stage_dir('synthesize') / 'summary.json'}`: the optional synthesize stage "
            "has not run in this folder (`make synthesize`).",
            "",
        )
        return
    d, t = summary["diversity"], summary["tokens"]
    removed = ", ".join(f"{reason} {n:,}" for reason, n in summary["removed"].items()) or "none"
    failed = ", ".join(f"{reason} {n:,}" for reason, n in summary["failed"].items()) or "none"
    report.add(
        f"{summary['requested']:,} generations requested from {d['seeds_used']:,} seed documents in {d['topics']} "
        f"topics ({', '.join(summary['model'])}, prompts {', '.join(summary['prompt_version'])}): "
        f"{summary['generated']:,} generated ({summary['truncated']:,} stopped on the token limit), "
        f"{summary['kept']:,} kept in `synthesize/`. Removed: {removed}; failed: {failed} "
        f"({total(summary['removed']) + total(summary['failed']) + summary['kept']:,} accounted).",
        "",
        "| diversity and size | value |",
        "|---|---:|",
        f"| distinct word 3-grams / all 3-grams (kept) | {d['distinct_3gram_ratio']} |",
        f"| share of generations removed as near-duplicates (of each other or of their seed) | "
        f"{d['near_duplicate_share']} |",
        f"| GPT-2 tokens kept | {t['kept']:,} |",
        f"| mean GPT-2 tokens per kept generation | {t['kept_mean']} |",
        f"| prompt / completion tokens (server's count, all attempts) | {t['prompt']:,} / {t['completion']:,} |",
        "",
    )
    for key in ("topic", "format", "audience"):
        report.add(*_spread_table(summary, key))
    if summary.get("examples"):
        report.add("| format | audience | topic | kept generation (start) |", "|---|---|---:|---|")
        for format_name, examples in summary["examples"].items():
            for e in examples:
                report.add(f"| {format_name} | {e['audience']} | {e['topic']} | {one_line(e['text'], EXAMPLE_CHARS)} |")
        report.add("")
