"""Stage summaries: counters gathered from datatrove's per-task stats, the accounting invariant, summary.json.

Every stage writes `<output_dir>/<stage>/summary.json` with at least `read`, `kept`, `removed`
(reason → count, or filter → reason → count), `failed` (reason → count) and `skipped` (reason → count),
and the invariant read = kept + Σremoved + Σfailed must hold (skipped records are not documents).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from winnow.errors import AccountingError
from winnow.files import write_json


def step_counters(log_dir: str | os.PathLike) -> list[tuple[str, Counter]]:
    """Sum every block's stat counters over the tasks of one datatrove step (logs/<step>/stats/*.json).

    Returns one (block name, Counter) per pipeline block, in pipeline order.
    """
    totals: list[tuple[str, Counter]] = []
    for path in sorted(Path(log_dir, "stats").glob("*.json")):
        blocks = json.loads(path.read_text())
        if not totals:
            totals = [(b["name"], Counter()) for b in blocks]
        for (_, counter), block in zip(totals, blocks):
            for key, value in block["stats"].items():
                counter[key] += value["total"] if isinstance(value, dict) else value
    return totals


def total(mapping) -> int:
    """Σ of a reason → count mapping, or of a filter → reason → count mapping."""
    if isinstance(mapping, dict):
        return sum(total(v) for v in mapping.values())
    return int(mapping)


def stage_summary(
    read: int, kept: int, removed: dict | None = None, failed: dict | None = None, skipped: dict | None = None, **extra
) -> dict:
    """A stage's summary.json content: the accounting keys every stage has, first, then the stage's own."""
    return {
        "read": read,
        "kept": kept,
        "removed": removed or {},
        "failed": failed or {},
        "skipped": skipped or {},
        **extra,
    }


def check_invariant(summary: dict) -> None:
    accounted = summary["kept"] + total(summary.get("removed", {})) + total(summary.get("failed", {}))
    if summary["read"] != accounted:
        raise AccountingError(
            f"read={summary['read']} but kept+removed+failed={accounted}: "
            f"kept={summary['kept']} removed={total(summary.get('removed', {}))} "
            f"failed={total(summary.get('failed', {}))}"
        )


def write_summary(stage_dir: str | os.PathLike, summary: dict) -> dict:
    """Check the invariant and write summary.json (atomically, so a reader never sees half a file)."""
    check_invariant(summary)
    write_json(Path(stage_dir) / "summary.json", summary)
    return summary


def read_summary(stage_dir: str | os.PathLike) -> dict:
    return json.loads((Path(stage_dir) / "summary.json").read_text())
