"""What keeps a stage folder from being mixed: a run lock and a settings fingerprint, both taken before any work.

    <output_dir>/<stage>/.winnow.lock       who is running the stage now (pid, host, start time, command)
    <output_dir>/<stage>/fingerprint.json   what the stage's output depends on, written when the stage first starts

The lock is an `flock` on `.winnow.lock`, held for the whole run (`winnow <stage>`, or each stage of `winnow demo`).
The kernel drops it when the last process holding it ends, so a run killed with -9 never leaves a lock behind
that blocks the next one; the file's content (who held it) is then stale and the next run takes it over, saying
so. Worker processes forked by datatrove inherit the lock: while orphans of a killed run still write, the folder
stays locked and the refusal names their pids. On Slurm the lock covers the submission; the queue covers the
jobs (a stage with jobs still queued or running is refused too, whatever the executor).

The fingerprint holds, per stage (its `settings` in the registry): the config values the output depends on
(dotted keys), the input files (count, bytes, a digest of names and sizes) where the stage reads files the user
names, the fingerprints of the upstream stages it was computed from, and the versions of winnow and the libraries
that decide its output. Running a stage into a folder with another fingerprint — resuming or re-running — is a
one-line ConfigError naming what changed and the two ways out; the same fingerprint resumes as before.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from winnow import __version__
from winnow.errors import ConfigError
from winnow.files import write_json

if TYPE_CHECKING:
    from winnow.pipelines.config import RunConfig

LOCK_FILE = ".winnow.lock"
# A stage does not start on a file system with less free space than this. Why: pyarrow's Parquet writer aborts the
# whole process (a C++ check, not a Python exception) when a write fails with ENOSPC, so a full disk must be caught
# before the writers start. The resume after a mid-run abort works as after any kill.
MIN_FREE_BYTES = 64 * 2**20
FINGERPRINT_FILE = "fingerprint.json"


# ---- the run lock ------------------------------------------------------------------------------------------------
def _holders(path: Path) -> list[int]:
    """Pids of the processes on this host with `path` open (Linux /proc); [] where that cannot be read."""
    target, pids = str(path.resolve()), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(p for p in pids if p != os.getpid())


def _describe_holder(info: dict) -> str:
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: {info.get('command')}"


@contextlib.contextmanager
def stage_lock(stage_dir: Path, config_file: str | None = None) -> Iterator[dict]:
    """Hold the stage folder's run lock; a live holder → ConfigError. Yields the record of the previous holder when
    the lock is taken over from a run that ended without releasing it (killed), else {}."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    path = stage_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            info = _read_lock(path)
            alive = info.get("host") == socket.gethostname() and _pid_alive(info.get("pid"))
            if alive or info.get("host") not in (None, socket.gethostname()):
                who = _describe_holder(info)
                hint = "wait for it to finish, or stop it"
            else:  # its main process is gone but forked workers still hold the folder (a kill -9 of the main pid)
                pids = _holders(path)
                who = f"{_describe_holder(info)}; that process is gone, but its workers {pids or '(unknown pids)'} live"
                hint = f"stop them (kill {' '.join(map(str, pids))})" if pids else "stop them"
            raise ConfigError(f"{stage_dir} is in use by another winnow run ({who}); {hint}, then run again") from None
        previous = _read_lock(path)  # the lock is free but names a holder: that run ended without releasing it
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
            "config": config_file,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield previous
        except ConfigError:  # refused before any work: the folder is as it was, so is the record of who held it
            os.ftruncate(fd, 0)
            if previous:
                os.pwrite(fd, (json.dumps(previous) + "\n").encode(), 0)
            raise
        # a run that failed keeps its record: the next one says it resumes after it
        os.ftruncate(fd, 0)  # released cleanly: nothing to take over
    finally:
        os.close(fd)  # drops the flock (forked workers that still run keep it until they end)


def _read_lock(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refuse_if_queued(cfg: RunConfig, stage_dir: Path) -> None:
    """Slurm jobs of an earlier submission of this stage still queued or running: they write into the folder."""
    from winnow.pipelines.execution.queue import active_jobs, read_jobs

    if shutil.which("scontrol") is None:
        return
    # a stage submitted whole (`winnow run` on Slurm) runs inside its own job: that job is not "another" run
    busy = [j for j in active_jobs(read_jobs(stage_dir)) if j != os.environ.get("SLURM_JOB_ID")]
    if busy:
        raise ConfigError(
            f"{stage_dir} has Slurm jobs still queued or running ({', '.join(busy)}); wait for them "
            f"(winnow status -c {cfg.source_file}) or scancel them, then run again"
        )


def _refuse_if_full(stage_dir: Path) -> None:
    free = shutil.disk_usage(stage_dir).free
    if free < MIN_FREE_BYTES:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device (only {free / 2**20:.1f} MiB free, a stage needs at least "
            f"{MIN_FREE_BYTES // 2**20} MiB)",
            str(stage_dir),
        )


# ---- the fingerprint ---------------------------------------------------------------------------------------------
def _value(cfg: RunConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node.model_dump(mode="json") if hasattr(node, "model_dump") else node


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _files_digest(files: list[str]) -> dict:
    digest, total = hashlib.sha256(), 0
    for f in sorted(os.path.abspath(p) for p in files):
        size = os.path.getsize(f)
        total += size
        digest.update(f"{f}\t{size}\n".encode())
    return {"files": len(files), "bytes": total, "sha256": digest.hexdigest()}


def fingerprint(cfg: RunConfig, stage, upstream_stages: list[str]) -> dict:
    """What `stage`'s output in `cfg.output_dir` depends on (see the module docstring). `stage` is a
    registry.Stage; `upstream_stages` the stages before it (this module does not import the registry: the
    registry calls it)."""
    upstream = {}
    for name in upstream_stages:
        path = Path(cfg.output_dir) / name / FINGERPRINT_FILE
        if path.is_file():
            upstream[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    inputs_of = getattr(stage.load(), "fingerprint_inputs", None)
    return {
        "stage": stage.name,
        "settings": {key: _value(cfg, key) for key in stage.settings},
        "inputs": _files_digest(inputs_of(cfg)) if inputs_of else None,
        "upstream": upstream,
        "versions": {"winnow": __version__, **{lib: _version(lib) for lib in stage.libraries}},
    }


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(old: dict, new: dict) -> list[str]:
    """'key: old → new' for every fingerprint entry that changed."""
    changes = []
    for section in ("settings", "versions"):
        keys = sorted(set(old.get(section) or {}) | set(new.get(section) or {}))
        for key in keys:
            a, b = (old.get(section) or {}).get(key), (new.get(section) or {}).get(key)
            if a != b:
                label = key if section == "settings" else f"{key} version"
                changes.append(f"{label}: {_short(a)} → {_short(b)}")
    if old.get("inputs") != new.get("inputs"):
        a, b = old.get("inputs") or {}, new.get("inputs") or {}
        changes.append(
            f"input files: {a.get('files')} files/{a.get('bytes')} B → {b.get('files')} files/{b.get('bytes')} B"
        )
    for name in sorted(set(old.get("upstream") or {}) | set(new.get("upstream") or {})):
        if (old.get("upstream") or {}).get(name) != (new.get("upstream") or {}).get(name):
            changes.append(f"the {name} stage's output it was computed from")
    return changes


def check_fingerprint(cfg: RunConfig, stage, upstream_stages: list[str]) -> None:
    """Write the stage's fingerprint on its first start; refuse (ConfigError) a folder written under another one."""
    stage_dir = stage.folder(cfg.output_dir)
    path = stage_dir / FINGERPRINT_FILE
    wanted = fingerprint(cfg, stage, upstream_stages)
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            found = None
        if found == wanted:
            return
        if found is not None:
            changed = differences(found, wanted)
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise ConfigError(
                f"{cfg.source_file}: {stage_dir} was written with other settings ({shown}); restore them to "
                f"resume or re-run, or set a new output_dir (or delete {stage_dir}) to start over"
            )
    write_json(path, wanted)


@contextlib.contextmanager
def guarded(cfg: RunConfig, stage, upstream_stages: list[str]) -> Iterator[None]:
    """A stage run on its folder: the lock, no Slurm job of it still queued, and its fingerprint checked."""
    stage_dir = stage.folder(cfg.output_dir)
    created = stage_dir  # the outermost folder this run creates: removed again if the run is refused
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    existed, started = created.exists(), False
    try:
        with stage_lock(stage_dir, cfg.source_file) as previous:
            _refuse_if_queued(cfg, stage_dir)
            _refuse_if_full(stage_dir)
            if stage.settings is not None:
                check_fingerprint(cfg, stage, upstream_stages)
            if previous:
                print(
                    f"winnow: {stage_dir}: resuming after a run that ended without finishing "
                    f"({_describe_holder(previous)})",
                    file=sys.stderr,
                )
            started = True
            yield
    except (ConfigError, OSError) as e:
        # refused before any work (a ConfigError is found before work, by definition): leave nothing behind
        if not existed and (isinstance(e, ConfigError) or not started):
            shutil.rmtree(created, ignore_errors=True)
        raise


def run_stage(stage, cfg: RunConfig | None, args) -> int:
    """Run a registry stage: with its own executor section (`stages.<name>`), under its folder's lock and
    fingerprint. A stage that writes elsewhere (`winnow score --input ... --output ...`, its module's
    `writes_stage_folder(args)` says so) or runs without a config has no stage folder to guard."""
    module = stage.load()
    if cfg is None:
        return module.run(cfg, args) or 0
    cfg = cfg.for_stage(stage.name)
    if not getattr(module, "writes_stage_folder", lambda args: True)(args):
        return module.run(cfg, args) or 0
    from winnow.pipelines.registry import upstream_folders

    with guarded(cfg, stage, upstream_folders(stage.name, cfg)):
        return module.run(cfg, args) or 0
