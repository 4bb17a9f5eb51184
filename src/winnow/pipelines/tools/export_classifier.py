"""`winnow export-classifier --classifier DIR --out DIR`: a saved classifier as a Hugging Face model folder.

Reads a `winnow classifier` folder (embed backbone) and writes the folder described in
winnow.classifiers.export (weights, tokenizer, config with calibration, hf_modeling.py, model card README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

from winnow.errors import ConfigError


def add_arguments(p) -> None:
    p.add_argument("--classifier", required=True, help="a saved classifier folder (e.g. runs/demo/classifier)")
    p.add_argument("--out", required=True, help="the Hugging Face model folder to write")


def main(args) -> int:
    from winnow.classifiers.export import export_classifier

    if not (Path(args.classifier) / "config.json").exists():
        raise ConfigError(f"--classifier {args.classifier}: no saved classifier there (no config.json)")
    out = export_classifier(args.classifier, args.out)
    print(
        f"winnow: export-classifier: {args.classifier} → {out}/ (AutoModelForSequenceClassification, "
        f"trust_remote_code=True; or winnow score --classifier {out})",
        file=sys.stderr,
    )
    return 0
