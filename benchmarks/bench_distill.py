"""Benchmark the distilled student against its teacher: scoring speed on one core, agreement, quality on the labels.

    make bench-distill      # or: .venv/bin/python benchmarks/bench_distill.py --teacher DIR --student DIR

Both score the same documents, the shared Llama-3 val labels (998; a student distilled on the demo pool never saw
them; a teacher trained on all 1,998 labels, the shipped default since cross-validation, did, so its F1 there is
in-sample: train it on train.jsonl.gz alone, `--set classifier.labels=.../train.jsonl.gz`, for a fair comparison).
Reported: documents per CPU-second on one core (torch and the tokenizer single-threaded, model loaded, one warm-up
batch not counted) and the ratio; the student's Spearman with the teacher; F1@3, macro-F1 and Spearman of each
against the Llama-3 labels (winnow.classifiers.evaluate). The teacher's encoder outputs come from --cache where
present (its speed is measured on --teacher-docs documents encoded afresh).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from winnow.pipelines.execution import offline_environment  # noqa: E402
from winnow.pipelines.tools.bench import RUNS, SHARED_DATA  # noqa: E402

offline_environment()  # TOKENIZERS_PARALLELISM=false: the student's tokenizer runs on one core too

import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from winnow.classifiers.embedding_cache import EmbeddingCache  # noqa: E402
from winnow.classifiers.evaluate import evaluate  # noqa: E402
from winnow.classifiers.labels import load_labels  # noqa: E402
from winnow.classifiers.saved import EduClassifier, load_classifier  # noqa: E402
from winnow.classifiers.train import cpu_seconds  # noqa: E402
from winnow.files import write_json  # noqa: E402

LABELS = SHARED_DATA / "annotations" / "fineweb-edu-llama3"


def speed(scorer, texts: list[str]) -> float:
    """Documents per CPU-second (model loaded; one warm-up batch not counted)."""
    scorer.predict(texts[:8])
    started = cpu_seconds()
    scorer.predict(texts)
    return len(texts) / max(1e-9, cpu_seconds() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=str(RUNS / "demo" / "classifier"))
    parser.add_argument("--student", default=str(RUNS / "demo" / "distill"))
    parser.add_argument("--cache", default=None, help="the teacher's embedding cache (default: <teacher>/embeddings)")
    parser.add_argument("--student-docs", type=int, default=998, help="documents timed for the student")
    parser.add_argument("--teacher-docs", type=int, default=100, help="documents timed for the teacher (slow)")
    parser.add_argument("--output", default=str(RUNS / "bench" / "bench_distill.json"))
    args = parser.parse_args()
    for folder in (args.teacher, args.student):
        if not (Path(folder) / "config.json").exists():
            print(
                f"bench_distill: no model at {folder}; run `make classifier` and `make distill` first", file=sys.stderr
            )
            return 2
    torch.set_num_threads(1)
    val = load_labels(LABELS / "val.jsonl.gz")
    teacher, student = load_classifier(args.teacher), load_classifier(args.student)

    student_speed = speed(student, val.texts[: args.student_docs])
    teacher_speed = speed(teacher, val.texts[: args.teacher_docs])
    cache = None
    if isinstance(teacher, EduClassifier) and teacher.uses_encoder:
        cache = EmbeddingCache(
            args.cache or Path(args.teacher) / "embeddings", teacher.config["encoder"], teacher.config["max_tokens"]
        )
    teacher_scores = teacher.predict(val.texts, cache=cache) if cache else teacher.predict(val.texts)
    student_scores = student.predict(val.texts)
    keys = ("f1", "macro_f1", "spearman")
    results = {
        "documents": len(val),
        "student_docs_per_cpu_second": round(student_speed, 1),
        "teacher_docs_per_cpu_second": round(teacher_speed, 2),
        "speed_ratio": round(student_speed / teacher_speed, 1),
        "spearman_student_vs_teacher": round(float(spearmanr(student_scores, teacher_scores).statistic), 4),
        "student_vs_labels": {k: round(evaluate(student_scores, val.scores)[k], 4) for k in keys},
        "teacher_vs_labels": {k: round(evaluate(teacher_scores, val.scores)[k], 4) for k in keys},
        "student_holdout_vs_teacher": student.config.get("metrics", {}).get("holdout_vs_teacher"),
    }
    write_json(args.output, results)
    print(
        f"student {student_speed:,.0f} docs/CPU-s vs teacher {teacher_speed:,.1f} (x{results['speed_ratio']}); "
        f"Spearman with the teacher {results['spearman_student_vs_teacher']:.3f} on {len(val)} val documents; "
        f"F1@3 student {results['student_vs_labels']['f1']:.3f} / teacher {results['teacher_vs_labels']['f1']:.3f}"
    )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
