"""`winnow jury-agreement --labels PATH [--key sample_scores]`: how well an LLM annotator agrees with itself.

Reads annotations with several sampled scores per document (the annotate stage's `sample_scores` column with
`annotator.samples > 1`, or any JSONL/CSV/Parquet file, glob or folder whose rows hold a list of scores at `--key`,
dotted keys allowed) and prints winnow.classifiers.evaluate.jury_agreement as JSON: F1 of `score >= 3` between two
single samples, and between one sample and the rounded mean of the others - the ceiling of a classifier judged
against one sampled label per document.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from winnow.errors import ConfigError


def add_arguments(p) -> None:
    p.add_argument("--labels", required=True, help="annotations: a file, glob or folder (e.g. runs/demo/annotate)")
    p.add_argument("--key", default="sample_scores", help="the column with each document's list of sampled scores")
    p.add_argument("--threshold", type=int, default=3, help="the educational cut, int_score >= threshold")


def main(args) -> int:
    from winnow.classifiers.evaluate import jury_agreement
    from winnow.classifiers.labels import label_files, lookup, rows

    try:
        files = label_files(args.labels)
    except FileNotFoundError:
        raise ConfigError(f"--labels {args.labels}: no JSONL, CSV or Parquet file there") from None
    juries, skipped = [], Counter()
    for path in files:
        for row in rows(path):
            value = lookup(row, args.key)
            if not isinstance(value, list):
                skipped["no_list"] += 1
                continue
            scores = [
                s if isinstance(s, int | float) and not isinstance(s, bool) and 0 <= s <= 5 else None for s in value
            ]
            skipped["unscored_samples"] += sum(s is None for s in scores)
            juries.append([None if s is None else int(round(s)) for s in scores])
    out = jury_agreement(juries, threshold=args.threshold)
    if out is None:
        raise ConfigError(
            f"--labels {args.labels}: no row has two scored samples at --key {args.key!r} ({dict(skipped)})"
        )
    print(json.dumps({**out, "rows": len(juries) + skipped["no_list"], "skipped": dict(skipped)}, indent=1))
    print(
        f"winnow: jury-agreement: {out['documents']} documents, {out['samples_per_document']} samples each: F1@"
        f"{args.threshold} one sample vs another {out['pairwise_f1']:.3f}, vs the mean of the others "
        f"{out['sample_vs_rest_f1']:.3f} (the ceiling of a classifier judged against single labels)",
        file=sys.stderr,
    )
    return 0
