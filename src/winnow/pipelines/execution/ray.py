"""The Ray executor: each step on datatrove's RayPipelineExecutor on a running Ray cluster, then finalize here.

Like the local executor, `launch_ray` returns when the stage is done: step after step (completed tasks skipped),
the completeness check, then `finalize` (summary.json, plots) in this process. The run folder ends as a local
run leaves it.

Which cluster (`executor.ray_address`): an address given in the config (host:port of the head); else, for
`auto`, the environment's RAY_ADDRESS, then the head `make ray-up` started (scripts/ray-up.sh records its address
in $WINNOW_RAY_ROOT, default /tmp/winnow-ray), then Ray's own lookup (a head started with `ray start --head`).
No head there, or no ray installed: a one-line ConfigError before any work.

Every node must see the run folder and the inputs at the same paths (one machine, or a shared file system) and
run winnow's Python environment (`make ray-up` starts the head from the project's virtualenv). Ray starts its
workers in the folder of the head; each task first enters the folder winnow was started from (`EnterFolder`), so
relative paths in the config mean what they mean in a local run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from winnow.errors import ConfigError
from winnow.pipelines.config import RunConfig
from winnow.pipelines.execution.base import Step, logging_dir, raise_if_incomplete

RAY_UP_ROOT = "/tmp/winnow-ray"  # scripts/ray-up.sh's default --temp-dir (WINNOW_RAY_ROOT overrides both)
ADDRESS_FILE = "ray_current_cluster"  # where `ray start` writes the head's address, inside its --temp-dir
# the variables offline_environment() sets (execution/base.py): Ray workers get the head's environment, not ours
OFFLINE_VARIABLES = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS",
    "TOKENIZERS_PARALLELISM",
)


def launch_ray(cfg: RunConfig, stage: str, steps: list[Step], finalize: Callable[[], None] | None = None) -> None:
    """Run the steps one after the other on the Ray cluster (completed tasks skipped), then finalize here."""
    from datatrove.executor.ray import RayPipelineExecutor  # heavy: loaded when a stage runs (it imports no ray)

    connected_here = connect(cfg)  # no ray, or no cluster: ConfigError before any work
    import ray

    try:
        for step in steps:
            ex = cfg.executor_for(stage.split("/")[0], step.name)  # stages.<stage>[.steps.<step>].executor
            ex = ex.model_copy(update={k: v for k, v in step.extra.items() if k in type(ex).model_fields})
            _check_fits(cfg, ex.cpus_per_task, ex.mem_per_cpu_gb)
            workers = step.workers if step.workers != -1 else ex.workers
            executor = RayPipelineExecutor(
                pipeline=[EnterFolder(os.getcwd()), *step.pipeline],
                tasks=step.tasks,
                workers=min(workers, step.tasks) if workers > 0 else -1,
                logging_dir=str(Path(logging_dir(cfg, stage, step.name)).resolve()),
                skip_completed=True,
                cpus_per_task=ex.cpus_per_task,
                mem_per_cpu_gb=ex.mem_per_cpu_gb,
            )
            executor.run()
            raise_if_incomplete(cfg, stage, step)
    finally:
        if connected_here:
            ray.shutdown()
    if finalize is not None:
        finalize()


class EnterFolder:
    """The first block of every task on Ray: the task works in the folder winnow was started from.

    Ray starts its workers in the folder of the head, and a datatrove folder given as a relative path (`output_dir:
    runs/demo`) is re-created, when a worker unpickles the block that holds it, relative to the worker's folder.
    This block comes first in the pipeline, so it is unpickled first, and unpickling it enters the folder."""

    def __init__(self, folder: str):
        self.folder = folder

    def __reduce__(self):
        return _entered, (self.folder,)

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        os.chdir(self.folder)
        return data

    def __repr__(self) -> str:
        return f"EnterFolder({self.folder})"


def _entered(folder: str) -> EnterFolder:
    os.chdir(folder)
    return EnterFolder(folder)


# ------------------------------------------------------------------------------------------- the cluster


def ray_address(setting: str = "auto") -> tuple[str, str]:
    """(address to connect to, where it came from) for an `executor.ray_address`; the order is in the module's
    docstring. "auto" is left to Ray's lookup only when neither RAY_ADDRESS nor a `make ray-up` head is there."""
    if setting != "auto":
        return setting, "executor.ray_address"
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    recorded = Path(os.environ.get("WINNOW_RAY_ROOT") or RAY_UP_ROOT) / ADDRESS_FILE
    try:
        address = recorded.read_text().strip()
    except OSError:
        address = ""
    if address:
        return address, f"the head of make ray-up, {recorded}"
    return "auto", "Ray's lookup of a local head"


def connect(cfg: RunConfig) -> bool:
    """Connect this process to the cluster as a Ray driver; True when connected here (False: already connected by
    the caller, whose connection is used and left open). No cluster, or no ray: ConfigError."""
    source = cfg.source_file or "config"
    address, origin = ray_address(cfg.executor.ray_address)
    way_out = "start one: make ray-up, or set executor.ray_address"
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"{source}: executor.kind is ray but ray is not installed (pip install 'winnow-curate[ray]')"
        ) from None
    if ray.is_initialized():
        return False
    if address != "auto" and not _answers(address):
        raise ConfigError(
            f"{source}: executor.kind is ray but no Ray cluster answers at {address} ({origin}); {way_out}"
        )
    try:
        ray.init(
            address=address,
            runtime_env={"env_vars": {k: os.environ[k] for k in OFFLINE_VARIABLES if k in os.environ}},
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:  # none found, a version mismatch, a bad address
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{source}: executor.kind is ray but connecting to a Ray cluster at {address} failed ({origin}: {why}); "
            + way_out
        ) from None
    return True


def _answers(address: str, timeout: float = 3.0) -> bool:
    """Something listens at host:port (a quick look before ray.init, which waits a minute for a head that is gone)."""
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _check_fits(cfg: RunConfig, cpus: int, mem_per_cpu_gb: float) -> None:
    """A task that no node can hold would wait forever for its placement group: refuse it in one line instead."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    needed_gb = cpus * mem_per_cpu_gb
    if any(n.get("CPU", 0) >= cpus and n.get("memory", 0) >= needed_gb * 2**30 for n in nodes):
        return
    offered = ", ".join(f"{n.get('CPU', 0):g} CPUs and {n.get('memory', 0) / 2**30:.1f} GB" for n in nodes) or "none"
    raise ConfigError(
        f"{cfg.source_file or 'config'}: executor: a Ray task asks {cpus} CPUs and {needed_gb:g} GB "
        f"(cpus_per_task × mem_per_cpu_gb) but no node of the cluster has that much (nodes: {offered}); "
        "lower executor.cpus_per_task or executor.mem_per_cpu_gb"
    )
