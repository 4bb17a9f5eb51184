"""Benchmark the fine-tuned encoder backbone (classifiers/finetune.py) on one fold of the shared labels.

    nice -n 10 .venv/bin/python benchmarks/bench_finetune.py [--epochs 1] [--max-tokens 128] [--max-steps N]
                                                             [--device auto]

All 1,998 shared Llama-3 labels (annotations/fineweb-edu-llama3/*.jsonl.gz), split by StratifiedKFold(5, shuffle=True,
random_state=0); fold 0 is held out (the same fold the other backbones' cross-validation uses), the other 80 % train.
Reported: training wall and CPU seconds (tokenising, the linear probe, every optimiser step, saving), held-out F1@3 /
macro-F1 / Spearman on the raw scores and after a ScoreCalibration fitted on the model's own (in-sample) predictions
for the training part (out-of-fold predictions would cost k more fine-tunes), and scoring speed in documents per
CPU-second on one core (torch single-threaded) over --speed-docs held-out documents. Writes
runs/bench/bench_finetune.json and the fine-tuned model folder (--model-dir), which `winnow score --classifier` takes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from winnow.pipelines.execution import offline_environment  # noqa: E402
from winnow.pipelines.tools.bench import RUNS, SHARED_DATA, cpu_seconds  # noqa: E402

offline_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from winnow.classifiers.evaluate import evaluate  # noqa: E402
from winnow.classifiers.finetune import FineTuneSettings, fine_tune  # noqa: E402
from winnow.classifiers.labels import load_labels  # noqa: E402
from winnow.classifiers.model import ScoreCalibration  # noqa: E402

LABELS = SHARED_DATA / "annotations" / "fineweb-edu-llama3" / "*.jsonl.gz"


def fold_zero(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): fold 0 of StratifiedKFold(5, shuffle=True, random_state=0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
        folds = StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(scores)), scores)
        return next(iter(folds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--speed-docs", type=int, default=200)
    parser.add_argument("--model-dir", default=str(RUNS / "bench" / "finetune-fold0"))
    parser.add_argument("--output", default=str(RUNS / "bench" / "bench_finetune.json"))
    args = parser.parse_args()

    labels = load_labels(LABELS)
    train_rows, held_rows = fold_zero(labels.scores)
    train_set, held_set = labels.subset(train_rows), labels.subset(held_rows)
    settings = FineTuneSettings(
        max_tokens=args.max_tokens,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"fine-tuning on {len(train_set)} labels, {len(held_set)} held out (fold 0 of 5) ...", flush=True)
    started_wall, started_cpu = time.perf_counter(), cpu_seconds()
    scorer = fine_tune(train_set.texts, train_set.scores, settings, args.model_dir)
    train_wall, train_cpu = time.perf_counter() - started_wall, cpu_seconds() - started_cpu

    started_cpu = cpu_seconds()
    held_raw = scorer.predict(held_set.texts)
    train_raw = scorer.predict(train_set.texts)  # in-sample: what the calibration is fitted on
    predict_cpu = cpu_seconds() - started_cpu
    calibration = ScoreCalibration.fit(train_raw, train_set.scores)
    raw, calibrated = evaluate(held_raw, held_set.scores), evaluate(calibration(held_raw), held_set.scores)

    torch.set_num_threads(1)  # scoring speed per core, as bench_classifier.py measures the other backbones
    speed_texts = held_set.texts[: args.speed_docs]
    scorer.predict(speed_texts[:8])  # warm-up, not counted
    started_cpu = cpu_seconds()
    scorer.predict(speed_texts)
    docs_per_cpu_s = len(speed_texts) / max(1e-9, cpu_seconds() - started_cpu)

    losses = scorer.record["losses"]
    tenth = max(1, len(losses) // 10)
    results = {
        "labels": str(LABELS),
        "split": "StratifiedKFold(5, shuffle=True, random_state=0), fold 0 held out",
        "train_rows": len(train_set),
        "held_out_rows": len(held_set),
        "device": scorer.record["device"],
        "max_tokens": scorer.record["max_tokens"],
        "epochs": args.epochs,
        "steps": scorer.record["steps"],
        "probe": scorer.record["probe"],
        "loss_first_tenth": float(np.mean(losses[:tenth])) if losses else None,
        "loss_last_tenth": float(np.mean(losses[-tenth:])) if losses else None,
        "train_wall_s": train_wall,
        "train_cpu_s": train_cpu,
        "predict_cpu_s_train_and_held_out": predict_cpu,
        "torch_threads_training": scorer.record["threads"],
        "docs_per_cpu_s": docs_per_cpu_s,
        "speed_docs": len(speed_texts),
        "calibration": {"fitted_on": "in-sample predictions on the training part", "cuts": calibration.cuts},
        "raw": _headline(raw),
        "calibrated": _headline(calibrated),
        "settings": scorer.record["settings"],
        "model_dir": args.model_dir,
    }
    print(f"{'scores':<11} {'F1@3':>6} {'F1 95% CI':>12} {'macro-F1':>8} {'Spearman':>8}")
    for name in ("raw", "calibrated"):
        r = results[name]
        print(
            f"{name:<11} {r['f1']:>6.3f} {r['f1_ci95'][0]:>5.2f}–{r['f1_ci95'][1]:<5.2f} {r['macro_f1']:>8.3f} "
            f"{r['spearman']:>8.3f}"
        )
    print(
        f"training: {train_wall:.0f} s wall, {train_cpu:.0f} CPU-s ({results['steps']} steps, loss "
        f"{results['loss_first_tenth']:.3f} → {results['loss_last_tenth']:.3f}); scoring: {docs_per_cpu_s:.1f} "
        f"documents per CPU-second on one core (max_tokens {results['max_tokens']})"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"→ {args.output}")
    return 0


def _headline(m: dict) -> dict:
    return {k: m[k] for k in ("f1", "f1_ci95", "precision", "recall", "macro_f1", "spearman", "n")}


if __name__ == "__main__":
    sys.exit(main())
