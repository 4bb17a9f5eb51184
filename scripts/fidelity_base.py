"""Fidelity of our filter stack: run it on documents FineWeb's own filters kept, report the keep rate per filter.

The FineWeb documents in ../shared/data/annotations/fineweb-edu-llama3/ (train + val, 1,998 docs) all passed
FineWeb's filters, so every removal here is a disagreement with FineWeb. The stage runs for real (`winnow base`
with input.format jsonl: no extraction, no url in these rows so the URL filter keeps them and counts `no_url`).

    .venv/bin/python scripts/fidelity_base.py [--word-splitter regex|spacy] [--output runs/fidelity] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from winnow.pipelines.tools.bench import RUNS, SHARED_DATA

FINEWEB_DOCS = SHARED_DATA / "annotations" / "fineweb-edu-llama3"


def run_fidelity(output_dir: Path, word_splitter: str = "regex", tasks: int = 2) -> dict:
    """Run the base stage on the FineWeb documents; returns {"rows": [...per filter...], "total": {...}}."""
    from winnow.pipelines.config import load_config
    from winnow.pipelines.stages import base

    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    cfg_path = output_dir / "fidelity.yaml"
    cfg_path.write_text(
        json.dumps(
            {
                "name": "fidelity",
                "output_dir": str(output_dir),
                "input": {"paths": [str(FINEWEB_DOCS.resolve() / "*.jsonl.gz")], "format": "jsonl"},
                "executor": {"kind": "local", "tasks": tasks, "workers": tasks},
                "filters": {"word_splitter": word_splitter},
            }
        )
    )
    cfg = load_config(cfg_path)
    base.run(cfg)
    summary = json.loads((cfg.stage_dir("base") / "summary.json").read_text())
    rows, remaining = [], summary["read"]
    for step in summary["funnel"][1:]:
        removed = summary["removed"].get(step["step"], {})
        n_in = remaining
        remaining = step["documents"]
        rows.append(
            {
                "filter": step["step"],
                "in": n_in,
                "removed": n_in - remaining,
                "keep_rate": remaining / n_in if n_in else 1.0,
                "reasons": removed,
            }
        )
    total = {"read": summary["read"], "kept": summary["kept"], "keep_rate": summary["kept"] / summary["read"]}
    return {"word_splitter": word_splitter, "rows": rows, "total": total}


def print_table(result: dict) -> None:
    print(f"FineWeb documents through our filter stack (word splitter: {result['word_splitter']})")
    print(f"{'filter':<20} {'in':>6} {'removed':>8} {'keep %':>8}  reasons")
    for row in result["rows"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(row["reasons"].items(), key=lambda kv: -kv[1]))
        print(f"{row['filter']:<20} {row['in']:>6} {row['removed']:>8} {100 * row['keep_rate']:>7.2f}%  {reasons}")
    t = result["total"]
    print(f"{'total':<20} {t['read']:>6} {t['read'] - t['kept']:>8} {100 * t['keep_rate']:>7.2f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word-splitter", default="regex", choices=["regex", "spacy"])
    parser.add_argument("--output", default=str(RUNS / "fidelity"))
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args()
    result = run_fidelity(Path(args.output), args.word_splitter, args.tasks)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
