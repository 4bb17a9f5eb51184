"""`winnow demo`: the whole recipe, end to end, on one machine: every stage of the registry, in order.

WARC shards → base → dedup → annotate (a sample, embedded LLM) → classifier → score → subsets →
ablate → report. Each stage is the same code `winnow <stage>` runs, called in order; a stage that
already finished is resumed (its completed tasks are skipped), so re-running the demo after an
interruption picks up where it stopped. Wall time per stage goes to `<output_dir>/timings.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from winnow.errors import StageFailed
from winnow.files import write_json
from winnow.pipelines import registry
from winnow.pipelines.config import RunConfig
from winnow.pipelines.summary import check_invariant, total


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="WARC files (glob) to use instead of the config's input.paths")


def run(cfg: RunConfig, args: argparse.Namespace) -> int:
    if getattr(args, "data", None):
        cfg.input.paths = [args.data]
        cfg.input.format = "warc"
    only = os.environ.get("DEMO_STAGES")  # e.g. DEMO_STAGES=base,dedup to run a prefix while developing
    stages = [s for s in registry.recipe() if not only or s.name in only.split(",")]
    timings_path = Path(cfg.output_dir) / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    started = time.time()
    for i, stage in enumerate(stages, 1):
        print(f"\n==> [{i}/{len(stages)}] {stage.name}", flush=True)
        t0 = time.time()
        code = stage.run(cfg, stage.default_arguments(cfg.source_file))
        timings[stage.name] = round(time.time() - t0, 1)
        write_json(timings_path, timings)
        print(f"==> {stage.name} done in {timings[stage.name]:.0f} s", flush=True)
        if code:
            raise StageFailed(f"stage {stage.name} failed (exit {code}); fix it and run `make demo` again")
    print_accounting(Path(cfg.output_dir))
    report = Path(cfg.output_dir) / "report" / "index.html"
    print(f"\nwinnow demo: finished in {time.time() - started:.0f} s. Report: {report.resolve()}")
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
