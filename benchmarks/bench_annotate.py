"""How good and how fast is an annotator? Agreement with the Llama-3-70B FineWeb-Edu labels, parse rate, docs/s.

    .venv/bin/python benchmarks/bench_annotate.py [--n 120] [--set annotator.kind=endpoint --set ...]

Builds a "base" folder from ../shared/data/annotations/fineweb-edu-llama3/val.jsonl.gz (real FineWeb documents with
their Llama-3-70B score), runs the real `winnow annotate` stage on a seeded sample of --n of them (embedded SmolLM2
server by default; any --set overrides the config, e.g. an endpoint), and reports Spearman between the annotator's
scores and the Llama-3 labels, the parse rate and the throughput, into <out>/agreement.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import yaml

from winnow.pipelines.tools.bench import SHARED_DATA

LABELS = SHARED_DATA / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz"


def build_base(folder: Path) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in gzip.open(LABELS, "rt")]
    labels = {f"val-{r['id']}": r["scores"]["score"] for r in rows}
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(
        [
            {
                "text": r["text"],
                "id": f"val-{r['id']}",
                "url": None,
                "dump": "fineweb-edu-llama3",
                "llama3_score": r["scores"]["score"],
            }
            for r in rows
        ]
    )
    pq.write_table(table, folder / "00000.parquet")
    return labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-annotate")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)

    from scipy.stats import spearmanr

    from winnow.pipelines.cli import main as winnow
    from winnow.pipelines.summary import read_summary

    out = Path(args.out)
    labels = build_base(out / "base")
    config = out / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"name": "bench-annotate", "output_dir": str(out), "annotate": {"n_documents": args.n, "seed": args.seed}}
        )
    )
    code = winnow(["annotate", "-c", str(config), *sum((["--set", s] for s in args.set), [])])
    if code:
        return code
    import pyarrow.parquet as pq

    rows = []
    for path in sorted((out / "annotate").glob("*.parquet")):
        rows.extend(pq.read_table(path, columns=["id", "score", "score_expected"]).to_pylist())
    scored = [r for r in rows if r["score"] is not None]
    summary = read_summary(out / "annotate")
    truth = [labels[r["id"]] for r in scored]
    result = {
        "documents": len(rows),
        "scored": len(scored),
        "parse_rate": summary["parse_rate"],
        "documents_per_second": summary["documents_per_second"],
        "seconds_per_document": round(summary["seconds"]["inference_wall"] / max(len(rows), 1), 2),
        # undefined (None) when the annotator gives every document the same score
        "spearman_score": (
            spearmanr([r["score"] for r in scored], truth).statistic if len({r["score"] for r in scored}) > 1 else None
        ),
        "spearman_score_expected": (
            spearmanr([r["score_expected"] for r in scored], truth).statistic
            if scored and scored[0]["score_expected"] is not None
            else None
        ),
        "predicted_histogram": summary["histogram"],
        "llama3_histogram": {str(k): truth.count(k) for k in range(6)},
        "model": summary["model"],
        "mode": summary["mode"],
    }
    (out / "agreement.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
