"""A mixed ablation source: documents of several sources at a stated share of GPT-2 tokens, written once as Parquet.

    ablate.ablations: [{name: mix, data: [runs/x/synthesize, runs/x/subsets/edu-2], ratio: [0.3, 0.7]}]
      → <output_dir>/ablate/mix/mix/00000.parquet (text, id, source, token_count) + mix.json
      → tokenized and trained like any other source (its `data` becomes that folder)

Each source's documents are shuffled (seeded) and taken in that order until the source holds its share
ratio_i × T of the mix's tokens, where T = min_i(tokens available in source i / ratio_i): the largest mix the
sources allow at exactly that ratio (to one document per source), so the trained model sees the stated ratio
whatever its token budget (the merge step shuffles the documents; the budget is drawn from the whole mix).
Tokens are the documents' `token_count` (every winnow stage output has it) or, where missing, counted with GPT-2.
The sources are read in memory: meant for proxy-scale ablations, not for mixing whole dumps.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from winnow.files import write_json
from winnow.proxy.tokenize import source_files

MIX_FILE = "mix.json"


def _documents(source: str, text_key: str) -> list[dict]:
    import pyarrow.parquet as pq

    docs = []
    for path in source_files(source):
        if path.endswith(".parquet"):
            names = pq.read_schema(path).names
            columns = [c for c in (text_key, "id", "token_count") if c in names]
            rows = pq.read_table(path, columns=columns).to_pylist()
        else:
            with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
        for i, row in enumerate(rows):
            text = row.get(text_key)
            if isinstance(text, str) and text.strip():
                docs.append(
                    {"text": text, "id": str(row.get("id", f"{Path(path).name}/{i}")), "tokens": row.get("token_count")}
                )
    return docs


def _count_missing_tokens(docs: list[dict]) -> None:
    missing = [d for d in docs if not isinstance(d["tokens"], int)]
    if missing:
        from winnow.blocks.formatters import counting_gpt2_tokenizer

        tokenizer = counting_gpt2_tokenizer()
        for doc, encoding in zip(missing, tokenizer.encode_batch([d["text"] for d in missing]), strict=True):
            doc["tokens"] = len(encoding.ids)


def write_mix(sources: list[str], ratio: list[float], out: Path, seed: int, text_key: str = "text") -> dict:
    """The mix's Parquet file and mix.json in `out` (reused when mix.json says the same sources, ratio and seed);
    returns mix.json's content. Raises ValueError naming an empty source or a mix.json made otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = {"sources": list(sources), "ratio": list(ratio), "seed": seed, "text_key": text_key}
    record = out / MIX_FILE
    if record.is_file():
        previous = json.loads(record.read_text())
        if {k: previous.get(k) for k in spec} != spec:
            raise ValueError(
                f"{out} holds a mix of other sources or ratio ({previous['sources']}, "
                f"{previous['ratio']}); delete {out.parent} to mix again"
            )
        return previous
    rng = np.random.default_rng(seed)
    chosen, available = [], []
    for source in sources:
        docs = _documents(source, text_key)
        if not docs:
            raise ValueError(f"mix source {source!r}: no JSONL/Parquet document with a {text_key!r} text")
        _count_missing_tokens(docs)
        chosen.append([docs[j] for j in rng.permutation(len(docs))])
        available.append(sum(d["tokens"] for d in docs))
    total = min(a / r for a, r in zip(available, ratio, strict=True))
    rows, taken = [], []
    for source, docs, share in zip(sources, chosen, ratio, strict=True):
        target, tokens, n = share * total, 0, 0
        for doc in docs:
            if tokens >= target:
                break
            rows.append({"text": doc["text"], "id": doc["id"], "source": source, "token_count": doc["tokens"]})
            tokens, n = tokens + doc["tokens"], n + 1
        taken.append({"source": source, "documents": n, "tokens": tokens})
    out.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(rows))
    schema = pa.schema(
        [("text", pa.string()), ("id", pa.string()), ("source", pa.string()), ("token_count", pa.int64())]
    )
    pq.write_table(pa.Table.from_pylist([rows[j] for j in order], schema=schema), out / "00000.parquet")
    all_tokens = sum(t["tokens"] for t in taken)
    for t in taken:
        t["share_of_tokens"] = round(t["tokens"] / all_tokens, 4)
    # written last: a mix.json means the Parquet file is complete
    result = spec | {"taken": taken, "tokens": all_tokens}
    write_json(record, result)
    return result
