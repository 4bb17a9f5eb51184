"""`winnow score`: every document gets `score` and `int_score` from the saved classifier, once.

With a config: reads the run's latest of `<output_dir>/dedup/` or `base/` (or `score.source`) and writes
`<output_dir>/score/*.parquet` (the input's columns + score, int_score), documents it cannot score to
`score/removed/unscorable/` (with `filter_reason`), summary.json and score_histogram.png.
Without one: `winnow score --classifier DIR --input FILES... --output DIR` scores any JSONL/Parquet files.
The classifier is a `winnow classifier` folder or a Hugging Face sequence-classification folder (the released
FineWeb-Edu classifier's format; winnow.classifiers.saved.load_classifier tells them apart).
"""

from __future__ import annotations

import functools
import glob
import os
import sys
from pathlib import Path

from winnow.blocks.scorers import EduScorer
from winnow.classifiers.hf_format import fingerprint as hf_fingerprint
from winnow.classifiers.hf_format import is_hf_config, read_config
from winnow.classifiers.saved import check_classifier, load_classifier
from winnow.pipelines.cards import write_dataset_card
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, offline_environment
from winnow.pipelines.plots import plot_score_histogram
from winnow.pipelines.registry import reads_stage
from winnow.pipelines.summary import stage_summary, step_counters, write_summary

STAGE = "score"


def keep_empty_text(self, data: dict, path: str, id_in_file):
    """Reader adapter: datatrove drops a record with empty text before any block sees it; a blank keeps it
    in the pipeline so that EduScorer counts it as unscorable (`empty_text`) instead of losing it."""
    document = self._default_adapter(data, path, id_in_file)
    if not document["text"]:
        document["text"] = " "
    return document


def source_folder(cfg: RunConfig) -> Path:
    # scoring only reads whole Parquet files and resumes per task, so it does not insist on a finished upstream
    return cfg.documents_source(cfg.score.source, "score.source", "score", require_finished=False)


def score_schema(source: Path):
    """The output schema when scoring a folder of Parquet documents: the input's columns + score, int_score.
    Why explicit: datatrove's ParquetWriter otherwise takes its schema from a task's first document, and a task
    whose first document has a null column (a url-less document) then fails on the next one with a value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(source.glob("*.parquet"))
    if not files:
        return None
    fields = [f for f in pq.read_schema(files[0]) if f.name not in ("score", "int_score")]
    return pa.schema([*fields, pa.field("score", pa.float64()), pa.field("int_score", pa.int64())])


def scoring_steps(
    readers: list[tuple[str, object]], out: Path, classifier: str, cfg: RunConfig, tasks: int, schema=None
) -> list[Step]:
    """One datatrove step per reader: read → EduScorer → Parquet writer (metadata as flat columns)."""
    from datatrove.pipeline.writers import ParquetWriter

    workers = cfg.executor.workers if cfg.executor.workers > 0 else tasks
    threads = max(1, (os.cpu_count() or 1) // max(1, min(workers, tasks)))
    steps = []
    for name, reader in readers:
        prefix = "" if len(readers) == 1 else f"{name}-"
        scorer = EduScorer(
            classifier,
            load_classifier,
            batch_size=cfg.score.batch_size,
            device=cfg.score.device,
            threads=threads,
            exclusion_writer=ParquetWriter(
                str(out / "removed" / "unscorable"),
                f"{prefix}${{rank}}.parquet",
                expand_metadata=True,
                max_file_size=-1,
            ),
        )
        writer = ParquetWriter(
            str(out), f"{prefix}${{rank}}.parquet", expand_metadata=True, max_file_size=-1, schema=schema
        )
        steps.append(Step(name=f"score-{name}" if prefix else "score", pipeline=[reader, scorer, writer], tasks=tasks))
    return steps


def finalize(stage_dir: str, step_names: list[str], classifier: str, config_file: str | None = None) -> None:
    """summary.json (read = scored + unscorable), score_histogram.png and the dataset card."""
    from collections import Counter

    counts = Counter()
    for name in step_names:
        for block, counter in step_counters(Path(stage_dir) / "logs" / name):
            if block.endswith("EduScorer"):
                counts.update(counter)
    unscorable = {k.split("/", 1)[1]: v for k, v in counts.items() if k.startswith("unscorable/")}
    histogram = {int(k.split("/", 1)[1]): v for k, v in counts.items() if k.startswith("int_score/")}
    write_summary(
        stage_dir,
        stage_summary(
            counts["documents"],
            counts["scored"],
            removed={"unscorable": unscorable},
            classifier=classifier,
            classifier_sha256=classifier_fingerprint(classifier),
            int_score_histogram={k: histogram[k] for k in sorted(histogram)},
        ),
    )
    plot_score_histogram(stage_dir, Path(stage_dir) / "score_histogram.png")
    write_dataset_card(stage_dir, STAGE, config_file)


def classifier_fingerprint(classifier: str) -> str:
    """SHA-256 of the saved classifier's config.json (training-data hash, calibration, hyperparameters); for a Hugging
    Face folder, of config.json and the weights (a fine-tuned copy keeps the same config)."""
    import hashlib

    if is_hf_config(read_config(classifier)):
        return hf_fingerprint(classifier)
    return hashlib.sha256((Path(classifier) / "config.json").read_bytes()).hexdigest()


def _refuse_mixing_classifiers(out: Path, classifier: str) -> None:
    """A re-run resumes the unfinished tasks; it must not mix scores of two different classifiers."""
    marker = out / "classifier.sha256"
    current = classifier_fingerprint(classifier)
    if marker.exists() and marker.read_text().strip() != current:
        raise ConfigError(
            f"{out} holds scores from another classifier (config.json changed since); "
            f"delete {out} to re-score with {classifier}"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(current + "\n")


def _readers_for(files: list[str], text_key: str = "text", id_key: str = "id") -> list[tuple[str, object]]:
    """Group input files by format; each group is read from its common folder through a paths file."""
    from datatrove.pipeline.readers import JsonlReader

    from winnow.blocks.readers import StreamingParquetReader

    groups: dict[str, list[str]] = {}
    for path in files:
        kind = "parquet" if path.endswith(".parquet") else "jsonl" if ".jsonl" in path or ".json" in path else None
        if kind is None:
            raise ConfigError(f"--input: {path} is neither JSONL nor Parquet")
        groups.setdefault(kind, []).append(os.path.abspath(path))
    readers = []
    for kind, paths in sorted(groups.items()):
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
        reader_cls = StreamingParquetReader if kind == "parquet" else JsonlReader
        readers.append(
            (
                kind,
                reader_cls(
                    root,
                    glob_pattern=None,
                    recursive=True,
                    adapter=keep_empty_text,
                    text_key=text_key,
                    id_key=id_key,
                    paths_file=_paths_file(paths, root),
                ),
            )
        )
    return readers


def _paths_file(paths: list[str], root: str) -> str:
    import hashlib
    import tempfile

    body = "\n".join(os.path.relpath(p, root) for p in sorted(paths)) + "\n"
    name = hashlib.sha1(body.encode()).hexdigest()[:12]
    listing = Path(tempfile.gettempdir()) / f"winnow-score-inputs-{name}.txt"
    listing.write_text(body)
    return str(listing)


def writes_stage_folder(args) -> bool:
    """`--input ... --output DIR` scores files outside any run: no stage folder to lock or fingerprint."""
    return not getattr(args, "input", None)


def optional_upstream(cfg: RunConfig) -> list[str]:
    """The optional stages this one reads (registry.upstream_folders): distill, when score.classifier is the student."""
    return ["distill"] if reads_stage(cfg, "distill", [cfg.score.classifier]) else []


def run(cfg: RunConfig | None, args) -> int:
    offline_environment()
    from winnow.blocks.readers import StreamingParquetReader

    if args.input:
        if not args.output:
            raise ConfigError("winnow score --input needs --output DIR")
        files = sorted({p for pattern in args.input for p in glob.glob(pattern) if os.path.isfile(p)})
        if not files:
            raise ConfigError(f"--input: no file matches {' '.join(args.input)}")
        out = Path(args.output)
        if cfg is None:
            cfg = RunConfig(name="score", output_dir=str(out.parent))
        classifier = args.classifier or str(Path(cfg.output_dir) / "classifier")
        readers = _readers_for(files)
        tasks = min(len(files), cfg.score.tasks or max(cfg.executor.tasks, os.cpu_count() or 1))
        run_cfg = cfg.model_copy(update={"output_dir": str(out.parent)})
        stage = out.name
    else:
        if cfg is None:
            raise ConfigError("winnow score needs -c CONFIG, or --classifier DIR --input FILES --output DIR")
        classifier = args.classifier or cfg.score.classifier or str(cfg.stage_dir("classifier"))
        source = source_folder(cfg)
        files = sorted(source.glob("*.parquet"))
        out, run_cfg, stage = cfg.stage_dir(STAGE), cfg, STAGE
        tasks = min(len(files), cfg.score.tasks or cfg.executor.tasks)
        readers = [
            (
                "parquet",
                StreamingParquetReader(str(source), glob_pattern="*.parquet", recursive=False, adapter=keep_empty_text),
            )
        ]
    if not (Path(classifier) / "config.json").exists():
        raise ConfigError(f"no saved classifier at {classifier}; run `winnow classifier` or pass --classifier")
    try:
        check_classifier(classifier)
    except ValueError as e:
        raise ConfigError(f"score.classifier / --classifier: {e}") from None
    classifier = str(Path(classifier).resolve())
    _refuse_mixing_classifiers(out, classifier)
    schema = None if args.input else score_schema(source)
    steps = scoring_steps(readers, out, classifier, run_cfg, tasks, schema)
    launch(
        run_cfg,
        stage,
        steps,
        functools.partial(finalize, str(out), [s.name for s in steps], classifier, cfg.source_file),
    )
    summary = __import__("json").loads((out / "summary.json").read_text())
    print(
        f"winnow: score: {summary['kept']} of {summary['read']} documents scored, "
        f"{sum(summary['removed']['unscorable'].values())} unscorable {summary['removed']['unscorable']} → {out}/",
        file=sys.stderr,
    )
    return 0
