"""`winnow synthesize`: Cosmopedia-style synthetic documents written by an LLM from the run's own seed documents.

    seeds: synthesize.source, else subsets/edu-3, else dedup/ or base/ (a seeded sample of seed_documents), or
           synthesize.topics_file (one topic per line)
      → plan (winnow.synthesis.plan): topics by MiniLM + k-means, generations spread over topic × format × audience,
        prompts rendered from the versioned templates (winnow.synthesis.templates)
      → synthesize/plan.jsonl + plan/seeds.parquet + plan/plan.json, all written BEFORE any request
      → step `generate`: datatrove InferenceRunner over plan.jsonl (checkpoints every synthesize.checkpoint_every)
           rollout: winnow.synthesis.generate.TextGenerator → the endpoint, or the embedded SmolLM2 server
        → synthesize/generations/${rank}_${chunk_index}.parquet (one row per requested generation, failed included)
      → step `postprocess` (one task; winnow.blocks.synthetic + the decontamination block):
           failed → failed/generation/, truncated → removed/truncated/, MinHash near-duplicates of an earlier
           generation or of the seed → removed/near_duplicate/ and removed/near_duplicate_of_seed/, a 13-gram shared
           with a benchmark item (the decontaminate stage's block and settings) → removed/contaminated/
        → synthesize/${rank}.parquet: the kept generations
      → summary.json (requested = kept + Σremoved + Σfailed), README.md (dataset card)

Output columns (kept, removed, failed alike): text, id, token_count (GPT-2), seed_id, topic, format, audience,
prompt_version, model, status, finish_reason, truncated, attempts, error, prompt_tokens, completion_tokens, seconds
(+ filter_reason outside the kept files).

Resume: the plan is read back, never recomputed (a changed plan is refused: plan/plan.json and the stage's settings
fingerprint); the InferenceRunner's checkpoints skip every generation already written, so a rerun after kill -9 asks
only for the ones not finished. The server: synthesize.server, or else the `annotator:` section (kinds local and
endpoint; only its connection settings are used, sampling is synthesize.generation).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
from collections import Counter
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.inference.servers import InferenceServer

from winnow.blocks.formatters import GPT2TokenCounter
from winnow.blocks.synthetic import GenerationFailed, SyntheticNearDuplicates, TruncatedGeneration
from winnow.classifiers.annotators import AnnotatorUnavailable
from winnow.classifiers.local_server import GGUF_FILE, ensure_model_dir
from winnow.errors import AccountingError
from winnow.files import write_json
from winnow.pipelines.cards import write_dataset_card
from winnow.pipelines.config import AnnotatorConfig, ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, offline_environment
from winnow.pipelines.stages.annotate import NoServer, embedded_server, reason_key
from winnow.pipelines.summary import stage_summary, write_summary
from winnow.synthesis.generate import TextGenerator, generate_document
from winnow.synthesis.plan import assign_topics, embed, make_plan
from winnow.synthesis.templates import load_templates, truncate_extract

STAGE = "synthesize"
DEFAULT_SEED_SUBSET = "edu-3"  # Cosmopedia seeded from educational pages; FineWeb-Edu's threshold
DISTINCT_N = 3  # word n-grams of the distinct-n diversity ratio
EXAMPLES_PER_FORMAT = 2


# ---- which seeds ------------------------------------------------------------------------------------------------
def seed_source(cfg: RunConfig) -> Path | None:
    """The seed documents' folder (None with a topics file): synthesize.source, else subsets/edu-3, else dedup/base."""
    s = cfg.synthesize
    if s.topics_file:
        if not Path(s.topics_file).is_file():
            raise ConfigError(f"{cfg.source_file}: synthesize.topics_file: no such file {s.topics_file}")
        return None
    if not s.source:
        subset = cfg.stage_dir("subsets") / DEFAULT_SEED_SUBSET
        if any(subset.glob("*.parquet")) and (cfg.stage_dir("subsets") / "summary.json").is_file():
            return subset
    return cfg.documents_source(s.source, "synthesize.source", "synthesize from")


def read_seeds(cfg: RunConfig) -> list[dict]:
    """[{id, text}] of the seeds: every topic line, or a seeded sample of synthesize.seed_documents documents."""
    import numpy as np
    import pyarrow.parquet as pq

    s = cfg.synthesize
    source = seed_source(cfg)
    if source is None:
        lines = [line.strip() for line in Path(s.topics_file).read_text(encoding="utf-8").splitlines()]
        seeds = [{"id": f"topic-{i:05d}", "text": line} for i, line in enumerate(line for line in lines if line)]
    else:
        seeds, seen = [], set()
        for path in sorted(source.glob("*.parquet")):
            for row in pq.read_table(path, columns=["id", "text"]).to_pylist():
                if row["text"] and str(row["id"]) not in seen:
                    seen.add(str(row["id"]))
                    seeds.append({"id": str(row["id"]), "text": row["text"]})
        if len(seeds) > s.seed_documents:
            chosen = np.random.default_rng(s.seed).choice(len(seeds), size=s.seed_documents, replace=False)
            seeds = [seeds[i] for i in sorted(chosen)]
    if not seeds:
        raise ConfigError(f"{cfg.source_file}: synthesize: no seed text in {source or s.topics_file}")
    return seeds


# ---- the plan ---------------------------------------------------------------------------------------------------
def chosen_names(cfg: RunConfig, templates) -> tuple[list[str], list[str]]:
    s = cfg.synthesize
    formats = s.formats or list(templates.formats)
    audiences = s.audiences or list(templates.audiences)
    for key, names, known in (("formats", formats, templates.formats), ("audiences", audiences, templates.audiences)):
        unknown = [n for n in names if n not in known]
        if unknown or len(set(names)) != len(names):
            raise ConfigError(
                f"{cfg.source_file}: synthesize.{key}: {unknown or 'repeated names'} "
                f"(prompts {templates.version} has: {', '.join(known)})"
            )
    return formats, audiences


def plan_spec(cfg: RunConfig, templates) -> dict:
    s = cfg.synthesize
    formats, audiences = chosen_names(cfg, templates)
    source = seed_source(cfg)
    return {
        "source": str(source.resolve()) if source else None,
        "topics_file": str(Path(s.topics_file).resolve()) if s.topics_file else None,
        "seed_documents": s.seed_documents,
        "generations": s.generations,
        "formats": formats,
        "audiences": audiences,
        "extract_chars": s.extract_chars,
        "topics": s.topics,
        "encoder": s.encoder,
        "seed": s.seed,
        "prompt_version": templates.version,
    }


def write_plan(cfg: RunConfig) -> Path:
    """plan.jsonl (one line per requested generation, its rendered prompt included) and plan/seeds.parquet, once.
    A rerun with the same settings reads them back; other settings are refused (delete the folder to replan)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stage_dir = cfg.stage_dir(STAGE)
    try:
        templates = load_templates(cfg.synthesize.prompts)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{cfg.source_file}: synthesize.prompts: {e}") from None
    spec = plan_spec(cfg, templates)
    spec_path, plan_path = stage_dir / "plan" / "plan.json", stage_dir / "plan.jsonl"
    if spec_path.is_file():
        previous = json.loads(spec_path.read_text())
        if {k: previous.get(k) for k in spec} != spec:
            changed = sorted(k for k in spec if previous.get(k) != spec[k])
            raise ConfigError(
                f"{cfg.source_file}: {stage_dir} holds a plan made with other settings ({', '.join(changed)}); "
                f"restore them, use another output_dir, or delete {stage_dir} to plan anew"
            )
        return plan_path
    seeds = read_seeds(cfg)
    extracts = [truncate_extract(seed["text"], spec["extract_chars"]) for seed in seeds]
    topics = assign_topics(embed(extracts, spec["encoder"]), spec["topics"], spec["seed"])
    plan = make_plan(
        [s["id"] for s in seeds], topics, spec["generations"], spec["formats"], spec["audiences"], spec["seed"]
    )
    extract_of = dict(zip((s["id"] for s in seeds), extracts, strict=True))
    (stage_dir / "plan").mkdir(parents=True, exist_ok=True)
    seeds_table = {"id": [s["id"] for s in seeds], "text": extracts, "topic": topics}
    pq.write_table(pa.table(seeds_table), stage_dir / "plan" / "seeds.parquet")
    partial = plan_path.with_suffix(".jsonl.partial")
    with open(partial, "w", encoding="utf-8") as f:
        for entry in plan:
            prompt = templates.render(entry["format"], entry["audience"], extract_of[entry["seed_id"]])
            f.write(json.dumps(entry | {"prompt_version": templates.version, "prompt": prompt}) + "\n")
    partial.rename(plan_path)
    # written last: a plan.json means plan.jsonl and seeds.parquet are complete
    write_json(spec_path, spec | {"seeds": len(seeds), "topics_found": len(set(topics))})
    return plan_path


def read_plan(plan_path: Path) -> list[dict]:
    with open(plan_path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class PlanReader(PipelineStep):
    """plan.jsonl → one Document per planned generation (text = the rendered prompt), every world_size-th to a task."""

    name = "📋 synthesis plan"
    type = "📖 - READER"

    def __init__(self, plan_path: str):
        super().__init__()
        self.plan_path = plan_path

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for entry in read_plan(Path(self.plan_path))[rank::world_size]:
            prompt = entry.pop("prompt")
            self.stat_update("planned")
            yield Document(text=prompt, id=entry["id"], metadata=entry)


# ---- who generates ----------------------------------------------------------------------------------------------
def server_config(cfg: RunConfig) -> AnnotatorConfig:
    """synthesize.server, or the annotator's section: one place to name the model a team has."""
    return cfg.synthesize.server or cfg.annotator


def build_generator(settings: dict, base_url: str, model: str, label: str | None = None) -> TextGenerator:
    a = AnnotatorConfig.model_validate(settings["server"])
    g = settings["generation"]
    generator = TextGenerator(
        base_url=base_url,
        model=model,
        api_key_env=a.api_key_env,
        timeout_s=a.timeout_s,
        max_attempts=a.max_attempts,
        backoff_s=a.backoff_s,
        max_reply_bytes=a.max_reply_bytes,
        temperature=g["temperature"],
        max_tokens=g["max_tokens"],
        top_p=g["top_p"],
        stop=g["stop"],
        extra_body=a.extra_body,
    )
    generator.label = label or model  # what the `model` column says
    return generator


@contextlib.contextmanager
def generator_session(settings: dict):
    """Per task: the generator, and for `kind: local` the embedded server it talks to (stopped at the end)."""
    a = AnnotatorConfig.model_validate(settings["server"])
    if a.kind == "endpoint":
        generator = build_generator(settings, a.base_url, a.model)
        generator.check()
        yield {"generator": generator}
        return
    with embedded_server(a, settings["stage_dir"]) as server:
        generator = build_generator(settings, server.base_url, server.model, label=f"{GGUF_FILE} (embedded)")
        generator.check()
        yield {"generator": generator}


async def rollout(document, generate, generator, **_):
    return await generate_document(document, generate, generator)


class GenerationRunner(InferenceRunner):
    """datatrove's InferenceRunner (document loop, concurrency, checkpoints, resume); the rollout sends the requests
    itself (winnow.synthesis.generate.TextGenerator)."""

    name = "LLM synthesis"

    def _init_server(self, rank: int) -> InferenceServer:
        return NoServer(self.config, rank)


def generation_schema(with_reason: bool = False):
    import pyarrow as pa

    fields = [
        ("text", pa.string()),
        ("id", pa.string()),
        ("token_count", pa.int64()),
        ("seed_id", pa.string()),
        ("topic", pa.int64()),
        ("format", pa.string()),
        ("audience", pa.string()),
        ("prompt_version", pa.string()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("finish_reason", pa.string()),
        ("truncated", pa.bool_()),
        ("attempts", pa.int64()),
        ("error", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("seconds", pa.float64()),
    ]
    return pa.schema(fields + ([("filter_reason", pa.string())] if with_reason else []))


def generation_record(writer, document) -> dict:
    """datatrove writer adapter: the raw row of one requested generation (after the runner)."""
    meta = document.metadata
    result = (meta.get("generation") or [{}])[0]
    return {
        "text": result.get("text") or "",
        "id": document.id,
        "token_count": None,
        **{k: meta.get(k) for k in ("seed_id", "topic", "format", "audience", "prompt_version")},
        "model": result.get("model"),
        "status": result.get("status", "failed"),
        "finish_reason": result.get("finish_reason"),
        "truncated": bool(result.get("truncated")),
        "attempts": result.get("attempts", 0),
        "error": result.get("error") or (None if result else "no answer"),
        "prompt_tokens": result.get("prompt_tokens", 0),
        "completion_tokens": result.get("completion_tokens", 0),
        "seconds": result.get("seconds", 0.0),
    }


def synthetic_row(writer, document, with_reason: bool = False) -> dict:
    """datatrove writer adapter: a post-processed generation → one row of generation_schema."""
    meta = document.metadata
    row = {name: meta.get(name) for name in generation_schema().names if name not in ("text", "id")}
    row |= {"text": document.text, "id": document.id}
    if with_reason:
        row["filter_reason"] = meta.get("filter_reason")
    return row


def build_generation_step(cfg: RunConfig, stage_dir: Path, plan_path: Path) -> Step:
    from datatrove.pipeline.writers import ParquetWriter

    a = server_config(cfg)
    settings = {
        "server": a.model_dump(),
        "generation": cfg.synthesize.generation.model_dump(),
        "stage_dir": str(stage_dir),
    }
    concurrency = a.resolved_concurrency()
    config = InferenceConfig(
        server_type="endpoint",
        model_name_or_path=a.model or "embedded",
        endpoint_url=a.base_url or "local",
        rollouts_per_document=1,
        max_concurrent_generations=concurrency,
        max_concurrent_documents=concurrency,
        metric_interval=300,
        server_ready_max_attempts=1,
    )
    writer = ParquetWriter(
        str(stage_dir / "generations"),
        output_filename="${rank}_${chunk_index}.parquet",
        adapter=generation_record,
        schema=generation_schema(),
        batch_size=cfg.synthesize.checkpoint_every,
    )
    runner = GenerationRunner(
        rollout_fn=rollout,
        config=config,
        output_writer=writer,
        shared_context=functools.partial(generator_session, settings),
        checkpoints_local_dir=str(stage_dir / "checkpoints"),
        records_per_chunk=cfg.synthesize.checkpoint_every,
        metadata_key="generation",
    )
    planned = cfg.synthesize.generations
    return Step(
        "generate", [PlanReader(str(plan_path)), runner], tasks=cfg.synthesize.tasks, extra={"documents": planned}
    )


# ---- post-processing --------------------------------------------------------------------------------------------
class GenerationsReader(PipelineStep):
    """generations/*.parquet → Documents, file by file in (rank, chunk) order and by plan id within a file: a fixed
    order for a given plan and `synthesize.tasks`, so which of two near-duplicates is kept never depends on the
    order in which concurrent requests finished. One file in memory at a time."""

    name = "📖 generations"
    type = "📖 - READER"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    @staticmethod
    def _order(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.stem))  # ${rank}_${chunk_index}

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import pyarrow.parquet as pq

        files = sorted(Path(self.folder).glob("*.parquet"), key=self._order)
        for path in files[rank::world_size]:
            for row in sorted(pq.read_table(path).to_pylist(), key=lambda r: r["id"]):
                self.stat_update("generations")
                text, doc_id = row.pop("text"), row.pop("id")
                yield Document(text=text or "", id=doc_id, metadata=row)


def contamination_filter(cfg: RunConfig, writer):
    """The decontaminate stage's n-gram block with its settings: the items of decontaminate.tasks (default: the
    ablations' tasks but wikitext), n and min_words, from decontaminate.benchmarks_dir (default ablate's)."""
    from winnow.blocks.filters.decontamination import DecontaminationFilter
    from winnow.pipelines.stages.decontaminate import benchmark_items, resolved_tasks

    d = cfg.decontaminate
    items = benchmark_items(resolved_tasks(cfg), d.benchmarks_dir or cfg.ablate.benchmarks_dir)
    return DecontaminationFilter(items, n=d.n, min_words=d.min_words, exclusion_writer=writer)


def build_postprocess_step(cfg: RunConfig, stage_dir: Path) -> Step:
    from datatrove.pipeline.writers import ParquetWriter

    from winnow.blocks.readers import StreamingParquetReader

    def writer(folder: Path, filename: str, with_reason: bool):
        return ParquetWriter(
            str(folder),
            output_filename=filename,
            adapter=functools.partial(synthetic_row, with_reason=with_reason),
            schema=generation_schema(with_reason),
            max_file_size=-1,
        )

    removed = functools.partial(writer, stage_dir / "removed", "${filter_reason}/${rank}.parquet", True)
    s = cfg.synthesize
    seeds = StreamingParquetReader(str(stage_dir / "plan"), glob_pattern="seeds.parquet", recursive=False)
    pipeline = [
        GenerationsReader(str(stage_dir / "generations")),
        GPT2TokenCounter(),
        GenerationFailed(exclusion_writer=writer(stage_dir / "failed", "generation/${rank}.parquet", True)),
    ]
    if s.drop_truncated:
        pipeline.append(TruncatedGeneration(exclusion_writer=removed()))
    m = s.near_duplicates
    pipeline.append(
        SyntheticNearDuplicates(
            references=seeds,
            n_grams=m.n_grams,
            num_buckets=m.num_buckets,
            hashes_per_bucket=m.hashes_per_bucket,
            seed=m.seed,
            language=m.language,
            exclusion_writer=removed(),
        )
    )
    if s.decontaminate:
        pipeline.append(contamination_filter(cfg, removed()))
    pipeline.append(writer(stage_dir, "${rank}.parquet", False))
    return Step("postprocess", pipeline, tasks=1)


# ---- what came out ----------------------------------------------------------------------------------------------
def _rows(files) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for p in sorted(files) for r in pq.read_table(p).to_pylist()]


def distinct_ngram_ratio(texts: list[str], n: int = DISTINCT_N) -> float | None:
    """Distinct word n-grams / all word n-grams over the texts (distinct-n; 1.0 = no n-gram repeated anywhere)."""
    grams = Counter()
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        grams.update(zip(*(words[i:] for i in range(n))))
    total = sum(grams.values())
    return round(len(grams) / total, 4) if total else None


def finalize(cfg: RunConfig) -> dict:
    """Check that every planned generation is accounted once (generated or failed; then kept, removed or failed),
    then write summary.json and the dataset card."""
    stage_dir = cfg.stage_dir(STAGE)
    plan = read_plan(stage_dir / "plan.jsonl")
    planned = [e["id"] for e in plan]
    raw = _rows((stage_dir / "generations").glob("*.parquet"))
    ids = Counter(r["id"] for r in raw)
    twice = sorted(i for i, n in ids.items() if n > 1)
    missing = sorted(set(planned) - set(ids))
    extra = sorted(set(ids) - set(planned))
    if twice or missing or extra:
        raise AccountingError(
            f"synthesize: {len(twice)} generations written twice (e.g. {twice[:3]}), {len(missing)} planned but "
            f"not written (e.g. {missing[:3]}), {len(extra)} not in the plan"
        )
    kept = _rows(stage_dir.glob("*.parquet"))
    removed_rows = _rows(stage_dir.glob("removed/*/*.parquet"))
    failed_rows = _rows(stage_dir.glob("failed/*/*.parquet"))
    status = Counter(r["status"] for r in raw)
    removed = dict(sorted(Counter(r["filter_reason"] for r in removed_rows).items()))
    failed = dict(sorted(Counter(reason_key(r["error"]) for r in failed_rows).items()))
    generated = status["generated"]
    near = removed.get("near_duplicate", 0) + removed.get("near_duplicate_of_seed", 0)
    examples: dict[str, list] = {}
    for r in kept:
        if len(examples.setdefault(r["format"], [])) < EXAMPLES_PER_FORMAT:
            examples[r["format"]].append(
                {k: r[k] for k in ("id", "audience", "topic", "seed_id")} | {"text": r["text"]}
            )

    def spread(rows: list[dict], key: str) -> dict:
        return {str(k): n for k, n in sorted(Counter(r[key] for r in rows).items())}

    summary = stage_summary(
        len(planned),
        len(kept),
        removed=removed,
        failed=failed,
        requested=len(planned),
        generated=generated,
        truncated=sum(1 for r in raw if r["truncated"]),
        model=sorted({r["model"] for r in raw if r["model"]}),
        prompt_version=sorted({r["prompt_version"] for r in raw if r["prompt_version"]}),
        server_kind=server_config(cfg).kind,
        planned={key: spread(plan, key) for key in ("topic", "format", "audience")},
        kept_by={key: spread(kept, key) for key in ("topic", "format", "audience")},
        diversity={
            f"distinct_{DISTINCT_N}gram_ratio": distinct_ngram_ratio([r["text"] for r in kept]),
            "near_duplicate_share": round(near / generated, 4) if generated else None,
            "topics": len({e["topic"] for e in plan}),
            "seeds_used": len({e["seed_id"] for e in plan}),
        },
        tokens={
            "prompt": sum(r["prompt_tokens"] or 0 for r in raw),
            "completion": sum(r["completion_tokens"] or 0 for r in raw),
            "kept": sum(r["token_count"] or 0 for r in kept),
            "kept_mean": round(sum(r["token_count"] or 0 for r in kept) / len(kept), 1) if kept else None,
        },
        attempts=dict(sorted(Counter(str(r["attempts"]) for r in raw).items())),
        seconds={"generating": round(sum(r["seconds"] or 0 for r in raw), 2)},
        examples=examples,
    )
    if len(kept) + len(removed_rows) + len(failed_rows) != len(planned) or len(failed_rows) != len(planned) - generated:
        raise AccountingError(
            f"synthesize: {len(planned)} planned, {generated} generated, but {len(kept)} kept + "
            f"{len(removed_rows)} removed + {len(failed_rows)} failed after post-processing"
        )
    write_summary(stage_dir, summary)
    write_dataset_card(stage_dir, STAGE, cfg.source_file)
    return summary


# ---- the command ------------------------------------------------------------------------------------------------
def check_server(cfg: RunConfig) -> None:
    """Fail fast, before any work, when the configured server cannot be used."""
    a = server_config(cfg)
    key = "synthesize.server" if cfg.synthesize.server else "annotator"
    if a.kind not in ("local", "endpoint"):
        raise ConfigError(
            f"{cfg.source_file}: {key}.kind {a.kind}: synthesize runs with kind local or endpoint; start vLLM/SGLang "
            f"on the GPU node and point {key}.base_url at it (docs: synthesize, 'On a GPU node')"
        )
    if a.kind == "endpoint":
        if not a.base_url or not a.model:
            raise ConfigError(f"{cfg.source_file}: {key}.kind endpoint needs {key}.base_url and {key}.model")
        settings = {"server": a.model_dump(), "generation": cfg.synthesize.generation.model_dump()}
        try:
            build_generator(settings, a.base_url, a.model).check()
        except AnnotatorUnavailable as e:
            raise ConfigError(f"{cfg.source_file}: {key}: {e}") from None


def run(cfg: RunConfig, args=None) -> int:
    offline_environment()
    check_server(cfg)
    if server_config(cfg).kind == "local":
        ensure_model_dir(server_config(cfg).model_dir)  # convert once here, not in every task
    if cfg.synthesize.decontaminate:
        try:
            contamination_filter(cfg, None)
        except (ImportError, FileNotFoundError, ValueError) as e:
            raise ConfigError(
                f"{cfg.source_file}: synthesize.decontaminate: {e} (fix ablate.benchmarks_dir / ablate.tasks, or set "
                f"synthesize.decontaminate: false)"
            ) from None
    stage_dir = cfg.stage_dir(STAGE)
    plan_path = write_plan(cfg)
    steps = [build_generation_step(cfg, stage_dir, plan_path), build_postprocess_step(cfg, stage_dir)]
    launch(cfg, STAGE, steps, finalize=functools.partial(finalize, cfg))
    summary = json.loads((stage_dir / "summary.json").read_text())
    print(
        f"winnow: synthesize: {summary['requested']} requested, {summary['generated']} generated "
        f"({summary['truncated']} truncated), {summary['kept']} kept → {stage_dir}/",
        file=sys.stderr,
    )
    return 0
