"""`winnow status -c CFG`: per stage and step, tasks done / total, running, pending, failed (with the tail of the
failed task's log), cancelled, and the command that relaunches what is missing. `--watch [SECONDS]` redraws the view
every SECONDS (default 10) until no stage is running or queued, or Ctrl-C; on a terminal in place, elsewhere each
view that differs from the last one is printed once. It exits 1 when a stage ended failed or incomplete.

It reads the run folder (datatrove's `completions/`, task logs, `executor.json`, `ranks_to_run.json`) and, for
stages submitted to Slurm (`<stage>/slurm_jobs.json`), the queue. Stages run locally are reported from the
folder alone.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from winnow.errors import StageFailed
from winnow.pipelines import registry
from winnow.pipelines.config import RunConfig
from winnow.pipelines.execution.queue import (
    FINALIZE,
    JOBS_FILE,
    active_jobs,
    job_tasks,
    read_jobs,
    record_job_ids,
    stage_finished,
)

RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESIZING"}
TAIL_LINES = 12  # of the task's log
SLURM_TAIL_LINES = 4  # of Slurm's error lines, after the task's log


WATCH_SECONDS = 10.0  # `--watch` with no value: each refresh asks the queue once per stage
CLEAR_SCREEN = "\033[H\033[J"  # cursor home, clear to the end of the screen


def add_arguments(p) -> None:
    p.add_argument("--stage", help="only this stage")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=WATCH_SECONDS,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {WATCH_SECONDS:.0f}) until no stage is running or queued; Ctrl-C stops",
    )


def run(cfg: RunConfig, args) -> int:
    stage = getattr(args, "stage", None)
    stage = registry.aliases().get(stage, stage) if stage else None
    if getattr(args, "watch", None) is None:
        print(view(cfg, stage)[0])
        return 0
    return watch(cfg, stage, max(args.watch, 0.5))


def view(cfg: RunConfig, only: str | None = None) -> tuple[str, list[str]]:
    """The status text and the state of each stage in it ("finished", "running", "FAILED", ...)."""
    out = Path(cfg.output_dir)
    lines = [f"run {cfg.name}: {out}"]
    if only:
        state, text = stage_view(cfg, only)
        return "\n".join([*lines, text]), [state]
    ran, states = run_stages(out), []
    for stage in registry.STAGES.values():  # every stage of the recipe, in order, run or not
        parts = [s for s in ran if s.split("/")[0] == stage.name]
        if not parts:
            state = "finished (ran in this process)" if stage.finished(out) else f"not run (make {stage.name})"
            lines.append(f"{stage.name}: {state}")
            states.append(state)
        for part in parts:
            state, text = stage_view(cfg, part)
            lines.append(text)
            states.append(state)
    return "\n".join(lines), states


def watch(cfg: RunConfig, only: str | None, seconds: float) -> int:
    """Redraw the view until no stage is running or queued (0, or 1 when one ended failed or incomplete)."""
    terminal = sys.stdout.isatty()
    last = None
    try:
        while True:
            text, states = view(cfg, only)
            settled = not any(s in ("running", "queued") for s in states)
            if terminal:
                footer = "no stage running or queued" if settled else f"refreshing every {seconds:g} s, Ctrl-C stops"
                print(f"{CLEAR_SCREEN}{text}\n\n{time.strftime('%H:%M:%S')} · {footer}", flush=True)
            elif text != last:
                print(("\n" if last is not None else "") + text, flush=True)
            last = text
            if settled:
                return 1 if any(s.startswith(("FAILED", "incomplete")) for s in states) else 0
            time.sleep(seconds)
    except KeyboardInterrupt:
        print()
        return 130


def _ran(p: Path) -> bool:
    return (p / "logs").is_dir() or (p / JOBS_FILE).is_file()


def run_stages(out: Path) -> list[str]:
    """Stage folders of the run that launched datatrove steps, in registry order (one level down too: ablate
    runs a stage per ablation, ablate/<name>)."""
    found = []
    for p in sorted(out.iterdir()) if out.is_dir() else []:
        if p.is_dir():
            nested = [f"{p.name}/{q.name}" for q in sorted(p.iterdir()) if q.is_dir() and _ran(q)]
            found += [p.name] if _ran(p) else nested
    order = {name: i for i, name in enumerate(registry.names())}
    return sorted(found, key=lambda s: (order.get(s.split("/")[0], len(order)), s))


def stage_report(cfg: RunConfig, stage: str) -> str:
    """One stage's part of `winnow status`: its state, then each step's tasks (and failed tasks' log tails)."""
    return stage_view(cfg, stage)[1]


def stage_view(cfg: RunConfig, stage: str) -> tuple[str, str]:
    """(state, text) of one stage: "finished ...", "running", "queued", "FAILED", "incomplete ...", "not started"."""
    stage_dir = Path(cfg.output_dir) / stage
    record = read_jobs(stage_dir)
    steps = _steps(stage_dir, record)
    lines, totals = [], Counter()
    for step in steps:
        counts, failures = _step_state(stage_dir / "logs" / step["name"], step)
        totals.update(counts)
        detail = ", ".join(f"{n} {what}" for what, n in counts.items() if what != "done" and n)
        lines.append(f"  {step['name']:<12} {counts['done']}/{step['tasks']} done" + (f", {detail}" if detail else ""))
        lines.extend(failures)

    if not steps:
        state = "not started"
    elif totals["running"] or totals["pending"]:
        state = "running" if totals["running"] else "queued"
    elif totals["failed"]:
        state = "FAILED"
    elif totals["unfinished"]:
        state = "incomplete (failed, or still running in a local process)"
    elif totals["cancelled"] or totals["not run"]:
        state = "incomplete"
    else:
        state = "finished" + (" (summary.json written)" if (stage_dir / "summary.json").is_file() else "")
    where = f" [Slurm jobs {', '.join(_job_ids(record))}]" if record else ""
    head = f"{stage}: {state}{where}"
    if state.startswith(("FAILED", "incomplete")):
        lines.append(f"  relaunch (runs only the missing tasks): {relaunch_command(cfg, stage, record)}")
    if record and totals["cancelled"]:
        lines.append("  (cancelled tasks were waiting on a job that failed; they run again with the relaunch)")
    return state, "\n".join([head, *lines])


def relaunch_command(cfg: RunConfig, stage: str, record: dict | None) -> str:
    if record and record.get("graph"):
        return f"winnow run -c {record.get('graph_config') or cfg.source_file}  (resubmits every unfinished stage)"
    command = f"winnow {stage.split('/')[0]} -c {cfg.source_file}"
    if record and cfg.executor.kind != "slurm":
        command += " --set executor.kind=slurm"
    return command


def _job_ids(record: dict) -> list[str]:
    ids = [s["job_id"] or "done" for s in record["steps"]]
    return ids + ([record["final_job"]] if record.get("finalize") and record.get("final_job") else [])


def _steps(stage_dir: Path, record: dict | None) -> list[dict]:
    """The stage's steps in order: from the Slurm record, else the step folders under logs/ (oldest first)."""
    if record:
        steps = [dict(s) for s in record["steps"]]
        if record.get("finalize"):
            steps.append({"name": FINALIZE, "tasks": 1, "job_id": record.get("final_job")})
        return steps
    logs = stage_dir / "logs"
    folders = (
        sorted((p for p in logs.glob("*/executor.json")), key=lambda p: p.stat().st_mtime) if logs.is_dir() else []
    )
    return [
        {"name": p.parent.name, "tasks": json.loads(p.read_text()).get("world_size", 1), "job_id": None, "local": True}
        for p in folders
    ]


def _step_state(log_dir: Path, step: dict) -> tuple[Counter, list[str]]:
    """Counts of done / running / pending / failed / cancelled / not run tasks, and a tail for each failed one."""
    done = {int(p.name) for p in (log_dir / "completions").glob("*")} if (log_dir / "completions").is_dir() else set()
    queued = _rank_states(log_dir, step["job_id"]) if step.get("job_id") and shutil.which("scontrol") else {}
    counts, failures = Counter(done=len(done & set(range(step["tasks"])))), []
    for rank in range(step["tasks"]):
        if rank in done:
            continue
        state, index = queued.get(rank, (None, None))
        task_log = log_dir / "logs" / f"task_{rank:05d}.log"
        if state in RUNNING:
            counts["running"] += 1
        elif state in WAITING:
            counts["pending"] += 1
        elif state == "DEPENDENCY":
            counts["cancelled"] += 1
        elif state is not None or task_log.is_file():
            # a local run leaves no queue to ask: an unfinished task there may still be running
            counts["unfinished" if step.get("local") else "failed"] += 1
            slurm_log = log_dir / "slurm_logs" / f"{step['job_id']}_{index}.out"
            logs = [task_log, slurm_log] if task_log.is_file() else [slurm_log]
            failures.extend(_tail(rank, state or "ended without completing", step.get("job_id"), index, logs))
        else:
            counts["not run"] += 1
    return counts, failures


def _rank_states(log_dir: Path, job_id: str) -> dict[int, tuple[str, str]]:
    """rank → (Slurm state, array index) for the step's last submission; the array index i ran rank
    ranks_to_run[i] (a relaunch runs only the missing ranks)."""
    ranks_file = log_dir / "ranks_to_run.json"
    ranks = json.loads(ranks_file.read_text()) if ranks_file.is_file() else []
    states = {}
    for indices, (state, reason) in job_tasks(job_id).items():
        if state == "CANCELLED" and reason == "DependencyNeverSatisfied":
            state = "DEPENDENCY"  # cancelled by Slurm because a job it waited on failed
        for index in _expand(indices.split("%")[0]) if indices else [0]:  # "": a plain job (a stage run whole)
            if index < len(ranks):
                states[ranks[index]] = (state, str(index))
    return states


def _expand(indices: str) -> list[int]:
    """Slurm's array index list ("3", "0-5", "1,4-6") → the indices."""
    out = []
    for part in filter(None, indices.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _tail(rank: int, state: str, job_id, index, logs: list[Path]) -> list[str]:
    """The last lines of the task's datatrove log, then of Slurm's output (which says why Slurm stopped it)."""
    where = f" (job {job_id}_{index}, {state})" if job_id and index is not None else f" ({state})"
    found = [log for log in logs if log.is_file()]
    if not found:
        return [f"    task {rank}{where}: no log (stopped before it started)"]
    lines = [f"    task {rank}{where}:"]
    for log in found:
        text = log.read_text(errors="replace").splitlines()
        if log.suffix == ".out":  # Slurm's output: its own lines ("*** JOB 7 ... CANCELLED AT ...", execve errors)
            errors = [t for t in text if "***" in t or "error" in t.lower()]
            text = (errors or text)[-SLURM_TAIL_LINES:]
            lines.append(f"      Slurm's messages in {log}")
        else:
            text = text[-TAIL_LINES:]
            lines.append(f"      last lines of {log}")
        lines.extend(f"      | {line}" for line in text)
    return lines


def wait_for_stage(cfg: RunConfig, stage: str, timeout: float = 300, poll: float = 0.5) -> None:
    """Block until the stage's jobs have left the queue (for tests and scripts: `launch` returns at once).
    Raises StageFailed, with what `winnow status` would say, when they ended without finishing the stage."""
    stage_dir = Path(cfg.output_dir).resolve() / stage
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = read_jobs(stage_dir)
        if record is None:
            raise RuntimeError(f"{stage}: nothing was submitted to Slurm ({stage_dir / JOBS_FILE} is missing)")
        if not active_jobs(record):
            if stage_finished(stage_dir, record):
                return
            raise StageFailed(f"{stage}: Slurm jobs ended without finishing the stage\n{stage_report(cfg, stage)}")
        time.sleep(poll)
    raise TimeoutError(f"{stage}: still running after {timeout:.0f} s (jobs {record_job_ids(read_jobs(stage_dir))})")
