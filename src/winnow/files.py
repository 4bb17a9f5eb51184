"""Atomic writes: a reader (a resumed run, `winnow status`, the report) never sees half a file.

Every file that marks progress or holds a result (summary.json, slurm_jobs.json, eval.json, checkpoints,
saved models) is written to `<name>.tmp` beside its target and renamed over it: a rename is atomic on
one file system, so a kill mid-write leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path` (on error, remove it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, indent: int = 2) -> Path:
    """JSON with a final newline; values JSON cannot hold (paths, dates) are written as strings."""
    return write_text(path, json.dumps(data, indent=indent, default=str) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    """One JSON object per line, written atomically like write_json."""
    return write_text(path, "".join(json.dumps(row, default=str) + "\n" for row in rows))
