"""The progress line (winnow.pipelines.progress): what it says, and a real base stage on a terminal, piped and
with --quiet; `winnow status --watch` on a finished run."""

import fcntl
import io
import json
import os
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from loguru import logger

from winnow.pipelines.progress import (
    ERASE_LINE,
    TaskConsole,
    estimate_eta,
    format_duration,
    format_line,
    format_rate,
)
from winnow.pipelines.summary import total

LINE = re.compile(r"base: tasks (\d+)/(\d+) · ([\d,]+) docs")


def test_the_line_says_tasks_documents_rate_and_eta():
    assert [format_duration(s) for s in (0, 7.4, 65, 3 * 3600 + 161)] == ["0:00", "0:07", "1:05", "3:02:41"]
    assert [format_rate(r) for r in (1234.4, 45.2, 3.21, 0.5, 0.05)] == [
        "1,234 docs/s",
        "45 docs/s",
        "3.2 docs/s",
        "30 docs/min",
        "3.0 docs/min",
    ]
    # 1 of 2 tasks done, its 600 documents: about 1,200 in all; with 900 read at 40 docs/s, 300 left take 7.5 s
    assert estimate_eta(30, 1, 2, 0, rate=40, documents=900, documents_in_done=600) == 300 / 40
    assert estimate_eta(30, 1, 4, 0) == 90  # no documents counted: 30 s per task, 3 to go
    assert estimate_eta(30, 3, 4, 3) is None  # the tasks done were done before this run: nothing to go by
    assert estimate_eta(10, 0, 2, 0, rate=4, documents=40, documents_total=100) == 15  # annotate: 60 left at 4/s
    assert (
        format_line("base", 1, 2, 27, documents=1234, rate=45.3, eta=27)
        == "base: tasks 1/2 · 1,234 docs · 45 docs/s · 0:27 elapsed · ETA 0:27"
    )
    assert format_line("annotate", 0, 2, 40, documents=120, documents_total=500, rate=3.14, eta=121) == (
        "annotate: tasks 0/2 · 120/500 docs · 3.1 docs/s · 0:40 elapsed · ETA 2:01"
    )
    assert format_line("dedup/buckets (2/5)", 6, 6, 75, ended="done") == "dedup/buckets (2/5): tasks 6/6 · done in 1:15"
    assert format_line("base", 1, 2, 9, ended="stopped").endswith("tasks 1/2 · stopped after 0:09")


def test_console_keeps_warnings_and_erases_the_line_before_them():
    out = io.StringIO()
    console = TaskConsole(out, erase=True)
    handler = logger.add(console, format="{level} {message}", colorize=False)
    try:
        logger.info("Launching pipeline for rank=0")
        logger.warning("disk almost full")
    finally:
        logger.remove(handler)
    console.write("plain ")  # print() writes the text, then the newline: one erase, at the line's start
    console.write("print\n")
    assert out.getvalue() == f"{ERASE_LINE}WARNING disk almost full\n{ERASE_LINE}plain print\n"


def write_config(folder: Path, shared_data: Path) -> str:
    shards = [shared_data / "warc" / "pages" / f"pages-0000{i}.warc.gz" for i in (0, 1)]
    path = folder / "run.yaml"
    path.write_text(f"""
name: progress
output_dir: {folder / "run"}
input: {{paths: [{shards[0]}, {shards[1]}], format: warc}}
executor: {{kind: local, tasks: 2, workers: 1}}
extract: {{extractor: resiliparse}}
""")
    return str(path)


def winnow(*args: str) -> list[str]:
    return [sys.executable, "-m", "winnow.pipelines.cli", *args]


def on_terminal(argv: list[str], cwd: Path, stdout_too: bool = False, timeout: float = 600) -> tuple[int, str, str]:
    """Run argv with stderr (and, with stdout_too, stdout) on a pseudo-terminal 120 columns wide: (exit code, what
    the terminal showed, stdout when it was piped)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    shown = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_too else subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    stdout, _ = process.communicate(timeout=timeout)
    reader.join(timeout=30)
    os.close(master)
    return process.returncode, b"".join(shown).decode(errors="replace"), (stdout or b"").decode()


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("terminal")
    config = write_config(folder, shared_data)
    code, shown, stdout = on_terminal(winnow("base", "-c", config), folder)
    assert code == 0, shown[-3000:]
    return {"config": config, "folder": folder, "shown": shown, "stdout": stdout}


@pytest.mark.slow
def test_base_on_a_terminal_draws_one_line_that_ends_at_2_of_2(terminal_run):
    shown, run = terminal_run["shown"], terminal_run["folder"] / "run" / "base"
    drawings = [d.removesuffix("\x1b[K") for d in re.split(r"[\r\n]", shown) if d.startswith("base: tasks")]
    assert len(drawings) >= 2  # the first drawing, then about one a second
    assert all(LINE.match(d) and LINE.match(d)[2] == "2" for d in drawings)
    done = [int(LINE.match(d)[1]) for d in drawings]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 2
    last = drawings[-1]
    assert re.search(r" · done in \d+:\d\d$", last), last
    assert shown.rstrip("\r\n").endswith(last + "\x1b[K")  # the last drawing, then a newline
    summary = json.loads((run / "summary.json").read_text())
    reader_failures = total({k: v for k, v in summary["failed"].items() if k.startswith("reader_")})
    assert LINE.match(last)[3].replace(",", "") == str(summary["read"] - reader_failures)  # every document read
    # datatrove's INFO lines stay off the terminal, and in the task logs
    assert "INFO" not in shown and "Launching pipeline" not in shown
    assert "Launching pipeline" in (run / "logs" / "base" / "logs" / "task_00000.log").read_text()
    assert "winnow base: read" in terminal_run["stdout"]


@pytest.mark.slow
def test_base_piped_shows_no_progress_line(tmp_path, shared_data):
    config = write_config(tmp_path, shared_data)
    result = subprocess.run(winnow("base", "-c", config), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stderr and "\x1b[K" not in result.stderr
    assert "base: tasks" not in result.stderr
    assert "Launching pipeline for rank=0" in result.stderr  # datatrove's console logs, as without a terminal
    assert not (tmp_path / "run" / "base" / "logs" / "base" / "progress").exists()  # nothing counted


@pytest.mark.slow
def test_quiet_on_a_terminal_draws_no_line(tmp_path, shared_data):
    config = write_config(tmp_path, shared_data)
    code, shown, stdout = on_terminal(winnow("--quiet", "base", "-c", config), tmp_path)
    assert code == 0, shown[-3000:]
    assert "base: tasks" not in shown and "\r" not in shown.replace("\r\n", "\n")
    assert "INFO" not in shown  # datatrove's console cut to warnings and errors too
    assert "winnow base: read" in stdout


def test_quiet_is_accepted_before_and_after_the_command():
    from winnow.pipelines.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--quiet", "base", "-c", "x.yaml"]).quiet
    assert parser.parse_args(["base", "-c", "x.yaml", "--quiet"]).quiet
    assert not parser.parse_args(["base", "-c", "x.yaml"]).quiet
    assert parser.parse_args(["status", "-c", "x.yaml", "--watch"]).watch == 10
    assert parser.parse_args(["status", "-c", "x.yaml", "--watch", "2"]).watch == 2
    assert parser.parse_args(["status", "-c", "x.yaml"]).watch is None


@pytest.mark.slow
def test_status_watch_returns_at_once_when_every_stage_has_finished(terminal_run):
    config, folder = terminal_run["config"], terminal_run["folder"]
    result = subprocess.run(
        winnow("status", "-c", config, "--watch", "1"), cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("run progress:") == 1  # printed once, plainly
    assert "base: finished (summary.json written)" in result.stdout and "\x1b[" not in result.stdout

    code, shown, _ = on_terminal(winnow("status", "-c", config, "--watch"), folder, stdout_too=True, timeout=60)
    assert code == 0, shown
    assert shown.count("run progress:") == 1 and "no stage running or queued" in shown
