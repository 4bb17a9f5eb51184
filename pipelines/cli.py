"""The `winnow` command: one sub-command per stage, each `winnow <stage> -c CONFIG [--set key=value ...]`.

Stage modules are imported only when their command runs, so `winnow --help` and a config error
answer at once, before torch or datatrove are loaded.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipelines.config import ConfigError, load_config

# command → (module in pipelines/, what it does). Each module has `run(cfg, args)` (or `main(args)` when
# the command takes no config).
STAGES = {
    "base": ("pipelines.base", "WARC/JSONL/Parquet → extracted, filtered documents (FineWeb base)"),
    "dedup": ("pipelines.dedup", "exact + MinHash deduplication of base/"),
    "annotate": ("pipelines.annotate", "LLM educational-value annotation of a sample"),
    "train-classifier": ("pipelines.classifier", "train and evaluate the educational-quality classifier"),
    "score": ("pipelines.score", "score every document with the classifier"),
    "subsets": ("pipelines.subsets", "threshold subsets (edu-2, edu-3, ...) from the scores"),
    "ablate": ("pipelines.ablate", "tokenize → train → evaluate a proxy LM per ablation"),
    "report": ("pipelines.report", "compare the ablations / the whole run in report/"),
    "status": ("pipelines.status", "per stage: tasks done, running, failed"),
    "demo": ("pipelines.demo", "the whole recipe end to end"),
}
CONFIGLESS = {
    "evaluate": ("pipelines.evaluate", "evaluate any causal LM on the benchmarks"),
    "eval-extract": ("pipelines.eval_extract", "score extractors against trafilatura's ground truth"),
}


def _stage_arguments(name: str, p: argparse.ArgumentParser) -> None:
    if name == "score":
        p.add_argument("--classifier", help="a saved classifier folder (default: <output_dir>/classifier)")
        p.add_argument("--input", nargs="+", help="JSONL/Parquet files or globs to score instead of the run's")
        p.add_argument("--output", help="folder for the scored documents (with --input)")
    if name == "demo":
        p.add_argument("--data", help="WARC files (glob) to use instead of the config's input.paths")
    if name == "ablate":
        p.add_argument("--only-tokenize", action="store_true",
                       help="tokenize and write each run's train.json, then stop (train them with torchrun/sbatch)")
    if name == "status":
        p.add_argument("--stage", help="only this stage")


def _configless_arguments(name: str, p: argparse.ArgumentParser) -> None:
    if name == "evaluate":
        p.add_argument("--model", required=True, help="a HF model folder or a .gguf file")
        p.add_argument("--tasks", default="arc_easy,arc_challenge,hellaswag,piqa,siqa,openbookqa,winogrande,"
                       "commonsense_qa,mmlu,lambada,wikitext")
        p.add_argument("--limit", type=int, default=None, help="items per task (fixed seed sample)")
        p.add_argument("--output", help="write {task: {acc, acc_norm, n}} as JSON here")
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--seed", type=int, default=1234)
    if name == "eval-extract":
        p.add_argument("--extractor", default="all", help="an extractor name, a comma list, or 'all'")
        p.add_argument("--pages", default="../shared/data/warc/pages/*.warc.gz")
        p.add_argument("--truth", default="../shared/data/extraction-eval/trafilatura-evaldata.json")
        p.add_argument("--output", help="write the table as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="winnow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_) in STAGES.items():
        p = sub.add_parser(name, help=help_)
        p.add_argument("-c", "--config", required=name not in ("score",), help="the run's YAML config")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set executor.tasks=4")
        _stage_arguments(name, p)
    for name, (_, help_) in CONFIGLESS.items():
        p = sub.add_parser(name, help=help_)
        _configless_arguments(name, p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in CONFIGLESS:
            module = importlib.import_module(CONFIGLESS[args.command][0])
            return module.main(args) or 0
        cfg = None
        if args.config:
            check_inputs = args.command == "base"
            cfg = load_config(args.config, args.set, check_inputs=check_inputs)
        module = importlib.import_module(STAGES[args.command][0])
        return module.run(cfg, args) or 0
    except ConfigError as e:
        print(f"winnow: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
