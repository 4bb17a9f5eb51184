"""`winnow run` (= `winnow demo`): the whole recipe, every stage of the registry, in order.

WARC shards → base → dedup → annotate (a sample, embedded LLM) → classifier → score → subsets →
decontaminate → ablate → report.

Locally (and on Ray) each stage is the same code `winnow <stage>` runs, called in order; a stage that
already finished is resumed (its completed tasks are skipped), so re-running after an interruption picks
up where it stopped. Wall time per stage goes to `<output_dir>/timings.json`.

On Slurm (`executor.kind: slurm`) the whole recipe is submitted at once as one dependency graph and the
command returns: base and dedup as their datatrove steps' array jobs, every later stage as one job that runs
it inside its allocation (registry `Stage.slurm`), each behind the final jobs of its upstream stages
(afterok). A stage's checks of its upstream's output run inside its own job, so no stage reads a partial
upstream; a failed job cancels everything downstream (--kill-on-invalid-dep). The jobs read the resolved
config (`<output_dir>/run-config.yaml`: the file plus the --set overrides). Running the same command again
skips finished stages, leaves queued ones queued (later stages wait on them) and resubmits the rest; only
the missing tasks of each run again. `winnow status -c CONFIG [--watch]` follows the graph.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from winnow.errors import StageFailed
from winnow.files import write_json, write_text
from winnow.pipelines import registry
from winnow.pipelines.config import RunConfig
from winnow.pipelines.guard import guarded, run_stage
from winnow.pipelines.summary import check_invariant, total


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="WARC files (glob) to use instead of the config's input.paths")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="Slurm: write every sbatch script of the graph under <output_dir>.dry-run/ and print them; submit nothing",
    )


def run(cfg: RunConfig, args: argparse.Namespace) -> int:
    if getattr(args, "data", None):
        cfg.input.paths = [args.data]
        cfg.input.format = "warc"
    only = os.environ.get("DEMO_STAGES")  # e.g. DEMO_STAGES=base,dedup to run a prefix while developing
    stages = [s for s in registry.recipe() if not only or s.name in only.split(",")]
    if getattr(args, "dry_run", False):
        return dry_run(cfg, stages)
    if cfg.executor.kind == "slurm":
        return submit_graph(cfg, stages)
    timings_path = Path(cfg.output_dir) / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    started = time.time()
    for i, stage in enumerate(stages, 1):
        print(f"\n==> [{i}/{len(stages)}] {stage.name}", flush=True)
        t0 = time.time()
        code = run_stage(stage, cfg, stage.default_arguments(cfg.source_file))
        timings[stage.name] = round(time.time() - t0, 1)
        write_json(timings_path, timings)
        print(f"==> {stage.name} done in {timings[stage.name]:.0f} s", flush=True)
        if code:
            raise StageFailed(f"stage {stage.name} failed (exit {code}); fix it and run `make demo` again")
    print_accounting(Path(cfg.output_dir))
    report = Path(cfg.output_dir) / "report" / "index.html"
    print(f"\nwinnow demo: finished in {time.time() - started:.0f} s. Report: {report.resolve()}")
    return 0


def submit_graph(cfg: RunConfig, stages: list[registry.Stage]) -> int:
    """Queue every unfinished stage on Slurm behind its upstream and return (see the module docstring)."""
    from winnow.pipelines.execution.queue import active_jobs, read_jobs, stage_finished, write_jobs
    from winnow.pipelines.execution.slurm import submit_stage_job

    out = Path(cfg.output_dir)
    config_file = out.resolve() / "run-config.yaml"  # what every stage job loads: the config as resolved here
    out.mkdir(parents=True, exist_ok=True)
    resolved = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    write_text(
        config_file, f"# written by `winnow run -c {cfg.source_file}`; the Slurm jobs of this run load it\n{resolved}"
    )
    for stage in stages:
        folder = stage.folder(out)
        record = read_jobs(folder)
        if record and active_jobs(record):
            print(
                f"winnow run: {stage.name} is still queued or running (jobs {record['final_job']}): kept",
                file=sys.stderr,
            )
            continue
        if stage.finished(out) and (record is None or stage_finished(folder, record)):
            print(f"winnow run: {stage.name} finished: skipped", file=sys.stderr)
            continue
        if stage.slurm == "steps":
            code = run_stage(stage, cfg, stage.default_arguments(str(config_file)))
            if code:
                raise StageFailed(f"stage {stage.name} could not be submitted (exit {code})")
        else:
            stage_cfg = cfg.for_stage(stage.name)
            with guarded(stage_cfg, stage, registry.upstream_folders(stage.name, stage_cfg)):
                submit_stage_job(stage_cfg, stage.name, str(config_file))
        record = read_jobs(folder)
        if record is not None:  # mark it part of the graph: status proposes `winnow run` as the relaunch
            write_jobs(folder, {**record, "graph": True, "graph_config": cfg.source_file})
    print(
        f"winnow run: the recipe is queued on Slurm; follow it with: winnow status -c {cfg.source_file} --watch",
        file=sys.stderr,
    )
    return 0


def dry_run(cfg: RunConfig, stages: list[registry.Stage]) -> int:
    """The Slurm graph as it would be submitted, written into a sandbox folder beside the run folder, with
    placeholder job ids: one line per job (stage, step, array size, partition, time, CPUs, memory, extra options,
    what it waits on)."""
    from winnow.errors import ConfigError
    from winnow.pipelines.execution import slurm

    if cfg.executor.kind != "slurm":
        raise ConfigError(f"{cfg.source_file}: --dry-run shows a Slurm graph; set executor.kind: slurm")
    sandbox = Path(str(Path(cfg.output_dir)) + ".dry-run")
    cfg = cfg.model_copy(update={"output_dir": str(sandbox)})
    slurm.DRY_RUN = True
    try:
        submit_graph(cfg, stages)
    finally:
        slurm.DRY_RUN = False
    from winnow.pipelines.execution.queue import read_jobs

    print(f"{'job':<28}{'array':>7}  {'partition':<10}{'time':<11}{'cpus':>5}{'mem/cpu':>9}  options / after")
    scripts = []
    for stage in stages:
        record = read_jobs(sandbox / stage.name) or {"steps": []}
        for step in [s["name"] for s in record["steps"]] + (["finalize"] if record.get("finalize") else []):
            folder = sandbox / stage.name / "logs" / step
            scripts += [p for p in (folder / "launch_script.sh", folder / "job.sh") if p.is_file()]
    for script in scripts:
        args = dict(
            line.removeprefix("#SBATCH --").partition("=")[::2]
            for line in script.read_text().splitlines()
            if line.startswith("#SBATCH --")
        )
        job = args.pop("job-name", script.parent.name).removeprefix(f"winnow.{cfg.name}.")
        extra = {k: v for k, v in args.items() if k in ("gres", "gpus", "qos", "dependency", "constraint")}
        if "dependency" in extra:  # placeholder ids: say which jobs, not their made-up ids
            extra["dependency"] = extra["dependency"].replace(f"dry-winnow.{cfg.name}.", "").replace("dry-", "")
        print(
            f"{job:<34}{args.get('array', '-').split('%')[0]:>7}  {args.get('partition', '-'):<10}"
            f"{args.get('time', '-'):<11}{args.get('cpus-per-task', '-'):>5}{args.get('mem-per-cpu', '-'):>9}  "
            + " ".join(f"{k}={v}" for k, v in extra.items())
        )
    print(f"\nwinnow run --dry-run: the scripts are under {sandbox}/<stage>/logs/; nothing was submitted")
    return 0


def print_accounting(run_dir: Path) -> None:
    """Every stage's summary.json, checked once more: read = kept + Σremoved + Σfailed (raises if not)."""
    print(f"\n{'stage':<28}{'read':>8}{'kept':>8}{'removed':>9}{'failed':>8}")
    for path in sorted(run_dir.glob("*/summary.json")) + sorted(run_dir.glob("*/*/summary.json")):
        summary = json.loads(path.read_text())
        if "read" not in summary:
            continue
        check_invariant(summary)
        print(
            f"{str(path.parent.relative_to(run_dir)):<28}{summary['read']:>8}{summary['kept']:>8}"
            f"{total(summary.get('removed', {})):>9}{total(summary.get('failed', {})):>8}"
        )
