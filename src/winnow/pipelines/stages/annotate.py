"""The annotation stage: a seeded sample of documents, each rated 0-5 for educational value by an LLM.

    sample (annotate.n_documents, seed, uniform or stratified) of dedup/ or base/
      → annotations/sample/*.parquet (fixed once, so a re-run annotates the same documents)
      → datatrove InferenceRunner (one per task; checkpoints every annotate.checkpoint_every documents)
         rollout: winnow.classifiers.annotators.EndpointAnnotator → the configured endpoint or the embedded local server
      → annotations/${rank}_${chunk_index}.parquet, summary.json, score_histogram.png

Output columns: id, text, url, stratum, score (int 0-5 or null), score_expected, sample_scores, status
(scored | unparseable | failed), response, model, prompt_version, mode, attempts, error, prompt_tokens,
completion_tokens, seconds. Every sampled document gets exactly one row; summary.json checks
requested = scored + unparseable + failed. A killed run resumes from its checkpoints (no document twice, none skipped).

InferenceRunner does the document loop, concurrency, checkpoints and resume; the requests themselves go through our
annotator (see src/winnow/classifiers/annotators.py for why the runner's own request path is not used).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
from collections import Counter
from pathlib import Path

from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.inference.servers import InferenceServer

from winnow.classifiers.annotators import AnnotatorUnavailable, EndpointAnnotator, annotate_document
from winnow.classifiers.evaluate import jury_agreement
from winnow.classifiers.local_server import GGUF_FILE, LocalServer, ensure_model_dir
from winnow.classifiers.parsing import aggregate_scores
from winnow.classifiers.prompt import load_prompt
from winnow.errors import AccountingError
from winnow.figures import figure
from winnow.pipelines.config import AnnotatorConfig, ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, logging_dir, offline_environment
from winnow.pipelines.summary import stage_summary, step_counters, write_summary

STAGE = "annotate"  # <output_dir>/annotate/ (data, logs/, summary.json)
STEP = "annotate"
EMBEDDED_NOTE = (
    "embedded default annotator (SmolLM2-135M-Instruct, CPU): exercises the stage end to end but has no useful "
    "judgement of educational value (Spearman vs Llama-3-70B labels -0.25 on 120 documents; it rates nearly all 1); "
    "use a strong model for real labels"
)


def annotations_dir(cfg: RunConfig) -> Path:
    return cfg.stage_dir(STAGE)


# ---- which documents ------------------------------------------------------------------------------------------
def source_dir(cfg: RunConfig) -> Path:
    return cfg.documents_source(cfg.annotate.source, "annotate.source", "annotate")


def choose_rows(keys: list, n: int, seed: int) -> list[int]:
    """Indices of `n` rows drawn without replacement; with `keys` (one stratum per row), proportionally per
    stratum (largest remainders), so every stratum keeps its share of the sample."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = len(keys)
    n = min(n, total)
    if not keys or keys[0] is None and len(set(keys)) == 1:
        return sorted(rng.choice(total, size=n, replace=False).tolist())
    strata: dict = {}
    for i, key in enumerate(keys):
        strata.setdefault(key, []).append(i)
    ordered = sorted(strata, key=str)
    exact = {k: n * len(strata[k]) / total for k in ordered}
    quota = {k: int(exact[k]) for k in ordered}
    for k in sorted(ordered, key=lambda k: (-(exact[k] - quota[k]), str(k)))[: n - sum(quota.values())]:
        quota[k] += 1
    chosen: list[int] = []
    for k in ordered:
        members = strata[k]
        chosen.extend(members[j] for j in rng.choice(len(members), size=quota[k], replace=False))
    return sorted(chosen)


def write_sample(cfg: RunConfig) -> Path:
    """Draw the sample once into annotations/sample/ (one file per task); a re-run must ask for the same one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = annotations_dir(cfg) / "sample"
    source = source_dir(cfg)
    spec = {
        "source": str(source.resolve()),
        "n_documents": cfg.annotate.n_documents,
        "seed": cfg.annotate.seed,
        "stratify_by": cfg.annotate.stratify_by,
        "tasks": cfg.annotate.tasks,
    }
    spec_path = folder / "sample.json"
    if spec_path.is_file():
        previous = json.loads(spec_path.read_text())
        if {k: previous.get(k) for k in spec} != spec:
            raise ConfigError(
                f"{cfg.source_file}: {folder} holds a different sample ({previous}); use another "
                f"output_dir or delete {annotations_dir(cfg)} to annotate a new sample"
            )
        return folder
    files = sorted(source.glob("*.parquet"))
    keys, where, seen = [], [], set()
    stratify = cfg.annotate.stratify_by
    for file_index, path in enumerate(files):
        columns = ["id"] + ([stratify] if stratify else [])
        try:
            table = pq.read_table(path, columns=columns)
        except (KeyError, pa.ArrowInvalid) as e:
            raise ConfigError(
                f"{cfg.source_file}: annotate.stratify_by: cannot read {columns} from {path} ({e})"
            ) from e
        strata = table.column(stratify).to_pylist() if stratify else [None] * table.num_rows
        for row, (doc_id, key) in enumerate(zip(table.column("id").to_pylist(), strata, strict=True)):
            if doc_id in seen:  # a duplicated id would be annotated twice; keep its first occurrence
                continue
            seen.add(doc_id)
            where.append((file_index, row))
            keys.append(key)
    chosen = choose_rows(keys, cfg.annotate.n_documents, cfg.annotate.seed)
    by_file: dict[int, list[int]] = {}
    for i in chosen:
        by_file.setdefault(where[i][0], []).append(where[i][1])
    rows = []
    for file_index, row_numbers in sorted(by_file.items()):
        table = pq.read_table(files[file_index]).take(row_numbers).to_pylist()
        for record in table:
            rows.append(
                {
                    "id": str(record["id"]),
                    "text": record.get("text") or "",
                    "url": record.get("url"),
                    "stratum": None if not stratify else str(record.get(stratify)),
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    for task in range(cfg.annotate.tasks):
        part = rows[task :: cfg.annotate.tasks]
        schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string()), ("stratum", pa.string())])
        pq.write_table(pa.Table.from_pylist(part, schema=schema), folder / f"{task:05d}.parquet")
    spec_path.write_text(json.dumps(spec | {"ids": len(rows)}, indent=1) + "\n")
    return folder


# ---- who annotates --------------------------------------------------------------------------------------------
def build_annotator(settings: dict, base_url: str, model: str, label: str | None = None):
    a = AnnotatorConfig.model_validate(settings["annotator"])
    annotator = EndpointAnnotator(
        base_url=base_url,
        model=model,
        prompt=load_prompt(settings["prompt"], settings["max_chars"]),
        mode=a.resolved_mode(),
        api_key_env=a.api_key_env,
        timeout_s=a.timeout_s,
        max_attempts=a.max_attempts,
        backoff_s=a.backoff_s,
        max_reply_bytes=a.max_reply_bytes,
        temperature=a.temperature,
        max_tokens=a.max_tokens,
        extra_body=a.extra_body,
    )
    annotator.label = label or model  # what the `model` column says
    return annotator


@contextlib.contextmanager
def annotator_session(settings: dict):
    """Per task: the annotator, and for `kind: local` the embedded server it talks to (stopped at the end).
    For `kind: server` the server is datatrove's (AnnotationRunner._init_server): the annotator learns its address
    once it is ready (`attach_server`)."""
    a = AnnotatorConfig.model_validate(settings["annotator"])
    if a.kind == "server":
        yield {"annotator": build_annotator(settings, "http://not-started-yet", served_model(a))}
        return
    if a.kind == "endpoint":
        annotator = build_annotator(settings, a.base_url, a.model)
        annotator.check()
        yield {"annotator": annotator}
        return
    with embedded_server(a, settings["stage_dir"]) as server:
        annotator = build_annotator(settings, server.base_url, server.model, label=f"{GGUF_FILE} (embedded)")
        annotator.check()
        yield {"annotator": annotator}


@contextlib.contextmanager
def embedded_server(a: AnnotatorConfig, stage_dir: str | Path):
    """The task's own embedded server (`kind: local`), its log and pid file in <stage>/logs/server/."""
    server_dir = Path(stage_dir) / "logs" / "server"
    server = LocalServer(
        ensure_model_dir(a.model_dir),
        threads=a.threads,
        startup_timeout_s=a.startup_timeout_s,
        log_path=server_dir / f"server_{os.getpid()}.log",
        pid_path=server_dir / f"server_{os.getpid()}.pid",
    )
    with server:
        yield server


async def rollout(document, generate, annotator, server=None):
    if server is not None:
        await attach_server(annotator, server)
    record = await annotate_document(document, generate, annotator)
    return record | {"model": annotator.label, "prompt_version": annotator.prompt.version, "mode": annotator.mode}


def output_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("url", pa.string()),
            ("stratum", pa.string()),
            ("score", pa.int64()),
            ("score_expected", pa.float64()),
            ("sample_scores", pa.list_(pa.int64())),
            ("status", pa.string()),
            ("response", pa.string()),
            ("model", pa.string()),
            ("prompt_version", pa.string()),
            ("mode", pa.string()),
            ("attempts", pa.int64()),
            ("error", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("seconds", pa.float64()),
        ]
    )


def annotation_record(writer, document, aggregate: str = "mean") -> dict:
    """datatrove writer adapter: one output row from a document and its annotation(s)."""
    samples = document.metadata.get("annotation") or []
    first = samples[0] if samples else {}
    scored = [s for s in samples if s["status"] == "scored"]
    if len(samples) > 1:  # a jury: one score from several answers
        value = aggregate_scores([s["score"] for s in samples], aggregate)
        score, expected = (None, None) if value is None else (int(round(value)), value)
    else:
        score, expected = first.get("score"), first.get("score_expected")
    status = "scored" if scored else ("unparseable" if any(s["status"] == "unparseable" for s in samples) else "failed")
    return {
        "id": document.id,
        "text": document.text,
        "url": document.metadata.get("url"),
        "stratum": document.metadata.get("stratum"),
        "score": score,
        "score_expected": expected,
        "sample_scores": [s.get("score") for s in samples],
        "status": status,
        "response": first.get("response"),
        "model": first.get("model"),
        "prompt_version": first.get("prompt_version"),
        "mode": first.get("mode"),
        "attempts": sum(s.get("attempts", 0) for s in samples),
        "error": None if scored else (" || ".join(s["error"] for s in samples if s.get("error")) or "no answer"),
        "prompt_tokens": sum(s.get("prompt_tokens", 0) for s in samples),
        "completion_tokens": sum(s.get("completion_tokens", 0) for s in samples),
        "seconds": sum(s.get("seconds", 0.0) for s in samples),
    }


class NoServer(InferenceServer):
    """InferenceRunner's server slot, left empty: the annotator reaches its endpoint (or the embedded server it
    started) itself, with its own timeouts and retries."""

    async def start_server(self):
        return None

    async def monitor_health(self):
        await asyncio.Future()  # nothing to watch; cancelled when the task ends

    async def is_ready(self) -> bool:
        return True


# `annotator.server_type` → datatrove's server: vLLM and SGLang as datatrove starts them (`vllm serve PATH`,
# `python -m sglang.launch_server`, with tp/dp/pp turned into their flags); the embedded model through its
# CustomServer, which runs winnow.classifiers.serve_embedded.
DATATROVE_SERVER = {"vllm": "vllm", "sglang": "sglang", "embedded": "custom"}
SERVER_MODULES = {"vllm": "vllm", "sglang": "sglang"}


def served_model(a: AnnotatorConfig) -> str:
    """The model name a server started from a path serves (vLLM, SGLang and `transformers serve` use the path)."""
    if a.server_type == "embedded":
        return str(ensure_model_dir(a.model_dir))
    return a.model


async def attach_server(annotator, server: InferenceServer) -> None:
    """Wait until the task's server is ready (every rollout waits on the same start), then point the annotator at it.
    A server that cannot start fails the task (ServerError), not each document: nothing was asked."""
    if annotator.root == "http://not-started-yet":
        # datatrove keeps readiness in a future it awaits in make_request; we send our own requests (deadlines,
        # reply caps, retries of winnow.classifiers.annotators), so we await the same future.
        await server._server_ready
        annotator.point_at(server.get_base_url())


class AnnotationRunner(InferenceRunner):
    """datatrove's InferenceRunner (document loop, concurrency, checkpoints, resume, and for `kind: server` the
    server's start, health watch and stop) with the rollout doing the requests
    (winnow.classifiers.annotators.annotate_document)."""

    name = "LLM annotation"

    def _init_server(self, rank: int) -> InferenceServer:
        if self.config.server_type == "endpoint":
            self.server = None
            return NoServer(self.config, rank)
        self.server = super()._init_server(rank)
        return self.server

    @contextlib.contextmanager
    def get_shared_context_cm(self):
        with super().get_shared_context_cm() as context:
            yield dict(context, server=getattr(self, "server", None))


def build_runner(cfg: RunConfig, stage_dir: Path) -> AnnotationRunner:
    from datatrove.pipeline.writers import ParquetWriter

    a = cfg.annotator
    settings = {
        "annotator": a.model_dump(),
        "prompt": cfg.annotate.prompt,
        "max_chars": cfg.annotate.max_chars,
        "stage_dir": str(stage_dir),
    }
    concurrency = a.resolved_concurrency()
    common = dict(
        rollouts_per_document=a.samples,
        max_concurrent_generations=concurrency * a.samples,
        max_concurrent_documents=concurrency,
        metric_interval=300,
    )
    if a.kind == "server":
        kwargs = dict(a.server_args)
        if a.server_type == "embedded":
            import winnow.classifiers.serve_embedded as script

            kwargs |= {"server_script": script.__file__, "model-dir": served_model(a), "threads": a.threads}
        delay = 2.0
        config = InferenceConfig(
            server_type=DATATROVE_SERVER[a.server_type],
            model_name_or_path=served_model(a),
            model_max_context=a.max_context,
            tp=a.tp,
            dp=a.dp,
            pp=a.pp,
            model_kwargs=kwargs,
            server_log_folder=str(stage_dir / "logs" / "server"),
            server_ready_max_attempts=max(1, int(a.startup_timeout_s / delay)),
            server_ready_delay_sec=delay,
            **common,
        )
    else:
        config = InferenceConfig(
            server_type="endpoint",
            model_name_or_path=a.model or "embedded",
            endpoint_url=a.base_url or "local",
            server_ready_max_attempts=1,
            **common,
        )
    writer = ParquetWriter(
        str(stage_dir),
        output_filename="${rank}_${chunk_index}.parquet",
        adapter=functools.partial(annotation_record, aggregate=a.aggregate),
        schema=output_schema(),
        batch_size=cfg.annotate.checkpoint_every,
    )
    return AnnotationRunner(
        rollout_fn=rollout,
        config=config,
        output_writer=writer,
        shared_context=functools.partial(annotator_session, settings),
        checkpoints_local_dir=str(stage_dir / "checkpoints"),
        records_per_chunk=cfg.annotate.checkpoint_every,
        metadata_key="annotation",
    )


# ---- what came out --------------------------------------------------------------------------------------------
def reason_key(error: str | None) -> str:
    """A countable reason from a document's error text: its last attempt's reason without the details."""
    last = (error or "no answer").split(" || ")[-1].split(" | ")[-1]
    if last.startswith("HTTP "):
        return last.split(":")[0]  # "HTTP 500"
    for general in ("malformed reply", "server unreachable", "ambiguous score statement", "non-integer score"):
        if last.startswith(general):
            return general
    return re.sub(r"^score -?\d+ outside", "score outside", last)


def finalize(cfg: RunConfig) -> dict:
    """Check that every sampled document has exactly one row, then write summary.json and the histogram."""
    import pyarrow.parquet as pq

    stage_dir = annotations_dir(cfg)
    requested = []
    for path in sorted((stage_dir / "sample").glob("*.parquet")):
        requested.extend(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    rows = []
    for path in sorted(stage_dir.glob("*.parquet")):
        rows.extend(pq.read_table(path, columns=[f for f in output_schema().names if f != "text"]).to_pylist())
    ids = Counter(r["id"] for r in rows)
    twice = sorted(i for i, n in ids.items() if n > 1)
    missing = sorted(set(requested) - set(ids))
    extra = sorted(set(ids) - set(requested))
    if twice or missing or extra:
        raise AccountingError(
            f"annotations: {len(twice)} documents annotated twice (e.g. {twice[:3]}), "
            f"{len(missing)} not annotated (e.g. {missing[:3]}), {len(extra)} not in the sample"
        )
    status = Counter(r["status"] for r in rows)
    reasons = {
        s: dict(Counter(reason_key(r["error"]) for r in rows if r["status"] == s)) for s in ("unparseable", "failed")
    }
    histogram = {str(k): sum(1 for r in rows if r["score"] == k) for k in range(6)}
    wall = sum(counter.get("inference_time", 0) for _, counter in step_counters(logging_dir(cfg, STAGE, STEP)))
    parsed_answers = status["scored"] + status["unparseable"]
    summary = {
        "stage": STAGE,
        "requested": len(requested),
        "scored": status["scored"],
        "unparseable": status["unparseable"],
        # the common accounting: read = kept + Σremoved + Σfailed
        **stage_summary(len(requested), status["scored"], removed={"unparseable": reasons["unparseable"]}),
        "failed": status["failed"],
        "reasons": reasons,
        "histogram": histogram,
        "parse_rate": round(status["scored"] / parsed_answers, 4) if parsed_answers else None,
        "attempts": dict(sorted(Counter(str(r["attempts"]) for r in rows).items())),
        "tokens": {
            "prompt": sum(r["prompt_tokens"] or 0 for r in rows),
            "completion": sum(r["completion_tokens"] or 0 for r in rows),
        },
        "seconds": {"annotating": round(sum(r["seconds"] or 0 for r in rows), 2), "inference_wall": round(wall, 2)},
        "documents_per_second": round(len(rows) / wall, 4) if wall else None,
        "model": sorted({r["model"] for r in rows if r["model"]}),
        "prompt_version": sorted({r["prompt_version"] for r in rows if r["prompt_version"]}),
        "mode": cfg.annotator.resolved_mode(),
        "annotator_kind": cfg.annotator.kind,
    }
    # a jury (annotator.samples > 1): how well the annotator agrees with itself, the ceiling of any classifier
    # judged against its single answers
    jury = jury_agreement([r["sample_scores"] or [] for r in rows])
    if jury:
        summary["jury_agreement"] = jury
    if cfg.annotator.kind == "local":
        summary["note"] = EMBEDDED_NOTE
    write_summary(stage_dir, summary)
    plot_histogram(stage_dir / "score_histogram.png", summary)
    return summary


def plot_histogram(path: Path, summary: dict) -> None:
    labels = list(summary["histogram"]) + ["unparseable", "failed"]
    counts = list(summary["histogram"].values()) + [summary["unparseable"], summary["failed"]]
    with figure(path, figsize=(7, 3.5), dpi=100) as (_, ax):
        ax.bar(labels, counts, color=["#4c72b0"] * 6 + ["#dd8452", "#c44e52"])
        for x, c in enumerate(counts):
            ax.text(x, c, str(c), ha="center", va="bottom", fontsize=8)
        ax.set_xlabel("educational score")
        ax.set_ylabel("documents")
        ax.set_title(f"{summary['requested']} documents, {', '.join(summary['model'])}", fontsize=8)


# ---- the command ----------------------------------------------------------------------------------------------
def check_endpoint(cfg: RunConfig) -> None:
    """Fail fast, before any work, when the configured endpoint cannot be used."""
    a = cfg.annotator
    if a.kind != "endpoint":
        return
    if not a.base_url or not a.model:
        raise ConfigError(f"{cfg.source_file}: annotator.kind endpoint needs annotator.base_url and annotator.model")
    settings = {"annotator": a.model_dump(), "prompt": cfg.annotate.prompt, "max_chars": cfg.annotate.max_chars}
    build_annotator(settings, a.base_url, a.model).check()


def check_server(cfg: RunConfig) -> None:
    """`kind: server`: the model folder and the server's package are on this node (inside the job on Slurm, where
    the stage runs after its upstream)."""
    a = cfg.annotator
    if a.kind != "server":
        return
    if a.server_type in SERVER_MODULES:
        import importlib.util

        if not a.model:
            raise ConfigError(f"{cfg.source_file}: annotator.kind server needs annotator.model, the model folder")
        if not Path(a.model).is_dir():
            raise ConfigError(
                f"{cfg.source_file}: annotator.model {a.model}: no such model folder on this node (kind server starts "
                f"{a.server_type} from a local path; download the model first)"
            )
        if importlib.util.find_spec(SERVER_MODULES[a.server_type]) is None:
            raise ConfigError(
                f"{cfg.source_file}: annotator.server_type {a.server_type}: the {a.server_type} package is not "
                f"installed in this environment (install it where the annotate job runs)"
            )


def run(cfg: RunConfig, args=None) -> int:
    offline_environment()
    try:
        load_prompt(cfg.annotate.prompt, cfg.annotate.max_chars)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{cfg.source_file}: annotate.prompt: {e}") from None
    try:
        check_endpoint(cfg)
    except AnnotatorUnavailable as e:
        raise ConfigError(f"{cfg.source_file}: annotator: {e}") from None
    check_server(cfg)
    if cfg.annotator.kind == "local" or (cfg.annotator.kind == "server" and cfg.annotator.server_type == "embedded"):
        ensure_model_dir(cfg.annotator.model_dir)  # convert once here, not in every task
    stage_dir = annotations_dir(cfg)
    sample = write_sample(cfg)
    from winnow.blocks.readers import StreamingParquetReader

    reader = StreamingParquetReader(str(sample), glob_pattern="*.parquet", recursive=False)
    planned = json.loads((sample / "sample.json").read_text()).get("ids")  # the progress line's "docs n/planned"
    step = Step(STEP, [reader, build_runner(cfg, stage_dir)], tasks=cfg.annotate.tasks, extra={"documents": planned})
    launch(cfg, STAGE, [step], finalize=functools.partial(finalize, cfg))
    return 0
