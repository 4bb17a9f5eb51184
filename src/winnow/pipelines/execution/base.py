"""What every executor shares: a stage's `Step`s, where their logs go, the offline settings, the completeness check.

A stage never builds an executor itself: it hands its steps (and a finalize callable) to
`winnow.pipelines.execution.launch`, which picks the executor named by `executor.kind`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from winnow.errors import StageFailed
from winnow.pipelines.config import RunConfig


@dataclass
class Step:
    """One datatrove pipeline of a stage (a stage such as dedup has several, run in order)."""

    name: str  # the folder under <stage>/logs/
    pipeline: list
    tasks: int
    workers: int = -1
    extra: dict = field(default_factory=dict)  # executor-specific overrides (e.g. mem_per_cpu_gb)


def offline_environment() -> None:
    """Settings that keep the libraries we use from reaching the network (set before they are imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def logging_dir(cfg: RunConfig, stage: str, step: str) -> str:
    return str(Path(cfg.output_dir) / stage / "logs" / step)


def completed_tasks(cfg: RunConfig, stage: str, step: str) -> int:
    done = Path(logging_dir(cfg, stage, step)) / "completions"
    return len(list(done.iterdir())) if done.is_dir() else 0


def raise_if_incomplete(cfg: RunConfig, stage: str, step: Step) -> None:
    """StageFailed, naming the task logs, the first failed task's error and the relaunch, when some of the step's
    tasks did not complete."""
    n_done = completed_tasks(cfg, stage, step.name)
    if n_done < step.tasks:
        folder = Path(logging_dir(cfg, stage, step.name))
        done = {p.name for p in (folder / "completions").iterdir()} if (folder / "completions").is_dir() else set()
        failed = [r for r in range(step.tasks) if f"{r:05d}" not in done]
        why = task_error(folder / "logs" / f"task_{failed[0]:05d}.log") if failed else None
        raise StageFailed(
            f"{stage}/{step.name}: {step.tasks - n_done} of {step.tasks} tasks failed"
            + (f" (task {failed[0]}: {why})" if why else "")
            + f"; see {folder / 'logs'}/task_*.log, fix the cause and run the same command again "
            "(completed tasks are skipped)"
        )


# the last line of a Python traceback: "OSError: ...", "gzip.BadGzipFile: ...", "KeyboardInterrupt"
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt|Exit|Timeout|BadGzipFile)\w*)(?::\s*(.*))?$")


def task_error(log: Path) -> str | None:
    """The last exception line of a datatrove task log (e.g. "OSError: [Errno 28] No space left on device: 'x'")."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        m = _ERROR_LINE.match(line.strip())
        if m:
            return line.strip()[:300]
    return None
