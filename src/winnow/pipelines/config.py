"""The run configuration: one YAML file, validated once at load, before any work starts.

Every stage reads its own section; `output_dir` is the run folder, and each stage writes
`<output_dir>/<stage>/`. An unknown key, a wrong type or a missing input is a `ConfigError`
whose message is one line naming the file and the key.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from winnow.classifiers.parsing import MAX_SCORE, MIN_SCORE
from winnow.errors import ConfigError
from winnow.proxy.tasks import TASKS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# A seed reaches numpy (RandomState for the MinHash permutations takes 0 <= seed < 2**32)
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class InputConfig(Section):
    paths: list[str] = Field(default_factory=list)  # globs or files; relative to the config's cwd
    format: Literal["warc", "jsonl", "parquet"] = "warc"
    text_key: str = "text"
    id_key: str = "id"
    limit: int = -1  # documents per task, for smoke runs; -1 = all

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("must be -1 (every document) or a positive number of documents per task")
        return v

    def files(self) -> list[str]:
        """Every input file, sorted, so task assignment does not depend on the file system's order."""
        found: list[str] = []
        for pattern in self.paths:
            found.extend(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        return sorted(set(found))


# What may reach a generated sbatch script from the config: every value is written on a `#SBATCH` line
# or a command line of the job, so a newline, a space or a shell metacharacter would inject commands.
_SLURM_NAME = re.compile(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*")  # partition(s), qos
# Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit
_SLURM_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE")
_SLURM_JOB_NAME = re.compile(r"[A-Za-z0-9_.+-]+")  # `name` is part of every job name: winnow.<name>.<stage>.<step>
_SBATCH_OPTION = re.compile(r"[a-z][a-z0-9-]*")
_SBATCH_VALUE = re.compile(r"[A-Za-z0-9_.,:=/@+-]*")
SAFE_PATH = re.compile(r"[A-Za-z0-9_./+@,=-]+")  # also checked on output_dir by winnow.pipelines.execution.slurm


class ExecutorConfig(Section):
    """Where a stage runs. The Slurm fields map onto datatrove's SlurmPipelineExecutor
    (src/winnow/pipelines/execution/slurm.py), the Ray ones onto its RayPipelineExecutor (execution/ray.py)."""

    kind: Literal["local", "slurm", "ray"] = "local"  # a key of winnow.pipelines.execution.EXECUTORS
    tasks: int = Field(1, ge=1)
    workers: int = -1  # max simultaneous tasks; -1 = all
    # Slurm and Ray: what one task reserves
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2, gt=0)
    # Ray only: host:port of the head; auto = $RAY_ADDRESS, else the head of `make ray-up`, else Ray's own lookup
    ray_address: str = Field("auto", min_length=1)
    # Slurm only (mapped onto datatrove's SlurmPipelineExecutor)
    partition: str | None = None  # default: the cluster's default partition
    time: str = "04:00:00"  # per task
    qos: str | None = None  # left out of the script when unset
    sbatch_args: dict[str, str] = Field(default_factory=dict)  # extra `#SBATCH --key=value` lines
    env_command: str | None = None  # shell run first in each job (by design free shell: it comes from the user)
    venv: str | None = None  # path of a virtualenv; its bin/activate is sourced inside each job

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("must be -1 (all at once) or a positive number of simultaneous tasks")
        return v

    @field_validator("mem_per_cpu_gb")
    @classmethod
    def _whole_megabytes(cls, v: float) -> float:
        if int(v * 1024) < 1:  # sbatch gets whole megabytes, and --mem-per-cpu=0 means all of a node's memory
            raise ValueError("must be at least 1 MB (1/1024 GB): Slurm takes whole megabytes")
        return v

    @field_validator("partition", "qos")
    @classmethod
    def _slurm_name(cls, v: str | None) -> str | None:
        if v is not None and not _SLURM_NAME.fullmatch(v):
            raise ValueError("a Slurm name may hold only letters, digits and _ . + - (a list: comma-separated)")
        return v

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, v: str) -> str:
        if not _SLURM_TIME.fullmatch(v):
            raise ValueError("not a Slurm time limit (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED)")
        return v

    @field_validator("sbatch_args", mode="before")
    @classmethod
    def _sbatch_args(cls, v):
        if not isinstance(v, dict):
            return v
        checked = {}
        for key, value in v.items():
            key, value = str(key).removeprefix("--"), "" if value is None else str(value)
            if not _SBATCH_OPTION.fullmatch(key) or not _SBATCH_VALUE.fullmatch(value):
                raise ValueError(
                    f"sbatch option {key!r}={value!r} holds a character that is not allowed "
                    "(option: lowercase letters, digits, -; value: letters, digits and _ . , : = / @ + -)"
                )
            checked[key] = value
        return checked

    @field_validator("venv")
    @classmethod
    def _venv(cls, v: str | None) -> str | None:
        if v is not None and not SAFE_PATH.fullmatch(v):
            raise ValueError("the path may hold only letters, digits and _ . / + @ , = -")
        return v


class ExtractConfig(Section):
    # trafilatura | resiliparse | any name in winnow.blocks.extractors.EXTRACTORS (checked by the base stage)
    extractor: str = "trafilatura"
    timeout: float = Field(1.0, gt=0)  # seconds per page (FineWeb: 1 s for trafilatura)
    favour_precision: bool = True  # FineWeb ran trafilatura in precision mode


class FiltersConfig(Section):
    """`enabled` lists the filters in order; any other key is `<filter name>: {<argument>: value}`."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    enabled: list[str] = Field(
        default_factory=lambda: [
            "url",
            "language",
            "gopher_repetition",
            "gopher_quality",
            "c4_quality",
            "fineweb_quality",
        ]
    )
    word_splitter: Literal["regex", "spacy"] = "regex"

    def overrides(self) -> dict[str, dict[str, Any]]:
        extra = self.model_extra or {}
        for name, value in extra.items():
            if not isinstance(value, dict):
                raise ConfigError(f"filters.{name}: expected a mapping of argument: value (got {value!r})")
        return dict(extra)


class PiiConfig(Section):
    emails: bool = True
    ips: bool = True


class MinhashParams(Section):
    """FineWeb's MinHash (datatrove MinhashConfig defaults, as in FineWeb's dedup script)."""

    n_grams: int = Field(5, ge=1)  # word 5-grams
    num_buckets: int = Field(14, ge=1)  # 14 bands ...
    hashes_per_bucket: int = Field(8, ge=1)  # ... of 8 hashes: P(dup | J=0.8) = 0.92, threshold ≈ 0.72
    hash_bits: Literal[32, 64] = 64
    seed: Seed = 1
    language: str = "en"  # spaCy word splitting rules used for the shingles


class DedupConfig(Section):
    engine: Literal["datatrove", "datasketch"] = "datatrove"
    scope: Literal["per_dump", "global"] = "per_dump"  # FineWeb: per dump; FineWeb-2: global
    exact: bool = True  # exact dedup (hash of the normalised text) before MinHash
    minhash: MinhashParams = Field(default_factory=MinhashParams)
    max_documents_in_memory: int = Field(2_000_000, ge=1)  # datasketch engine refuses larger corpora
    tasks: int | None = Field(None, ge=1)  # signature and filter tasks; defaults to executor.tasks
    bucket_workers: int = Field(1, ge=1)  # tasks per bucket in the bucket step (num_buckets * this tasks)


class AnnotateConfig(Section):
    """Which documents are annotated, with which prompt (src/winnow/pipelines/stages/annotate.py)."""

    n_documents: int = Field(50, ge=1)
    seed: Seed = 0
    source: str | None = None  # stage folder to sample from; default: latest of dedup/ or base/
    stratify_by: str | None = None  # a column of the source (e.g. dump, language): proportional sample per value
    prompt: str = "fineweb_edu_v1"  # a shipped prompt name or a text file holding <EXAMPLE> once
    max_chars: int = 1000  # document characters shown to the LLM (FineWeb-Edu: the first 1,000); <= 0 = all
    tasks: int = Field(1, ge=1)  # datatrove tasks (each with its own server when annotator.kind is local)
    checkpoint_every: int = Field(10, ge=1)  # documents per checkpoint chunk: a killed run redoes at most these


class AnnotatorConfig(Section):
    """The LLM that rates documents: an OpenAI-compatible endpoint, the embedded local server, or a server each
    annotate task starts itself from a model path (`kind: server`, through datatrove's server management)."""

    kind: Literal["local", "endpoint", "server"] = "local"
    base_url: str | None = None  # endpoint: e.g. http://gpu-node:8000/v1 (vLLM, SGLang, TGI, llama.cpp, hosted)
    model: str | None = None  # endpoint: the served model name; server: the model folder; local: set by the stage
    # kind server: which server the task starts (vllm / sglang on GPU nodes; embedded = SmolLM2 on CPU, as `local`
    # but started and watched by datatrove like the others), its parallelism and extra command-line flags
    server_type: Literal["vllm", "sglang", "embedded"] = "vllm"
    tp: int = Field(1, ge=1)  # tensor parallel: GPUs per model replica
    dp: int = Field(1, ge=1)  # data parallel: replicas per task
    pp: int = Field(1, ge=1)  # pipeline parallel
    max_context: int = Field(8192, gt=0)  # the server's maximum model length (prompt + answer)
    server_args: dict[str, Any] = Field(default_factory=dict)  # e.g. {gpu-memory-utilization: 0.9}
    api_key_env: str | None = None  # NAME of the environment variable holding the key (the key is never stored)
    # chat: free answer, parsed; decision: score probabilities from the embedded server's decision endpoint;
    # logprobs: the same from an OpenAI-compatible server's logprobs (vLLM, SGLang)
    mode: Literal["chat", "decision", "logprobs"] | None = None
    concurrency: int = Field(0, ge=0)  # requests in flight per task; 0 = 1 for local, 16 for an endpoint
    timeout_s: float = Field(120.0, gt=0)  # deadline of one whole request (connect + every read), not per read
    max_attempts: int = Field(3, ge=1)  # per document, counting unparseable answers and failed requests
    backoff_s: float = Field(2.0, ge=0)  # wait before retry n: backoff_s * 2**(n-1), capped at 60 s, jittered
    max_reply_bytes: int = Field(262_144, gt=0)  # a longer reply is cut off and the document failed (reply_too_large)
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=1)  # chat answers: FineWeb-Edu asks for <= 100 words + the score
    samples: int = Field(1, ge=1)  # answers per document (a jury of samples; use temperature > 0)
    aggregate: Literal["mean", "median", "majority"] = "mean"  # how samples become one score
    extra_body: dict[str, Any] = Field(default_factory=dict)  # passed as-is in each request (server options)
    threads: int = Field(1, ge=1)  # local: torch threads of the embedded server
    startup_timeout_s: float = Field(300.0, gt=0)  # local / server: seconds to wait for the server to load
    model_dir: str | None = None  # local: converted model folder; default: ~/.cache/winnow/models/...

    def resolved_mode(self) -> str:
        return self.mode or ("decision" if self.kind == "local" else "chat")

    @model_validator(mode="after")
    def _logprobs_need_a_server_that_returns_them(self) -> AnnotatorConfig:
        embedded = self.kind == "local" or (self.kind == "server" and self.server_type == "embedded")
        if self.mode == "logprobs" and embedded:
            raise ValueError(
                "mode logprobs needs a server that returns logprobs (vLLM, SGLang); the embedded `transformers serve` "
                "returns none: use mode decision"
            )
        return self

    def resolved_concurrency(self) -> int:
        return self.concurrency or (1 if self.kind == "local" else 16)


class FastTextConfig(Section):
    """fastText's own argument names (DCLM-style word + bigram model)."""

    lr: float = Field(0.5, gt=0)  # small data: few updates per epoch, so a high rate (a NaN retries at half the rate)
    epoch: int = Field(10, ge=1)
    dim: int = Field(32, ge=1)
    wordNgrams: int = Field(2, ge=1)
    minCount: int = Field(2, ge=1)
    bucket: int = Field(200_000, ge=1000)  # hashed bigram rows; fastText's 2M default makes an 800 MB model


class LabelSource(Section):
    """One set of training-only labels (classifier.extra_labels): a JSONL/CSV/Parquet file, glob or folder."""

    path: str
    text_key: str = "text"
    score_key: str = "score"  # dotted for nested fields
    id_key: str = "id"


class ClassifierConfig(Section):
    backbone: Literal["embed", "fasttext", "embed+fasttext"] = "embed"
    labels: str | None = None  # JSONL/CSV/Parquet file, glob or folder; default: <output_dir>/annotations
    # labels that only train: in every fit, never scored (the metrics stay those of `labels`); e.g. another LLM's
    # annotations with the same prompt
    extra_labels: list[LabelSource] = Field(default_factory=list)
    eval_labels: str | None = None  # a separate held-out set, scored too; the headline is k-fold CV without it
    text_key: str = "text"
    score_key: str = "scores.score"  # dotted for nested fields; falls back to `score`
    id_key: str = "id"
    output: str | None = None  # default: <output_dir>/classifier
    seed: Seed = 0
    calibrate: bool = True  # fit integer-boundary cuts on out-of-fold training scores
    calibration_folds: int = Field(5, ge=2)  # inner folds: model selection and calibration, on training labels only
    cv_folds: int = Field(5, ge=2)  # outer folds: the cross-validated evaluation of the whole recipe
    # shares of the training labels, each in (0, 1]
    learning_curve: list[Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    # embed backbone (FineWeb-Edu: frozen encoder + linear regression head, lr 3e-4, 20 epochs, best macro-F1)
    encoder: str = "all-MiniLM-L6-v2"  # the packaged MiniLM, or a local HF / sentence-transformers folder
    max_tokens: int = Field(256, ge=8)
    # auto: the best by out-of-fold F1@3 of ridge (each alpha) and FineWeb-Edu's SGD head; or only one of them
    head: Literal["auto", "ridge", "linear"] = "auto"
    alphas: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0], min_length=1
    )
    learning_rate: float = Field(3e-4, gt=0)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    dev_share: float = Field(0.15, gt=0, lt=1)
    device: str = "auto"  # auto | cpu | cuda
    embedding_cache: str | None = None  # default: <output_dir>/classifier/embeddings
    # fasttext backbone
    fasttext: FastTextConfig = Field(default_factory=FastTextConfig)
    balance: Literal["oversample", "none"] = "oversample"


class DistillConfig(Section):
    """`winnow distill`: a static-embedding student trained on the teacher classifier's scores over an unlabelled pool
    (classifiers/distill.py). Point `score.classifier` at `<output_dir>/distill` to score with it."""

    teacher: str | None = None  # a classifier folder; default: <output_dir>/classifier
    # "run" = the run's documents (the score stage's default source: the latest of dedup/, base/); any other entry is a
    # JSONL/Parquet file, glob or folder
    pool: list[str] = Field(default_factory=lambda: ["run"])
    text_key: str = "text"
    max_documents: int | None = Field(None, ge=10)  # a seeded sample of the pool; default: all of it
    holdout: float = Field(0.2, gt=0, lt=1)  # share of the pool kept from the student to measure it against the teacher
    seed: Seed = 0
    encoder: str | None = None  # where the token vectors come from; default (and for embed teachers): the teacher's
    dim: int = Field(384, ge=8)  # PCA components per token vector; >= the encoder's width: none (MiniLM: 384)
    max_tokens: int | None = Field(None, ge=8)  # the student reads a document's first tokens; default: the teacher's
    prior_tokens: float = Field(10.0, gt=0)  # a token's lone vector counts as this many in-context occurrences
    # full: a vector for every vocabulary token (~1 CPU-minute for MiniLM); pool: only the tokens the pool uses (small
    # runs and tests: a token outside the pool then adds nothing to a document's mean)
    vocabulary: Literal["full", "pool"] = "full"
    embedding_cache: str | None = None  # teacher embeddings; default: classifier.embedding_cache, else the classifier's


class ScoreConfig(Section):
    classifier: str | None = None  # default: <output_dir>/classifier; `<output_dir>/distill` scores with the student
    source: str | None = None  # folder of Parquet documents; default: the latest of <output_dir>/dedup, base
    batch_size: int | None = Field(None, ge=1)  # default: 64 on CPU, 512 on a GPU
    device: str = "auto"  # auto | cpu | cuda
    tasks: int | None = Field(None, ge=1)  # default: executor.tasks


class SubsetsConfig(Section):
    # int_score >= t, on the annotation scale 0-5 (FineWeb-Edu: int_score >= 3, and >= 2)
    thresholds: list[Annotated[int, Field(ge=MIN_SCORE, le=MAX_SCORE)]] = Field(default_factory=lambda: [2, 3, 4])
    source: str | None = None  # default: <output_dir>/scored
    tasks: int | None = Field(None, ge=1)  # default: executor.tasks


class SynthesisGenerationConfig(Section):
    """Sampling settings of each synthetic generation (sent in every request)."""

    max_tokens: int = Field(512, ge=1)  # a completion stopped here has finish_reason "length"
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)


class SynthesizeConfig(Section):
    """`winnow synthesize` (winnow.pipelines.stages.synthesize): Cosmopedia-style generations from the run's seeds."""

    source: str | None = None  # folder of seed documents; default: <output_dir>/subsets/edu-3, else dedup/ or base/
    topics_file: str | None = None  # instead of documents: a text file, one topic (or seed text) per line
    seed_documents: int = Field(1000, ge=1)  # seeds sampled from the source (embedded and clustered on CPU)
    generations: int = Field(24, ge=1)  # requested generations
    formats: list[str] | None = None  # default: every format of the prompt version
    audiences: list[str] | None = None  # default: every audience of the prompt version
    extract_chars: int = Field(1000, ge=0)  # seed characters in each prompt; 0 = the whole seed
    topics: int = Field(10, ge=1)  # k-means clusters of the seeds
    encoder: str = "all-MiniLM-L6-v2"  # the classifier's packaged MiniLM, or a local sentence-transformers folder
    seed: Seed = 0
    prompts: str = "v1"  # a shipped prompt version (src/winnow/synthesis/prompts/) or a folder of templates
    generation: SynthesisGenerationConfig = Field(default_factory=SynthesisGenerationConfig)
    server: AnnotatorConfig | None = None  # who generates; default: the `annotator:` section (kind, url, model, ...)
    tasks: int = Field(1, ge=1)  # datatrove generation tasks (each with its own server when the kind is local)
    checkpoint_every: int = Field(4, ge=1)  # generations per checkpoint chunk: a killed run redoes none of those
    drop_truncated: bool = True  # drop generations cut by max_tokens without an ending (removed/truncated/)
    near_duplicates: MinhashParams = Field(default_factory=MinhashParams)  # among generations and against seeds
    decontaminate: bool = True  # drop generations sharing an n-gram with a benchmark item (decontaminate: settings)


class DecontaminateConfig(Section):
    """Benchmark decontamination of the subsets (src/winnow/pipelines/stages/decontaminate.py)."""

    n: int = Field(13, ge=1)  # word n-grams shared with a benchmark item (GPT-3, lm-eval's janitor: 13)
    min_words: int = Field(8, ge=1)  # items of min_words..n-1 words are matched whole; shorter ones are skipped (GPT-3)
    # benchmark tasks whose items are removed; default: ablate.tasks without wikitext (Wikipedia articles that web
    # pages quote legitimately, and a perplexity text rather than items)
    tasks: list[str] | None = None
    sources: list[str] | None = None  # subset names (subsets/<name>/); default: every subset of subsets/summary.json
    benchmarks_dir: str | None = None  # default: ablate.benchmarks_dir

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v):
        unknown = [t for t in v or [] if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {TASKS}")
        return v

    @model_validator(mode="after")
    def _min_words(self) -> DecontaminateConfig:
        if self.min_words > self.n:
            raise ValueError(f"decontaminate.min_words ({self.min_words}) must be at most decontaminate.n ({self.n})")
        return self


class OutputConfig(Section):
    """How the published documents are written (winnow.blocks.writers.parquet: LAYOUTS, COLUMN_SETS). Applies to
    subsets/; base/, dedup/ and score/ stay flat because the next stage reads their top-level *.parquet."""

    layout: Literal["flat", "fineweb"] = "flat"  # flat: ${rank}.parquet; fineweb: data/<dump>/000_00000.parquet
    columns: Literal["winnow", "fineweb-edu"] = "winnow"  # winnow: every column; fineweb-edu: exactly FineWeb-Edu's 10


class AblationSource(Section):
    """One data variant to compare: a subset folder (its *.parquet) or a JSONL/Parquet file or glob; or a mix of
    several at stated token shares (`data` a list, `ratio` one share each; winnow.proxy.mix)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # becomes <output_dir>/ablate/<name>/
    data: str | list[str]
    text_key: str = "text"
    ratio: list[Annotated[float, Field(gt=0)]] | None = None  # with a list of data: token shares, summing to 1

    @model_validator(mode="after")
    def _mix(self) -> AblationSource:
        if isinstance(self.data, str):
            if self.ratio is not None:
                raise ValueError("ratio: only for a mix (data: a list of sources)")
        elif len(self.data) < 2 or self.ratio is None or len(self.ratio) != len(self.data):
            raise ValueError("a mix needs data: [two or more sources] and ratio: [one token share per source]")
        elif abs(sum(self.ratio) - 1) > 1e-6:
            raise ValueError(f"ratio: the token shares must sum to 1 (got {sum(self.ratio):g})")
        return self


class AblateConfig(Section):
    """Proxy-model ablations: the same model, token budget, batch and seeds for every data source."""

    ablations: list[AblationSource] = Field(default_factory=list)
    preset: Literal["cpu-tiny", "gpu-small", "fineweb-1.8b", "cpu-tiny-gemma3", "gpu-small-gemma3"] = "cpu-tiny"
    model_overrides: dict[str, Any] = Field(default_factory=dict)  # e.g. {context_length: 128}
    tokens: int = Field(250_000, gt=0)  # training tokens per run (FineWeb: 28B for the 1.8B model)
    batch_size: int = Field(16, gt=0)  # sequences per optimiser step
    micro_batch_size: int | None = Field(None, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    schedule: Literal["wsd", "cosine"] = "wsd"
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1], min_length=1)  # 2 seeds: the noise band of each metric
    threads: int = Field(1, ge=1)  # CPU threads per training run
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_every: int = Field(50, gt=0)  # steps between validation losses (and checkpoints)
    tokenizer_docs_per_source: int = Field(1000, gt=0)  # documents per ablation for the corpus BPE (cpu-tiny)
    tasks: list[str] = Field(default_factory=lambda: list(TASKS))  # winnow.proxy.tasks.REGISTRY
    eval_limit: int | None = Field(200, ge=1)  # items per task (FineWeb used 1,000); None = all
    # which eval_limit items: "sample" = drawn with eval_seed (kept in file order), "first" = the first N of the
    # file (lm-eval's --limit); doc_ids in samples_<task>.jsonl are file indices either way
    eval_limit_mode: Literal["sample", "first"] = "sample"
    wikitext_articles: int | None = Field(10, ge=1)  # WikiText-2 test articles for perplexity (62 in all); None = all
    eval_seed: Seed = 1234
    eval_batch_size: int = Field(16, gt=0)
    benchmarks_dir: str = "../shared/data/benchmarks"
    # the shared validation set (ablate/validation/): tokens per part, one part per ablation source + WikiText-2 valid
    validation_tokens: int = Field(16_384, gt=0)
    compile: Literal["auto", "true", "false"] = "auto"  # torch.compile; auto = on CUDA only
    parallel: Literal["auto", "ddp", "fsdp"] = "auto"  # several ranks: auto = FSDP for fineweb-1.8b, else DDP
    peak_tflops: float | None = Field(None, gt=0)  # per device, for MFU; None = known GPUs by name (none on CPU)

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_bool(cls, v):
        return str(v).lower() if isinstance(v, bool) else v  # YAML reads `compile: true` as a boolean

    @field_validator("ablations")
    @classmethod
    def _unique_names(cls, v):
        names = [a.name for a in v]
        if len(set(names)) != len(names):
            raise ValueError(f"ablation names must be unique, got {names}")
        reserved = [n for n in names if n in ("tokenizer", "validation")]
        if reserved:
            raise ValueError(f"{reserved[0]!r} is an ablate/ folder of its own (tokenizer, validation); rename it")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("must be unique; a repeated seed repeats the same run")
        return v

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v):
        unknown = [t for t in v if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {TASKS}")
        return v


class StepSettings(Section):
    """One step of a stage (e.g. dedup's `clusters`): its executor fields over its stage's."""

    executor: dict[str, Any] = Field(default_factory=dict)


class StageSettings(Section):
    """`stages.<stage>`: the stage's executor fields over the global `executor` (tasks, partition, time, GPUs ...),
    and per step (`stages.dedup.steps.clusters.executor`) over those. `kind` stays global: one run, one engine."""

    executor: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepSettings] = Field(default_factory=dict)


class RunConfig(Section):
    name: str
    output_dir: str
    dump: str = "CC-MAIN-2024-10"
    input: InputConfig = Field(default_factory=InputConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    annotate: AnnotateConfig = Field(default_factory=AnnotateConfig)
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    subsets: SubsetsConfig = Field(default_factory=SubsetsConfig)
    synthesize: SynthesizeConfig = Field(default_factory=SynthesizeConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    ablate: AblateConfig = Field(default_factory=AblateConfig)
    stages: dict[str, StageSettings] = Field(default_factory=dict)  # per-stage / per-step resources

    source_file: str | None = Field(default=None, exclude=True)

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(
                "must name the run folder; an empty one would make the stages write into the current folder"
            )
        return v

    @model_validator(mode="after")
    def _slurm_values(self) -> RunConfig:
        """With executor.kind slurm, the name and the run folder are written into every sbatch script: refuse what
        could not stand there at load, before a stage creates its folder (execution/slurm.py checks again)."""
        if self.executor.kind != "slurm":
            return self
        if not _SLURM_JOB_NAME.fullmatch(self.name):
            raise ValueError(
                "name: with executor.kind slurm the name is part of every Slurm job name; use letters, digits and "
                f"_ . + - only (got {self.name!r})"
            )
        out = os.path.abspath(self.output_dir)
        if not SAFE_PATH.fullmatch(out):
            raise ValueError(
                "output_dir: with executor.kind slurm the run folder reaches sbatch; use letters, digits and "
                f"_ . / + @ , = - only, no spaces or shell metacharacters (got {out!r})"
            )
        return self

    @model_validator(mode="after")
    def _stage_resources(self) -> RunConfig:
        """Every `stages.<stage>[.steps.<step>].executor` names a registry stage (and one of its steps), leaves
        `kind` alone and merges into a valid executor section; the error names the key."""
        from winnow.pipelines import registry  # light: the registry imports nothing heavy

        for name, stage in self.stages.items():
            if name not in registry.STAGES:
                raise ValueError(f"stages.{name}: unknown stage (stages: {', '.join(registry.names())})")
            known_steps = registry.STAGES[name].steps
            for step in stage.steps:
                if step not in known_steps:
                    raise ValueError(
                        f"stages.{name}.steps.{step}: unknown step of {name} "
                        f"(steps: {', '.join(known_steps) or 'none configurable'})"
                    )
            for key, fields in [(f"stages.{name}", stage.executor)] + [
                (f"stages.{name}.steps.{step}", s.executor) for step, s in stage.steps.items()
            ]:
                if "kind" in fields:
                    raise ValueError(f"{key}.executor.kind: the executor kind is one per run (set executor.kind)")
                unknown = sorted(set(fields) - set(ExecutorConfig.model_fields))
                if unknown:
                    raise ValueError(f"{key}.executor.{unknown[0]}: unknown executor field")
            for step in [None, *stage.steps]:
                try:
                    self.executor_for(name, step)
                except ValidationError as e:
                    first = e.errors()[0]
                    where = f"stages.{name}" + (f".steps.{step}" if step else "")
                    field = ".".join(str(p) for p in first["loc"])
                    why = first["msg"].removeprefix("Value error, ")
                    raise ValueError(f"{where}.executor.{field}: {why} (got {first.get('input')!r})") from None
        return self

    def executor_for(self, stage: str, step: str | None = None) -> ExecutorConfig:
        """The executor section of one stage (and one of its steps): global, then `stages.<stage>.executor`, then
        `stages.<stage>.steps.<step>.executor`."""
        settings = self.stages.get(stage)
        if settings is None or not (settings.executor or (step and step in settings.steps)):
            return self.executor
        merged = {**self.executor.model_dump(), **settings.executor}
        if step and step in settings.steps:
            merged.update(settings.steps[step].executor)
        return ExecutorConfig.model_validate(merged)

    def for_stage(self, stage: str) -> RunConfig:
        """This config as `stage` sees it: `executor` is the stage's own (global merged with stages.<stage>)."""
        executor = self.executor_for(stage)
        if executor is self.executor:
            return self
        cfg = self.model_copy(update={"executor": executor})
        cfg.source_file = self.source_file
        return cfg

    def stage_dir(self, stage: str) -> Path:
        return Path(self.output_dir) / stage

    def documents_source(self, override: str | None, key: str, command: str, require_finished: bool = True) -> Path:
        """The folder of Parquet documents a later stage reads: `override` (the `key` setting) when given, else
        the latest of dedup/ or base/. With `require_finished`, a folder without summary.json (still running,
        or killed: its output is partial) is refused rather than read."""
        if override:
            folder = Path(override)
            if not any(folder.glob("*.parquet")):
                raise ConfigError(f"{self.source_file}: {key}: no *.parquet in {folder}")
            return folder
        for stage in ("dedup", "base"):
            folder = self.stage_dir(stage)
            if any(folder.glob("*.parquet")):
                if require_finished and not (folder / "summary.json").is_file():
                    raise ConfigError(
                        f"{self.source_file}: {folder} is not finished (no summary.json); finish "
                        f"`winnow {stage}` first, or set {key}"
                    )
                return folder
        raise ConfigError(
            f"{self.source_file}: nothing to {command}: no *.parquet in {self.stage_dir('dedup')} or "
            f"{self.stage_dir('base')} (run `winnow base` first, or set {key})"
        )


def _apply_override(data: dict, assignment: str, source: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"{source}: --set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: --set {key}: {part} is not a mapping")
    node[parts[-1]] = yaml.safe_load(raw)


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    if first["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    if not first["loc"] and first["type"] == "value_error":  # a check across sections names its key itself
        return f"{source}: {message}"
    return f"{source}: {key}: {message} (got {first.get('input')!r})"


def _read_config(path: str | os.PathLike, source: str) -> str:
    """The config file's text; a missing, unreadable or non-UTF-8 file is a one-line ConfigError."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{source}: cannot read the config file (permission denied)") from None
    except OSError as e:
        raise ConfigError(f"{source}: cannot read the config file ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def _check_filter_arguments(cfg: RunConfig, source: str) -> None:
    """Every `filters.<name>.<argument>` against the filter's constructor (name and type), then stored typed
    ("5" → 5, a YAML list → the tuple the argument declares), so that no stage meets a bad value mid-run."""
    try:
        overrides = cfg.filters.overrides()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    if not overrides:
        return
    from winnow.blocks.filters import FilterConfigError, check_overrides  # imports datatrove: only when needed

    try:
        checked = check_overrides(overrides)
    except FilterConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    for name, args in checked.items():
        setattr(cfg.filters, name, args)


def _check_output_dir(cfg: RunConfig, source: str) -> None:
    """The run folder, or the nearest of its parents that exists, must be a folder."""
    out = Path(cfg.output_dir)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        given = "" if existing == out else f" (got {cfg.output_dir!r})"
        raise ConfigError(f"{source}: output_dir: {existing} is a file, not a folder{given}")


def load_config(path: str | os.PathLike, overrides: list[str] = (), check_inputs: bool = True) -> RunConfig:
    """Read, override (`key=value`) and validate a run config. Raises ConfigError with a one-line message."""
    source = str(path)
    text = _read_config(path, source)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    for assignment in overrides:
        _apply_override(data, assignment, source)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None
    cfg.source_file = source
    _check_filter_arguments(cfg, source)
    _check_output_dir(cfg, source)
    if check_inputs:
        if not cfg.input.paths:
            raise ConfigError(f"{source}: input.paths is empty")
        for pattern in cfg.input.paths:
            if not any(os.path.isfile(p) for p in glob.glob(pattern, recursive=True)):
                raise ConfigError(f"{source}: input.paths: no file matches '{pattern}'")
    return cfg
