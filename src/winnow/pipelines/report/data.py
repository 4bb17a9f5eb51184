"""What the run report reads from a run folder: stage summaries, Parquet columns, removed documents, the
token funnel and a near-duplicate pair. Only columns that are needed are read, and scans stop early, so the
report stays quick on a whole dump's outputs.

Removed documents carry no token_count (they leave before the counter), so their tokens are counted here
with the same GPT-2 tokenizer, on at most MAX_TOKENIZED documents per filter (extrapolated beyond).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from winnow.pipelines.config import RunConfig

MAX_TOKENIZED = 20_000  # removed documents tokenized per filter; more are extrapolated from these
EXAMPLES_PER_FILTER = 3
EXAMPLE_CHARS = 280


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def later_summary(path: Path) -> dict | None:
    """A later stage's summary for its funnel row; unreadable, it loses the row (its own section says why)."""
    try:
        return read_json(path)
    except ValueError:
        return None


def parquet_rows(folder: Path, columns: list[str], limit: int | None = None):
    """Rows (dicts of `columns`) of folder/*.parquet in file order, stopping after `limit`."""
    import pyarrow.parquet as pq

    seen = 0
    for path in sorted(folder.glob("*.parquet")):
        parquet = pq.ParquetFile(path)
        wanted = [c for c in columns if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=512, columns=wanted):
            for row in batch.to_pylist():
                yield row
                seen += 1
                if limit is not None and seen >= limit:
                    return


def column_sum(folder: Path, column: str) -> int | None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    total = 0
    for path in files:
        if column not in pq.ParquetFile(path).schema_arrow.names:
            return None
        total += pc.sum(pq.read_table(path, columns=[column]).column(column)).as_py() or 0
    return total


def removed_tokens(folder: Path, documents: int, tokenizer) -> tuple[int, bool]:
    """GPT-2 tokens of the removed documents in folder (extrapolated past MAX_TOKENIZED); (tokens, estimated)."""
    texts = [r.get("text") or "" for r in parquet_rows(folder, ["text"], MAX_TOKENIZED)]
    if not texts:
        return 0, False
    counted = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    if documents > len(texts):
        return round(counted * documents / len(texts)), True
    return counted, False


def one_line(text: str | None, chars: int = EXAMPLE_CHARS) -> str:
    """A cell-safe excerpt: whitespace collapsed, pipes escaped, cut at `chars`."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if len(text) > chars:
        text = text[:chars].rstrip() + " …"
    return text.replace("|", "\\|") or "(empty)"


def page_excerpt(text: str | None) -> str:
    """What a reader can tell from a page removed before extraction: its <title> and size, not its markup."""
    text = text or ""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    size = f"HTML page, {len(text.encode('utf-8', 'replace')) / 1024:,.0f} kB"
    return f"({size}) title: {one_line(title.group(1), 120)}" if title else f"({size}, no title)"


def removed_examples(folder: Path, n: int = EXAMPLES_PER_FILTER) -> list[dict]:
    """Up to n removed documents, one per distinct reason first, scanning at most a few thousand rows."""
    chosen, reasons = [], set()
    spare = []
    for row in parquet_rows(folder, ["url", "text", "filter_reason", "language"], 3000):
        if row.get("filter_reason") not in reasons:
            reasons.add(row.get("filter_reason"))
            chosen.append(row)
        elif len(spare) < n:
            spare.append(row)
        if len(chosen) >= n:
            break
    return (chosen + spare)[:n]


def funnel_table(cfg: RunConfig) -> list[dict] | None:
    """Rows {step, stage, documents, tokens, removed, estimated}: base steps, base kept, dedup, subsets."""
    from winnow.blocks.formatters import gpt2_tokenizer

    base_dir = cfg.stage_dir("base")
    summary = read_json(base_dir / "summary.json")
    if summary is None or "funnel" not in summary:
        return None
    steps = summary["funnel"]
    kept_tokens = column_sum(base_dir, "token_count") or 0
    # tokens exist once text has been extracted: from the extractor's row on (every row for JSONL/Parquet input)
    names = [s["step"] for s in steps]
    start = names.index("extractor") if "extractor" in names else 0
    tokenizer = gpt2_tokenizer()
    removed_at, estimated = {}, False  # step index → tokens that step removed
    for j in range(start + 1, len(steps)):
        removed_at[j], guessed = removed_tokens(base_dir / "removed" / names[j], steps[j].get("removed", 0), tokenizer)
        estimated = estimated or guessed
    rows = []
    for i, step in enumerate(steps):
        tokens = kept_tokens + sum(v for j, v in removed_at.items() if j > i) if i >= start else None
        rows.append(
            {
                "step": step["step"],
                "stage": "base",
                "documents": step["documents"],
                "tokens": tokens,
                "removed": step.get("removed", 0) + step.get("failed", 0),
                "estimated": estimated,
            }
        )
    rows.append(
        {
            "step": "base kept",
            "stage": "base",
            "documents": summary["kept"],
            "tokens": kept_tokens,
            "removed": 0,
            "estimated": False,
        }
    )
    dedup = later_summary(cfg.stage_dir("dedup") / "summary.json")
    if dedup:
        rows.append(
            {
                "step": "dedup kept",
                "stage": "dedup",
                "documents": dedup["kept"],
                "tokens": column_sum(cfg.stage_dir("dedup"), "token_count"),
                "removed": dedup["read"] - dedup["kept"],
                "estimated": False,
            }
        )
    subsets = later_summary(cfg.stage_dir("subsets") / "summary.json")
    if subsets:
        for name, s in subsets["subsets"].items():
            label = "scored (all)" if name == "all" else f"{name} (int_score ≥ {s['int_score_at_least']})"
            rows.append(
                {
                    "step": label,
                    "stage": "subsets",
                    "documents": s["documents"],
                    "tokens": s["tokens"],
                    "removed": None,
                    "estimated": False,
                }
            )
    return rows


def jaccard_5grams(a: str, b: str) -> float:
    def grams(text):
        words = text.split()
        return {" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def first_difference(a: str, b: str) -> int:
    """Where two texts start to differ, backed up 120 characters (to a word start) so the reader sees context."""
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, same - 120)
    return 0 if start == 0 else (a.find(" ", start) + 1 or start)


def near_duplicate_pair(dedup_dir: Path) -> tuple[dict, dict] | None:
    """A MinHash-removed document whose text differs from its kept twin, and that twin. Only the id column of
    the kept files is scanned (a dump's dedup output is large); text is read from the file holding a twin."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    removed = {
        r["duplicate_of"]: r
        for r in parquet_rows(
            dedup_dir / "removed" / "minhash_duplicate",
            ["id", "url", "text", "duplicate_of", "minhash_cluster_size"],
            50,
        )
        if r.get("duplicate_of")
    }
    if not removed:
        return None
    wanted = pa.array(list(removed))
    for path in sorted(dedup_dir.glob("*.parquet")):
        mask = pc.is_in(pq.read_table(path, columns=["id"]).column("id"), value_set=wanted)
        if not pc.any(mask).as_py():
            continue
        for kept in pq.read_table(path, columns=["id", "url", "text"]).filter(mask).to_pylist():
            if kept["text"] != removed[kept["id"]]["text"]:
                return removed[kept["id"]], kept
    return None


def stale_stages(cfg: RunConfig) -> list[str]:
    """Stages whose input changed after they ran: each reads what the stage before it kept, so a re-run of an
    earlier stage that changed its output shows here as read ≠ kept (only for the default source folders)."""
    chain = [("dedup", "base", "make dedup")]
    if cfg.score.source is None:
        scored_from = "dedup" if (cfg.stage_dir("dedup") / "summary.json").is_file() else "base"
        chain.append(("score", scored_from, "make score"))
    if cfg.subsets.source is None:
        chain.append(("subsets", "score", "make subsets"))
    notes = []
    for stage, source, command in chain:
        try:
            after = read_json(cfg.stage_dir(stage) / "summary.json")
            before = read_json(cfg.stage_dir(source) / "summary.json")
        except ValueError:
            continue  # an unreadable summary is reported by its own section
        if after and before and after.get("read") != before.get("kept"):
            notes.append(
                f"{stage} read {after['read']:,} documents but {source} now keeps {before['kept']:,}: it ran on "
                f"an earlier {source} output (`{command}` and the stages after it bring it up to date)"
            )
    return notes
