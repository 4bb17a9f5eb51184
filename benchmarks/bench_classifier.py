"""Benchmark the two classifier backbones side by side: training cost, scoring speed per core, F1@3 on val.

    make bench-classifier            # or: .venv/bin/python benchmarks/bench_classifier.py [--speed-docs 200]

Both backbones train on the shared Llama-3 train labels (1,000) and are evaluated on the val labels (998).
Scoring speed is measured on the same documents for both, on one core (torch and fastText single-threaded),
as documents per CPU-second. The embed backbone's training cost is its encoding (train documents × the
measured CPU-seconds per document, on the same encoder and max_tokens) plus the head fitting, measured on
cached embeddings; pass --cold to encode the training set for real instead (slow on a shared machine).
Embeddings are cached in --cache (default: the demo run's), so re-running is cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from winnow.pipelines.execution import offline_environment  # noqa: E402
from winnow.pipelines.tools.bench import RUNS, SHARED_DATA  # noqa: E402

offline_environment()

import torch  # noqa: E402

from winnow.classifiers.embedding_cache import EmbeddingCache  # noqa: E402
from winnow.classifiers.evaluate import evaluate  # noqa: E402
from winnow.classifiers.labels import load_labels  # noqa: E402
from winnow.classifiers.train import TrainSettings, cpu_seconds, train  # noqa: E402

LABELS = SHARED_DATA / "annotations" / "fineweb-edu-llama3"


def scoring_speed(classifier, texts: list[str]) -> float:
    """Documents per CPU-second on one core (model already loaded; one warm-up batch not counted)."""
    classifier.predict(texts[:8])
    started = cpu_seconds()
    classifier.predict(texts)
    return len(texts) / max(1e-9, cpu_seconds() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-docs", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--cache", default=str(RUNS / "demo" / "classifier" / "embeddings"))
    parser.add_argument("--cold", action="store_true", help="encode the training set for real (no cache)")
    parser.add_argument("--output", default=str(RUNS / "bench" / "bench_classifier.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_set, val_set = load_labels(LABELS / "train.jsonl.gz"), load_labels(LABELS / "val.jsonl.gz")
    speed_texts = val_set.texts[: args.speed_docs]
    results = {}

    # fastText: the reference run
    settings = TrainSettings(backbone="fasttext")
    started_wall, started_cpu = time.perf_counter(), cpu_seconds()
    classifier, _ = train(train_set, settings)
    train_cpu, train_wall = cpu_seconds() - started_cpu, time.perf_counter() - started_wall
    metrics = evaluate(classifier.predict(val_set.texts), val_set.scores)
    results["fasttext"] = {
        "train_cpu_s": train_cpu,
        "train_wall_s": train_wall,
        "docs_per_cpu_s": scoring_speed(classifier, speed_texts),
        **_headline(metrics),
    }

    # embed: MiniLM + regression head
    cache_dir = tempfile.mkdtemp(prefix="winnow-bench-") if args.cold else args.cache
    settings = TrainSettings(backbone="embed", max_tokens=args.max_tokens, cache_dir=cache_dir)
    cache = EmbeddingCache(cache_dir, settings.encoder, settings.max_tokens)
    started_wall, started_cpu = time.perf_counter(), cpu_seconds()
    classifier, record = train(train_set, settings)
    train_cpu, train_wall = cpu_seconds() - started_cpu, time.perf_counter() - started_wall
    docs_per_cpu_s = scoring_speed(classifier, speed_texts)  # always encodes: predict without the cache
    cached_before = 0 if args.cold else len(train_set)
    encode_cpu = cached_before / docs_per_cpu_s  # encoding the training set, at the measured rate
    metrics = evaluate(classifier.predict(val_set.texts, cache=cache), val_set.scores)
    results["embed"] = {
        "train_cpu_s": train_cpu + encode_cpu,
        "train_wall_s": train_wall,
        "head_cpu_s": train_cpu if not args.cold else None,
        "encode_cpu_s_estimated": encode_cpu if not args.cold else None,
        "docs_per_cpu_s": docs_per_cpu_s,
        "max_tokens": args.max_tokens,
        **_headline(metrics),
    }

    for r in results.values():
        r["f1_per_train_cpu_s"] = r["f1"] / r["train_cpu_s"]
        r["cpu_s_per_1M_docs_scored"] = 1e6 / r["docs_per_cpu_s"]
    ref = results["fasttext"]
    print(
        f"{'backbone':<10} {'train CPU-s':>11} {'score docs/s/core':>18} {'× fastText':>10} "
        f"{'F1@3':>6} {'macro-F1':>8} {'Spearman':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['train_cpu_s']:>11.1f} {r['docs_per_cpu_s']:>18.1f} "
            f"{r['docs_per_cpu_s'] / ref['docs_per_cpu_s']:>10.4f} {r['f1']:>6.3f} {r['macro_f1']:>8.3f} "
            f"{r['spearman']:>8.3f}"
        )
    print(
        f"(scoring speed on the same {len(speed_texts)} val documents, one core; F1 etc. on {len(val_set)} val labels)"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"→ {args.output}")
    return 0


def _headline(m: dict) -> dict:
    return {k: m[k] for k in ("f1", "precision", "recall", "macro_f1", "spearman", "n")}


if __name__ == "__main__":
    sys.exit(main())
