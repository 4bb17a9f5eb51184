"""The shared validation set: the same held-out tokens for every ablation of a run, so validation losses compare
data sets (each ablation's own held-out tail only says how well a model fits its own data).

Data flow: every ablation source, in config order, then WikiText-2's *validation* split (the evaluator's perplexity
uses the test split) → one part each of about `tokens_per_part` tokens (whole documents) → tokenized once with the
run's shared tokenizer, EOS after each document exactly as the ablations' token streams → written as

    <folder>/                     (the ablate stage's `ablate/validation/`)
      manifest.json               parts in order: name, source, text_key, documents, tokens, token file; the
                                  selection rule, tokens_per_part, the tokenizer's sha256, `digest` of the held-out set
      documents.jsonl             the held-out documents (part, sha1, text): kept here, never lost
      held_out.sha1               sha1 of every held-out source text, one a line: the ablations' tokenize step
                                  skips these texts in every training stream (a text in two sources goes from both)
      tokens/<k>-<part>.ds        the part's tokens (uint16 when the vocabulary fits, else uint32)

Which documents: a source's documents are read in reader order and a document is held out when the first 8 hex
digits of the sha1 of its text are divisible by HOLD_OUT_EVERY (a fixed 1-in-16 sample spread over the start of the
source, deterministic, independent of the seed and of the other sources) until the part has `tokens_per_part`
tokens. WikiText-2 articles are taken in file order. The set is built once: a later run with other ablations keeps
it (`check_sources` says which sources it does not cover); rebuilding means deleting the folder and the ablations'
tokens, which excluded its documents.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from winnow.files import atomic_path, write_json
from winnow.proxy.tokenize import read_held_out as _read_held_out_file
from winnow.proxy.tokenize import source_reader, text_sha1

HOLD_OUT_EVERY = 16
WIKITEXT_PART = "wikitext-2-valid"
MANIFEST = "manifest.json"
HELD_OUT = "held_out.sha1"


def held_out(sha1: str) -> bool:
    """The selection rule: 1 document in HOLD_OUT_EVERY, by the hash of its text."""
    return int(sha1[:8], 16) % HOLD_OUT_EVERY == 0


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def wikitext_articles(path: str | os.PathLike) -> list[str]:
    """WikiText-2 articles (an article starts at a ' = Title = ' line), detokenised as the evaluator does."""
    from winnow.proxy.tasks import _wikitext_detokenize

    articles, current = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines(keepends=True):
        if re.match(r"^ = [^=].* = $", line.rstrip("\n")) and current:
            articles.append("".join(current))
            current = []
        current.append(line)
    articles.append("".join(current))
    return [_wikitext_detokenize(a).strip() for a in articles if a.strip()]


def build(
    folder: str | os.PathLike,
    sources: list[dict],
    tokenizer_path: str | os.PathLike,
    tokens_per_part: int,
    wikitext: str | os.PathLike,
) -> dict:
    """Write the shared validation set into `folder` (see the module docstring) and return its manifest.

    `sources`: [{name, data, text_key}] in config order. Deterministic: the same sources, tokenizer and budget
    write the same bytes."""
    from winnow.proxy.tokenize import EOS, ShardTokenizer

    folder = Path(folder)
    (folder / "tokens").mkdir(parents=True, exist_ok=True)
    # the tokenizer exactly as datatrove's tokenize step configures it (EOS appended after each document)
    tokenizer = ShardTokenizer(None, folder, tokenizer_path, eos_token=EOS).tokenizer
    dtype = np.dtype(np.uint16 if tokenizer.get_vocab_size() <= 65536 else np.uint32).newbyteorder("<")
    taken: set[str] = set()
    parts, documents = [], []

    def write_part(k: int, name: str, texts: list[tuple[str, str]], source: str, text_key: str | None) -> None:
        ids = [np.asarray(e.ids, dtype=dtype) for e in tokenizer.encode_batch([t for _, t in texts])]
        relative = f"tokens/{k:02d}-{name}.ds"
        with atomic_path(folder / relative) as tmp:
            (np.concatenate(ids) if ids else np.empty(0, dtype)).tofile(tmp)
        parts.append(
            {
                "name": name,
                "source": source,
                "text_key": text_key,
                "documents": len(texts),
                "tokens": int(sum(len(i) for i in ids)),
                "file": relative,
            }
        )
        documents.extend({"part": name, "sha1": sha1, "text": text} for sha1, text in texts)

    for k, source in enumerate(sources):
        texts, count = [], 0
        reader = source_reader(source["data"], text_key=source.get("text_key", "text"))
        for document in reader.run(None, rank=0, world_size=1):
            sha1 = text_sha1(document.text)
            if sha1 in taken or not held_out(sha1):
                continue
            taken.add(sha1)
            texts.append((sha1, document.text))
            count += len(tokenizer.encode(document.text).ids)
            if count >= tokens_per_part:
                break
        write_part(k, source["name"], texts, source["data"], source.get("text_key", "text"))

    texts, count = [], 0
    for article in wikitext_articles(wikitext):
        texts.append((text_sha1(article), article))
        count += len(tokenizer.encode(article).ids)
        if count >= tokens_per_part:
            break
    write_part(len(sources), WIKITEXT_PART, texts, str(wikitext), None)

    source_hashes = sorted(taken)
    with atomic_path(folder / HELD_OUT) as tmp:
        tmp.write_text("".join(h + "\n" for h in source_hashes))
    with atomic_path(folder / "documents.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents))
    manifest = {
        "parts": parts,
        "tokens_per_part": tokens_per_part,
        "selection": f"reader order, sha1(text)[:8] divisible by {HOLD_OUT_EVERY}; WikiText-2 valid articles in order",
        "tokenizer_sha256": file_sha256(tokenizer_path),
        "token_bytes": dtype.itemsize,
        "digest": hashlib.sha256("".join(source_hashes).encode()).hexdigest(),
    }
    write_json(folder / MANIFEST, manifest)  # last: its presence marks the set complete
    return manifest


def load_manifest(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def uncovered(manifest: dict, sources: list[dict]) -> list[str]:
    """Names of the `sources` whose data no part of the set was drawn from (added after it was built)."""
    recorded = {(p["source"], p["text_key"]) for p in manifest["parts"]}
    return [s["name"] for s in sources if (s["data"], s.get("text_key", "text")) not in recorded]


def read_held_out(folder: str | os.PathLike) -> frozenset[str]:
    """The sha1s of the set's held-out source documents."""
    return _read_held_out_file(Path(folder) / HELD_OUT)


def read_parts(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The set's token parts (name → memory map), in the manifest's order."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    dtype = np.dtype(np.uint16 if manifest["token_bytes"] == 2 else np.uint32).newbyteorder("<")
    return {
        p["name"]: np.memmap(folder / p["file"], dtype=dtype, mode="r") if p["tokens"] else np.empty(0, dtype)
        for p in manifest["parts"]
    }
