"""The progress line: one line per running step on the terminal, redrawn in place about once a second.

    base: tasks 1/2 · 1,234 docs · 45 docs/s · 0:27 elapsed · ETA 0:27
    base: tasks 2/2 · 2,468 docs · 45 docs/s · done in 0:54

Drawn on stderr only when stderr is a terminal and `winnow --quiet` was not given (`show_progress()`): piped or
redirected output (Slurm, CI, `| tee`) never gets a `\\r`. A thread of the main process polls the step's datatrove
logging folder: `completions/` (tasks done), and `progress/<rank>` (documents read so far by that task, written about
once a second by `DocumentCounter`, a pass-through placed right after the step's reader). Steps without a reader
show tasks only; the ETA comes from the documents when their total is known, else from the tasks done so far.

While the line is drawn, datatrove's console logs go through `TaskConsole`: warnings and errors only, each first
erasing the line (it is redrawn on the next poll). Everything stays in the task logs, logs/<step>/logs/task_*.log.
With `--quiet` the console logs are cut to warnings and errors the same way, and no line is drawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from winnow.files import write_text

POLL_SECONDS = 1.0  # how often the line is redrawn and the counters written
WARNING = 30  # loguru's level number: console records below it are dropped while the line is drawn or with --quiet
ERASE_LINE = "\r\033[K"  # back to the line's start, then clear to its end

_quiet = False


def set_quiet(quiet: bool) -> None:
    """`winnow --quiet`: no progress line, and datatrove's console logs cut to warnings and errors."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def show_progress() -> bool:
    """Whether progress (this line, the training and evaluation bars) is drawn: stderr is a terminal, not --quiet."""
    return not _quiet and sys.stderr.isatty()


# ---- what the line says ----------------------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    """0:07, 12:05, 3:02:41."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(per_second: float, unit: str = "docs") -> str:
    """45 docs/s, 3.2 docs/s, 12 docs/min (below one a second)."""
    if per_second >= 10:
        return f"{per_second:,.0f} {unit}/s"
    if per_second >= 1:
        return f"{per_second:.1f} {unit}/s"
    per_minute = per_second * 60
    return f"{per_minute:.0f} {unit}/min" if per_minute >= 10 else f"{per_minute:.1f} {unit}/min"


def format_line(
    label: str,
    tasks_done: int,
    tasks: int,
    elapsed: float,
    documents: int | None = None,
    documents_total: int | None = None,
    rate: float | None = None,
    eta: float | None = None,
    ended: str | None = None,
) -> str:
    """The line's text. `ended`: None while the step runs, "done" or "stopped" for its last drawing."""
    parts = [f"tasks {tasks_done}/{tasks}"]
    if documents is not None:
        parts.append(f"{documents:,}/{documents_total:,} docs" if documents_total else f"{documents:,} docs")
    if rate:
        parts.append(format_rate(rate))
    if ended == "done":
        parts.append(f"done in {format_duration(elapsed)}")
    elif ended:
        parts.append(f"{ended} after {format_duration(elapsed)}")
    else:
        parts.append(f"{format_duration(elapsed)} elapsed")
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
    return f"{label}: " + " · ".join(parts)


def estimate_eta(
    elapsed: float,
    tasks_done: int,
    tasks: int,
    tasks_at_start: int,
    rate: float | None = None,
    documents: int | None = None,
    documents_total: int | None = None,
    documents_in_done: int | None = None,
) -> float | None:
    """Seconds left. From the document rate when the step's documents are known: their total, or an estimate from
    the tasks done (documents per finished task × tasks); else from the time per task this run has finished."""
    if rate and documents is not None:
        if not documents_total and tasks_done and documents_in_done:
            documents_total = round(documents_in_done / tasks_done * tasks)
        if documents_total:
            return max(0.0, (documents_total - documents) / rate)
    finished_here = tasks_done - tasks_at_start
    if finished_here > 0:
        return elapsed / finished_here * (tasks - tasks_done)
    return None


class ProgressLine:
    """A line redrawn in place with `\\r` (cut to the terminal's width, so it never wraps); `end` leaves it."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return columns if columns > 0 else shutil.get_terminal_size((100, 24)).columns

    def draw(self, text: str) -> None:
        width = self.width()
        with self.lock:
            self.stream.write("\r" + text[: max(10, width - 1)] + "\033[K")
            self.stream.flush()

    def end(self, text: str) -> None:
        self.draw(text)
        with self.lock:
            self.stream.write("\n")
            self.stream.flush()


# ---- inside the tasks ------------------------------------------------------------------------------------------
class DocumentCounter:
    """A pass-through placed after a step's reader: counts the documents and writes the count to
    `<folder>/<rank>` about once a second and at the end. Not a datatrove PipelineStep (no stats), so the step's
    stats keep their blocks and order."""

    def __init__(self, folder: str | Path, interval: float = POLL_SECONDS):
        self.folder = str(folder)
        self.interval = interval

    def __repr__(self) -> str:  # datatrove logs each pipeline entry's repr
        return "DocumentCounter (progress line)"

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        path = Path(self.folder) / f"{rank:05d}"
        count, last = 0, time.monotonic()
        try:
            for document in data or ():
                count += 1
                if time.monotonic() - last >= self.interval:
                    write_text(path, str(count))
                    last = time.monotonic()
                yield document
        finally:
            write_text(path, str(count))


class TaskConsole:
    """Stands in for sys.stderr while a step runs: loguru records below `min_level` are dropped (they are in the
    task logs), and with `erase` every line that goes through first erases the progress line."""

    def __init__(self, stream, min_level: int = WARNING, erase: bool = False):
        self.stream = stream
        self.min_level = min_level
        self.erase = erase
        self.at_line_start = True

    def write(self, text: str) -> int:
        record = getattr(text, "record", None)  # loguru writes a str carrying its record
        if record is not None and record["level"].no < self.min_level:
            return len(text)
        if not text:
            return 0
        if self.erase and self.at_line_start:
            text = ERASE_LINE + text
        self.at_line_start = text.endswith("\n")
        self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):  # isatty, fileno, encoding, buffer, ...: the real stream's
        if name == "stream":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.stream, name)


@contextlib.contextmanager
def task_console(settings: tuple[int, bool] | None) -> Iterator[None]:
    """sys.stderr as a TaskConsole(min_level, erase) for the block; None, or one already in place: unchanged."""
    if settings is None or isinstance(sys.stderr, TaskConsole):
        yield
        return
    real = sys.stderr
    sys.stderr = TaskConsole(real, *settings)
    try:
        yield
    finally:
        sys.stderr = real


def console_settings() -> tuple[int, bool] | None:
    """What a step's console gets: warnings and errors only, erasing the line when one is drawn; None: unchanged."""
    if show_progress():
        return (WARNING, True)
    return (WARNING, False) if _quiet else None


# ---- in the main process ---------------------------------------------------------------------------------------
class StepProgress:
    """The progress line of one datatrove step: a thread polls `log_dir` every POLL_SECONDS and redraws it; leaving
    the block draws it a last time (done, or stopped) and ends it with a newline.

    documents: count the documents (the step runs a DocumentCounter into log_dir/progress); documents_total: how
    many the step will read, when known (the ETA then comes from the document rate)."""

    def __init__(
        self,
        label: str,
        log_dir: str | Path,
        tasks: int,
        documents: bool = False,
        documents_total: int | None = None,
        stream=None,
        interval: float = POLL_SECONDS,
    ):
        self.label = label
        self.log_dir = Path(log_dir)
        self.tasks = tasks
        self.documents = documents
        self.documents_total = documents_total
        self.line = ProgressLine(stream if stream is not None else sys.stderr)
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name=f"progress {label}", daemon=True)
        self.read_from_stats: dict[str, int] = {}  # completed tasks of an earlier run, from their stats

    @property
    def counter_dir(self) -> Path:
        return self.log_dir / "progress"

    def __enter__(self) -> StepProgress:
        done = self._completed()
        for path in self.counter_dir.glob("*") if self.counter_dir.is_dir() else []:
            if path.name not in done:  # an unfinished task of an earlier run: it starts again from 0
                path.unlink(missing_ok=True)
        self.started = time.monotonic()
        self.tasks_at_start = len(done)
        self.documents_at_start = self._documents(done)[0]
        self.line.draw(self.text())
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop.set()
        self.thread.join()
        try:
            finished = len(self._completed()) >= self.tasks
            self.line.end(self.text(ended="done" if finished and exc_type is None else "stopped"))
        except (OSError, ValueError):  # a closed terminal: the step's own outcome is what counts
            pass

    def _poll(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.line.draw(self.text())
            except (OSError, ValueError):  # a file caught mid-rename, a closed terminal: next time
                continue

    def _completed(self) -> set[str]:
        folder = self.log_dir / "completions"
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        return {n for n in names if n.isdigit() and int(n) < self.tasks}

    def _documents(self, completed: set[str]) -> tuple[int, int] | tuple[None, None]:
        """(documents read, of which by the completed tasks), or (None, None) when the step does not count them."""
        if not self.documents:
            return None, None
        counted = (
            {p.name for p in self.counter_dir.iterdir() if p.name.isdigit()} if self.counter_dir.is_dir() else set()
        )
        total = in_done = 0
        for rank in completed | counted:
            try:
                n = int((self.counter_dir / rank).read_text() or 0)
            except (OSError, ValueError):
                n = self._from_stats(rank) if rank in completed else 0
            total += n
            in_done += n if rank in completed else 0
        return total, in_done

    def _from_stats(self, rank: str) -> int:
        """Documents a task of an earlier run read, from its stats (the reader is the step's first block)."""
        if rank not in self.read_from_stats:
            try:
                blocks = json.loads((self.log_dir / "stats" / f"{rank}.json").read_text())
                value = blocks[0]["stats"].get("documents", 0)
                self.read_from_stats[rank] = int(value["total"] if isinstance(value, dict) else value)
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                self.read_from_stats[rank] = 0
        return self.read_from_stats[rank]

    def text(self, ended: str | None = None) -> str:
        completed = self._completed()
        elapsed = time.monotonic() - self.started
        documents, in_done = self._documents(completed)
        rate = None
        if documents is not None and elapsed >= 1:
            rate = (documents - self.documents_at_start) / elapsed
        eta = estimate_eta(
            elapsed, len(completed), self.tasks, self.tasks_at_start, rate, documents, self.documents_total, in_done
        )
        return format_line(
            self.label, len(completed), self.tasks, elapsed, documents, self.documents_total, rate, eta, ended
        )
