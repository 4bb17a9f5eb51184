"""The `winnow` command: one sub-command per stage of the registry, plus the tools.

    winnow <stage> -c CONFIG [--set key=value ...]     each stage of winnow.pipelines.registry, in order
    winnow demo -c CONFIG                              the whole recipe (registry order), end to end
    winnow status -c CONFIG [--watch [SECONDS]]        per stage: tasks done, running, failed
    winnow stages                                      the stage names, in order (the Makefile reads this)
    winnow evaluate / eval-extract / export-classifier / jury-agreement   tools that need no run config

Stage modules are imported only when their command runs, so `winnow --help` and a config error answer at
once, before torch or datatrove are loaded. This is the only place that prints an error and picks an exit
code: 2 for a configuration problem (winnow.errors.ConfigError), 1 for a stage that failed. `--quiet` (before or
after the command) turns off the progress line a local stage draws on a terminal (winnow.pipelines.progress).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass

from winnow import __version__
from winnow.errors import WinnowError
from winnow.pipelines import progress, registry
from winnow.pipelines.config import load_config
from winnow.pipelines.execution import offline_environment
from winnow.pipelines.guard import run_stage


@dataclass(frozen=True)
class Command:
    """A command that is not a stage: its module has `add_arguments(parser)` and `main(args)` (no config) or
    `run(cfg, args)` (with one)."""

    module: str
    help: str
    with_config: bool


COMMANDS = {
    "run": Command(
        "winnow.pipelines.recipe",
        "the whole recipe: " + " → ".join(registry.names()) + " (locally in order; on Slurm one job graph)",
        True,
    ),
    "demo": Command("winnow.pipelines.recipe", "the same as run (the name `make demo` uses)", True),
    "status": Command("winnow.pipelines.status", "per stage: tasks done, running, failed", True),
    "evaluate": Command("winnow.pipelines.tools.evaluate", "evaluate any causal LM on the benchmarks", False),
    "eval-extract": Command(
        "winnow.pipelines.tools.eval_extract", "score extractors against trafilatura's ground truth", False
    ),
    "export-classifier": Command(
        "winnow.pipelines.tools.export_classifier", "write a saved classifier as a Hugging Face model folder", False
    ),
    "jury-agreement": Command(
        "winnow.pipelines.tools.jury_agreement", "how well a jury of sampled LLM scores agrees with itself", False
    ),
}


def _config_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-c", "--config", required=required, help="the run's YAML config")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set executor.tasks=4",
    )


QUIET_HELP = "no progress line on the terminal, and datatrove's console logs cut to warnings and errors"


def _quiet_argument(p: argparse.ArgumentParser, top: bool = False) -> None:
    # accepted before and after the command; a command's parser leaves it unset unless given (SUPPRESS), so it
    # never overwrites `winnow --quiet <command>`
    p.add_argument("--quiet", action="store_true", default=False if top else argparse.SUPPRESS, help=QUIET_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="winnow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"winnow {__version__}")
    _quiet_argument(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in registry.STAGES.values():
        p = sub.add_parser(stage.name, help=stage.help, aliases=list(stage.aliases))
        _config_arguments(p, required=stage.config_required)
        _quiet_argument(p)
        stage.add_arguments(p)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help)
        if command.with_config:
            _config_arguments(p)
        _quiet_argument(p)
        importlib.import_module(command.module).add_arguments(p)
    sub.add_parser("stages", help="print the stage names in order, one per line")
    return parser


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "stages":
        print("\n".join(registry.names()))
        return 0
    if args.command in COMMANDS:
        command = COMMANDS[args.command]
        module = importlib.import_module(command.module)
        if not command.with_config:
            return module.main(args) or 0
        cfg = load_config(args.config, args.set, check_inputs=False)
        registry.check_old_folders(cfg.output_dir)
        return module.run(cfg, args) or 0
    stage = registry.get(args.command)
    cfg = load_config(args.config, args.set, check_inputs=stage.check_inputs) if args.config else None
    if cfg is not None:
        registry.check_old_folders(cfg.output_dir)
    return run_stage(stage, cfg, args)


def main(argv: list[str] | None = None) -> int:
    offline_environment()  # before any stage module loads transformers or the hub client
    args = build_parser().parse_args(argv)
    progress.set_quiet(args.quiet)
    try:
        return dispatch(args)
    except WinnowError as e:
        kind = "config error" if e.exit_code == 2 else "error"
        print(f"winnow: {kind}: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, permission denied, a path that is a file: one line, the traceback to a log
        where = f": {e.filename}" if e.filename else ""
        log = _traceback_log()
        print(f"winnow: error: {e.strerror or e}{where}" + (f" (traceback: {log})" if log else ""), file=sys.stderr)
        return 1


def _traceback_log() -> str | None:
    """Write the current exception's traceback to a file in the temp folder (the run folder may be what failed)."""
    import tempfile
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix="winnow-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(" ".join(sys.argv) + "\n\n" + traceback.format_exc())
        return path
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
