"""Label sets for the educational-quality classifier: documents with an integer score 0–5.

A label source is a JSONL(.gz), CSV(.gz) (a header row) or Parquet file, a glob, or a folder of them (the
annotation stage writes `<output_dir>/annotate/*.parquet` with `text` and `score`). The score field may be nested,
written with dots: the shared FineWeb-Edu Llama-3 files keep the label in `scores.score`. Rows whose label is
missing or outside 0–5 (an annotation the LLM answered without a score) are counted, never guessed.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_SCORE = 5  # the FineWeb-Edu prompt's additive 0–5 scale
LABEL_FILES = ("*.parquet", "*.jsonl", "*.jsonl.gz", "*.csv", "*.csv.gz")  # what a folder of labels is read for


@dataclass
class LabelSet:
    texts: list[str]
    scores: np.ndarray  # int, 0..MAX_SCORE
    ids: list[str]
    source: str
    skipped: Counter = field(default_factory=Counter)  # reason → rows left out

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """SHA-256 over (text, score) pairs in order: which exact data a saved model was trained on."""
        digest = hashlib.sha256()
        for text, score in zip(self.texts, self.scores):
            digest.update(text.encode("utf-8", "replace"))
            digest.update(b"\0%d\n" % int(score))
        return digest.hexdigest()

    def describe(self) -> dict:
        """Where the rows came from and what they hold (a saved model's config names its training data so)."""
        return {
            "source": self.source,
            "rows": len(self),
            "sha256": self.fingerprint(),
            "histogram": self.histogram(),
            "skipped": dict(self.skipped),
        }

    def histogram(self) -> dict[int, int]:
        return {k: int((self.scores == k).sum()) for k in range(MAX_SCORE + 1)}

    def subset(self, indices) -> LabelSet:
        indices = list(indices)
        return LabelSet(
            [self.texts[i] for i in indices], self.scores[indices], [self.ids[i] for i in indices], self.source
        )

    def fraction(self, share: float, seed: int = 0) -> LabelSet:
        """A stratified random share of the rows (for learning curves): every score keeps its proportion."""
        if share >= 1:
            return self
        rng = np.random.default_rng(seed)
        keep = []
        for k in range(MAX_SCORE + 1):
            rows = np.flatnonzero(self.scores == k)
            if len(rows):
                keep.extend(rng.choice(rows, size=max(1, round(share * len(rows))), replace=False))
        return self.subset(sorted(keep))


def concatenate(sets: list[LabelSet]) -> LabelSet:
    """Several label sets as one (rows in order; sources joined with " + ", skipped rows summed)."""
    skipped = Counter()
    for part in sets:
        skipped.update(part.skipped)
    return LabelSet(
        [t for part in sets for t in part.texts],
        np.concatenate([part.scores for part in sets]),
        [i for part in sets for i in part.ids],
        " + ".join(part.source for part in sets),
        skipped,
    )


def lookup(row: dict, dotted: str):
    node = row
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def label_files(source: str) -> list[str]:
    if os.path.isdir(source):
        found = [p for ext in LABEL_FILES for p in glob.glob(os.path.join(source, ext))]
    else:
        found = [p for p in glob.glob(source) if os.path.isfile(p)]
    if not found:
        raise FileNotFoundError(f"no label file (JSONL, CSV or Parquet) at {source}")
    return sorted(found)


def rows(path: str, columns: list[str] | None = None):
    """Every row of a JSONL(.gz), CSV(.gz) or Parquet file as a dict (of Parquet, only `columns` when given)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path, columns=columns).to_pylist()
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        if path.endswith((".csv", ".csv.gz")):
            csv.field_size_limit(1 << 30)  # a document is one field: far over csv's 128 kB default
            yield from csv.DictReader(f)  # values are strings: the score "4" is read as 4 below
            return
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_labels(
    source: str | os.PathLike, text_key: str = "text", score_key: str = "scores.score", id_key: str = "id"
) -> LabelSet:
    """Read every labelled row of a file, glob or folder. `score_key` may be dotted (`scores.score`).

    A folder without `score_key` in its rows falls back to `score` (the annotation stage's column).
    """
    source = str(source)
    texts, scores, ids, skipped = [], [], [], Counter()
    for path in label_files(source):
        for n, row in enumerate(rows(path)):
            text = lookup(row, text_key)
            score = lookup(row, score_key)
            if score is None and "." in score_key and "score" in row:
                score = row["score"]  # the annotation stage's flat column
            if not isinstance(text, str) or not text.strip():
                skipped["no_text"] += 1
                continue
            if score is None or isinstance(score, bool):
                skipped["no_score"] += 1
                continue
            try:
                value = float(score)
            except (TypeError, ValueError):
                skipped["bad_score"] += 1
                continue
            if value != value or not 0 <= value <= MAX_SCORE or value != int(value):
                skipped["bad_score"] += 1
                continue
            texts.append(text)
            scores.append(int(value))
            ids.append(str(lookup(row, id_key) if lookup(row, id_key) is not None else f"{Path(path).name}/{n}"))
    if not texts:
        raise ValueError(f"{source}: no usable labelled rows ({dict(skipped)}); check text_key/score_key")
    return LabelSet(texts, np.asarray(scores, dtype=np.int64), ids, source, skipped)
