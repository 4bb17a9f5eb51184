"""The stage registry: the one ordered list of winnow's stages. Everything that lists stages reads it.

    base → dedup → annotate → classifier → (distill) → score → subsets → decontaminate → (synthesize) → ablate → report

A stage's name is its command (`winnow <name>`), its make target (`make <name>`), its folder
(`<output_dir>/<name>/`) and its key in timings.json. Readers of this list: the CLI (`winnow --help`,
`winnow stages`), the Makefile's one pattern rule, the whole-recipe run (`winnow demo`), the order in which
Slurm submissions wait for each other, `winnow status`, the report's "not run → run this" hints and stage
table, and the README assembly (scripts/assemble_readme.sh).

Adding a stage: a module in winnow/pipelines/stages/ with `run(cfg, args) -> int`, one `Stage(...)` below,
its config section in config.py and its docs/sections/<name>.md.

This module imports nothing heavy (the CLI reads it before anything else is loaded).
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from winnow.errors import ConfigError


@dataclass(frozen=True)
class Arg:
    """One extra command-line option of a stage, as argparse.add_argument takes it."""

    flags: tuple[str, ...]
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str  # command = make target = folder under output_dir = timings key
    module: str  # a module with run(cfg, args) -> int
    help: str
    done_file: str = "summary.json"  # the file a finished stage leaves in its folder (written last)
    arguments: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()  # older command spellings, still accepted
    old_folders: tuple[str, ...] = ()  # the stage's folder names before winnow 0.2 (a run folder is checked for them)
    config_required: bool = True
    check_inputs: bool = False  # input.paths must match files when the config is loaded
    in_recipe: bool = True  # part of the whole-recipe run (`winnow demo`)
    # what the stage's output depends on, as dotted config keys (winnow.pipelines.guard writes them into
    # <stage>/fingerprint.json and refuses a folder written under others); None: the stage is not fingerprinted
    settings: tuple[str, ...] | None = ()
    libraries: tuple[str, ...] = ("datatrove",)  # distributions whose version is part of the fingerprint
    steps: tuple[str, ...] = ()  # steps that can get their own resources (stages.<name>.steps.<step>.executor)
    # how `winnow run` queues the stage on Slurm: "steps" = its datatrove steps as array jobs (it needs nothing of its
    # upstream's output at submission); "job" = the whole stage as one job that runs it inside (its checks of the
    # upstream's output, its sampling or training happen there, once the upstream has finished)
    slurm: str = "job"

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def folder(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / self.name

    def finished(self, output_dir: str | Path) -> bool:
        return (self.folder(output_dir) / self.done_file).is_file()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        for arg in self.arguments:
            parser.add_argument(*arg.flags, **arg.options)

    def default_arguments(self, config: str | None = None) -> argparse.Namespace:
        """The arguments `winnow <name>` would get with no option but -c: what the whole-recipe run passes."""
        parser = argparse.ArgumentParser(prog=f"winnow {self.name}")
        self.add_arguments(parser)
        return argparse.Namespace(config=config, set=[], **vars(parser.parse_args([])))


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage at the end of the order (a test adds a throwaway one this way)."""
    if stage.name in STAGES or stage.name in aliases():
        raise ValueError(f"stage {stage.name!r} is registered already")
    STAGES[stage.name] = stage
    return stage


def names() -> list[str]:
    return list(STAGES)


def aliases() -> dict[str, str]:
    return {alias: s.name for s in STAGES.values() for alias in s.aliases}


def get(name: str) -> Stage:
    """A stage by name or alias; KeyError names the known stages."""
    name = aliases().get(name, name)
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r} (stages: {', '.join(STAGES)})")
    return STAGES[name]


def recipe() -> list[Stage]:
    """The whole recipe, in order."""
    return [s for s in STAGES.values() if s.in_recipe]


def check_old_folders(output_dir: str | Path) -> None:
    """A run folder written before the stage names became one (winnow < 0.2) would be silently ignored: refuse it."""
    for stage in STAGES.values():
        for old in stage.old_folders:
            if (Path(output_dir) / old).is_dir() and not stage.folder(output_dir).exists():
                raise ConfigError(
                    f"{Path(output_dir) / old} is the {stage.name} stage's output under its old name: "
                    f"rename it to {stage.folder(output_dir)} (mv) and run again"
                )


def upstream_folders(name: str, cfg=None) -> list[str]:
    """The stages `name`'s output is computed from: the recipe's stages before it (all of them for a name that is not
    a stage), and the optional stages before it that it reads under `cfg` (its module's `optional_upstream(cfg)`:
    score when score.classifier is the distilled student, ablate when an ablation trains on synthesize/).

    An optional stage run later does not change a finished stage that does not read it (`make distill` after
    `make score` leaves score's folder valid), so it is not part of its fingerprint nor a Slurm dependency.
    """
    order = names()
    earlier = order[: order.index(name)] if name in order else order
    reads = getattr(STAGES[name].load(), "optional_upstream", None) if name in STAGES and cfg is not None else None
    optional = set(reads(cfg)) if reads else set()
    return [s for s in earlier if STAGES[s].in_recipe or s in optional]


def reads_stage(cfg, name: str, paths) -> bool:
    """Whether any of `paths` (files, folders or globs, as a config names them) lies in stage `name`'s folder of
    `cfg`'s run: what an `optional_upstream` hook asks."""
    folder = STAGES[name].folder(cfg.output_dir).resolve()
    return any(Path(p).resolve().is_relative_to(folder) for p in paths if p)


# ---- winnow's stages, in the order they feed each other -------------------------------------------------------
register(
    Stage(
        "base",
        "winnow.pipelines.stages.base",
        "WARC/JSONL/Parquet → extracted, filtered documents (FineWeb base)",
        check_inputs=True,
        slurm="steps",
        # input.paths is fingerprinted as the files it matches (stages/base.py: fingerprint_inputs)
        settings=(
            "dump",
            "input.format",
            "input.text_key",
            "input.id_key",
            "input.limit",
            "extract",
            "filters",
            "pii",
            "executor.tasks",
        ),
        libraries=("datatrove", "trafilatura", "resiliparse", "fastwarc", "fasttext-numpy2-wheel", "tokenizers"),
    )
)
register(
    Stage(
        "dedup",
        "winnow.pipelines.stages.dedup",
        "exact + MinHash deduplication of base/",
        settings=("dedup", "executor.tasks"),
        libraries=("datatrove", "xxhash", "datasketch"),
        steps=("signatures", "buckets", "exact_buckets", "clusters", "datasketch", "filter"),
        slurm="steps",
    )
)
register(
    Stage(
        "annotate",
        "winnow.pipelines.stages.annotate",
        "LLM educational-value annotation of a sample",
        # the annotator's connection settings (url, timeouts, concurrency) do not change the answers
        settings=(
            "annotate",
            "annotator.kind",
            "annotator.model",
            "annotator.mode",
            "annotator.temperature",
            "annotator.max_tokens",
            "annotator.samples",
            "annotator.aggregate",
            "annotator.extra_body",
            "annotator.model_dir",
        ),
        libraries=("datatrove", "transformers"),
        old_folders=("annotations",),
    )
)
register(
    Stage(
        "classifier",
        "winnow.pipelines.stages.classifier",
        "train and evaluate the educational-quality classifier",
        done_file="eval.json",
        settings=("classifier",),  # + the label files (stages/classifier.py: fingerprint_inputs)
        libraries=("torch", "transformers", "fasttext-numpy2-wheel"),
        aliases=("train-classifier",),
    )
)
register(
    Stage(
        "distill",
        "winnow.pipelines.stages.distill",
        "a fast static-embedding student of the classifier, for CPU scoring (optional; not in the demo)",
        in_recipe=False,  # scoring the pool with the MiniLM teacher takes minutes of CPU: more than the demo affords
        settings=("distill", "score.source", "classifier.output"),  # + the pool's files (stages/distill.py)
        libraries=("torch", "transformers", "tokenizers", "scikit-learn"),
    )
)
register(
    Stage(
        "score",
        "winnow.pipelines.stages.score",
        "score every document with the classifier (score, int_score columns)",
        config_required=False,
        old_folders=("scored",),
        # the classifier itself is checked by its hash (stages/score.py: classifier.sha256)
        settings=("score.classifier", "score.source", "score.tasks", "executor.tasks"),
        libraries=("datatrove", "torch", "transformers"),
        arguments=(
            Arg(("--classifier",), {"help": "a saved classifier folder (default: <output_dir>/classifier)"}),
            Arg(("--input",), {"nargs": "+", "help": "JSONL/Parquet files or globs to score instead of the run's"}),
            Arg(("--output",), {"help": "folder for the scored documents (with --input)"}),
        ),
    )
)
register(
    Stage(
        "subsets",
        "winnow.pipelines.stages.subsets",
        "threshold subsets (edu-2, edu-3, ...) from the scores",
        settings=("subsets", "output", "executor.tasks"),
    )
)
register(
    Stage(
        "decontaminate",
        "winnow.pipelines.stages.decontaminate",
        "remove subset documents sharing a 13-gram with a benchmark item",
        # ablate.tasks and ablate.benchmarks_dir are decontaminate's defaults
        settings=("decontaminate", "ablate.tasks", "ablate.benchmarks_dir", "output", "executor.tasks"),
        libraries=("datatrove", "xxhash", "numpy"),
    )
)
register(
    Stage(
        "synthesize",
        "winnow.pipelines.stages.synthesize",
        "Cosmopedia-style synthetic documents from the run's seeds (optional; not in the demo)",
        in_recipe=False,
        # the server's connection settings do not change the generations; its model does (synthesize.server is in
        # `synthesize`); decontaminate's settings (and their ablate defaults) choose the benchmark items
        settings=(
            "synthesize",
            "annotator.kind",
            "annotator.model",
            "annotator.model_dir",
            "annotator.extra_body",
            "decontaminate",
            "ablate.tasks",
            "ablate.benchmarks_dir",
        ),
        libraries=("datatrove", "transformers", "datasketch", "scikit-learn"),
        steps=("generate", "postprocess"),
    )
)
register(
    Stage(
        "ablate",
        "winnow.pipelines.stages.ablate",
        "tokenize → train → evaluate a proxy LM per ablation",
        old_folders=("ablations",),
        # not `ablate.ablations`: each ablation has its own folder, so adding one to the list resumes the others
        settings=(
            "ablate.preset",
            "ablate.model_overrides",
            "ablate.tokens",
            "ablate.batch_size",
            "ablate.micro_batch_size",
            "ablate.learning_rate",
            "ablate.schedule",
            "ablate.seeds",
            "ablate.eval_every",
            "ablate.tokenizer_docs_per_source",
            "ablate.tasks",
            "ablate.eval_limit",
            "ablate.eval_limit_mode",
            "ablate.wikitext_articles",
            "ablate.eval_seed",
            "ablate.benchmarks_dir",
            "ablate.validation_tokens",
        ),
        libraries=("datatrove", "torch", "transformers", "tokenizers"),
        arguments=(
            Arg(
                ("--only-tokenize",),
                {
                    "action": "store_true",
                    "help": "tokenize and write each run's train.json, then stop (train them with torchrun/sbatch)",
                },
            ),
            Arg(
                ("--emit-nanotron",),
                {
                    "metavar": "DIR",
                    "help": "tokenize, then write a nanotron config per ablation and seed into DIR (no training)",
                },
            ),
            Arg(
                ("--nanotron-dp",),
                {"type": int, "default": 8, "metavar": "N", "help": "data-parallel ranks of the nanotron configs"},
            ),
        ),
    )
)
register(
    Stage(
        "report",
        "winnow.pipelines.stages.report",
        "the run's report: funnel, dedup, classifier, ablations (report/index.html)",
        done_file="index.html",
        settings=None,  # rebuilt from whatever the other stages hold, every time
    )
)
