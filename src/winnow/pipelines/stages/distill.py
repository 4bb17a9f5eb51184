"""`winnow distill`: a fast static-embedding student of the run's classifier, for scoring a crawl on CPUs.

Reads the teacher (`distill.teacher`, default `<output_dir>/classifier/`) and an unlabelled pool (`distill.pool`:
"run" = the documents the score stage would read, the latest of `dedup/` or `base/`, plus any JSONL/Parquet files,
globs or folders), scores the pool with the teacher (an embed teacher's sentence embeddings are added to the
classifier's embedding cache) and trains the student on those scores (winnow.classifiers.distill). Writes
`<output_dir>/distill/`:

```
distill/
  config.json, tokenizer.json, embeddings.npy, head.npz   the student (classifiers/static.py): `score.classifier`
                                                          pointed here scores with it
  eval.json      student vs teacher on the held-out pool documents, timings, documents per CPU-second
  summary.json   read = kept (pool documents the student saw or was measured on) + removed.pool (empty_text,
                 duplicate_text, over_max_documents)
```
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from winnow.classifiers.distill import DistillSettings, distill
from winnow.classifiers.embedding_cache import EmbeddingCache
from winnow.classifiers.hf_format import read_config
from winnow.classifiers.labels import label_files, rows
from winnow.classifiers.model import DEFAULT_ENCODER
from winnow.classifiers.saved import EduClassifier, check_classifier, load_classifier
from winnow.classifiers.static import FORMAT as STATIC_FORMAT
from winnow.files import write_json
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import offline_environment
from winnow.pipelines.summary import stage_summary, write_summary

STAGE = "distill"
RUN_DOCUMENTS = "run"


def teacher_folder(cfg: RunConfig) -> Path:
    return Path(cfg.distill.teacher or cfg.classifier.output or cfg.stage_dir("classifier"))


def pool_files(cfg: RunConfig) -> list[str]:
    """Every file of the pool, sorted; ConfigError (naming the entry) for an entry that matches none."""
    files: list[str] = []
    for entry in cfg.distill.pool:
        if entry == RUN_DOCUMENTS:
            source = cfg.documents_source(cfg.score.source, "score.source", "distill")
            files += sorted(str(p) for p in source.glob("*.parquet"))
            continue
        try:
            found = label_files(entry)  # the classifier's reader of a file, glob or folder of JSONL/CSV/Parquet
        except FileNotFoundError:
            raise ConfigError(f"{cfg.source_file}: distill.pool: {entry!r} matches no JSONL/CSV/Parquet file") from None
        files += found
    return list(dict.fromkeys(files))


def fingerprint_inputs(cfg: RunConfig) -> list[str]:
    """The pool's files outside the run (the run's documents are covered by their stage's fingerprint) and the
    teacher's config.json (a teacher outside the run has no stage fingerprint)."""
    entries = [e for e in cfg.distill.pool if e != RUN_DOCUMENTS]
    teacher = [str(teacher_folder(cfg) / "config.json")] if (teacher_folder(cfg) / "config.json").is_file() else []
    outside = cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"pool": entries})})
    try:
        return pool_files(outside) + teacher
    except ConfigError:
        return teacher  # the stage says so, with the key


def read_pool(cfg: RunConfig) -> tuple[list[str], Counter, int]:
    """(texts, removed reason → count, documents read): empty texts and exact repeats are left out (a repeat split
    across the fit and held-out shares would flatter the student); `max_documents` keeps a seeded sample."""
    texts, removed, seen, read = [], Counter(), set(), 0
    for path in pool_files(cfg):
        for text in _texts(path, cfg.distill.text_key):
            read += 1
            if not isinstance(text, str) or not text.strip():
                removed["empty_text"] += 1
                continue
            key = hashlib.sha1(text.encode("utf-8", "replace")).digest()
            if key in seen:
                removed["duplicate_text"] += 1
                continue
            seen.add(key)
            texts.append(text)
    limit = cfg.distill.max_documents
    if limit is not None and len(texts) > limit:
        keep = np.sort(np.random.default_rng(cfg.distill.seed).choice(len(texts), limit, replace=False))
        removed["over_max_documents"] = len(texts) - limit
        texts = [texts[i] for i in keep]
    return texts, removed, read


def embedding_cache(cfg: RunConfig, teacher) -> EmbeddingCache | None:
    """An embed teacher's sentence embeddings are kept in the classifier's cache (so a re-run does not re-encode)."""
    if not (isinstance(teacher, EduClassifier) and teacher.uses_encoder):
        return None
    folder = cfg.distill.embedding_cache or cfg.classifier.embedding_cache or str(teacher_folder(cfg) / "embeddings")
    return EmbeddingCache(folder, teacher.config["encoder"], teacher.config["max_tokens"])


def settings_from(cfg: RunConfig, teacher) -> DistillSettings:
    d = cfg.distill
    own = getattr(teacher, "config", None) or {}  # winnow's classifiers name their encoder and its max_tokens
    if own.get("encoder") and d.encoder and d.encoder != own["encoder"]:
        raise ConfigError(
            f"distill.encoder: the teacher reads documents through {own['encoder']}; the student must use its "
            f"tokens (leave distill.encoder unset)"
        )
    return DistillSettings(
        encoder=d.encoder or own.get("encoder") or DEFAULT_ENCODER,
        dim=d.dim,
        max_tokens=d.max_tokens or own.get("max_tokens") or 256,
        holdout=d.holdout,
        seed=d.seed,
        prior_tokens=d.prior_tokens,
        vocabulary=d.vocabulary,
    )


def run(cfg: RunConfig, args) -> int:
    offline_environment()
    out = cfg.stage_dir(STAGE)
    teacher_dir = teacher_folder(cfg)
    try:
        check_classifier(teacher_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"distill.teacher: {e}") from None
    if read_config(teacher_dir).get("format") == STATIC_FORMAT:
        raise ConfigError(f"distill.teacher: {teacher_dir} is a distilled student already; name the classifier")
    texts, removed, read = read_pool(cfg)
    if len(texts) < 10:
        raise ConfigError(f"{cfg.source_file}: distill.pool: {len(texts)} usable documents; the student needs >= 10")
    teacher = load_classifier(teacher_dir, device=cfg.classifier.device)
    settings = settings_from(cfg, teacher)
    print(f"winnow: distill: scoring {len(texts)} pool documents with the teacher {teacher_dir}", file=sys.stderr)
    student, record = distill(
        texts,
        teacher,
        settings,
        embedding_cache(cfg, teacher),
        log=lambda m: print(f"winnow: distill:{m}", file=sys.stderr),
    )
    about = {
        "teacher": {"folder": str(teacher_dir.resolve()), "sha256": _sha256(teacher_dir / "config.json")},
        "pool": {"sources": cfg.distill.pool, "documents": len(texts), "removed": dict(removed)},
        "metrics": {"holdout_vs_teacher": record["holdout"]},
    }
    student.save(out, about)
    write_json(out / "eval.json", {**about, **record})
    write_summary(
        out,
        stage_summary(read, len(texts), removed={"pool": dict(removed)}, holdout_vs_teacher=record["holdout"]),
    )
    print(
        f"winnow: distill: student → {out}/ (Spearman {record['holdout']['spearman']:.3f} with the teacher on "
        f"{record['holdout_documents']} held-out documents); score with it: --set score.classifier={out}",
        file=sys.stderr,
    )
    return 0


def _texts(path: str, key: str):
    """The `key` field of every row of a pool file (None where a row has none), read as the classifier reads labels."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        if key not in pq.read_schema(path).names:
            raise ConfigError(f"distill.text_key: {path} has no column {key!r}")
    for row in rows(path, [key]):
        yield row.get(key)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
