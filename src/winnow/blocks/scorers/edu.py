"""EduScorer: score every document's educational value with a saved classifier (FineWeb-Edu's annotation step).

Writes `metadata["score"]` (float, 0–5 scale) and `metadata["int_score"]` (rounded, clamped to 0–5) on
every document it can score, in batches. A document it cannot score — empty text, text that is not
valid Unicode, or one the model fails on — is counted under `unscorable/<reason>`, written with
`filter_reason` to the exclusion writer (the stage's `removed/unscorable/`) and not passed on, so it
never reaches a subset and never disappears silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.logging import logger


def unscorable_reason(text) -> str | None:
    """Why a text cannot be scored, or None when it can."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return "encoding_error"
    if not isinstance(text, str) or not text.strip():
        return "empty_text"
    try:
        text.encode("utf-8")  # lone surrogates (broken escapes in JSON input) cannot go through a tokenizer
    except UnicodeEncodeError:
        return "encoding_error"
    return None


def int_score(score: float) -> int:
    """FineWeb-Edu's int_score: the score clamped to 0–5, then rounded (half to even, as Python's round)."""
    return int(np.rint(np.clip(float(score), 0, 5)))


class EduScorer(PipelineStep):
    """Batches documents through a saved classifier (a `winnow classifier` folder).

    `load_classifier(folder, device, batch_size)` returns an object whose `predict(texts)` gives one float per
    text (winnow's is `winnow.classifiers.saved.load_classifier`: winnow's own format or a Hugging Face
    sequence-classification folder); it is passed in so that this block depends on nothing but datatrove and can
    score with anyone's model.
    """

    name = "EduScorer"
    type = "SCORER"

    def __init__(
        self,
        classifier_dir: str,
        load_classifier: Callable[[str, str, int], Any],
        batch_size: int | None = None,  # default: 64 on CPU, 512 on a GPU (bf16)
        device: str = "auto",  # "auto" = CUDA when torch sees one, else CPU
        threads: int | None = None,  # torch CPU threads per task (one task per core avoids oversubscription)
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__()
        self.classifier_dir = classifier_dir
        self.load_classifier = load_classifier
        self.batch_size = batch_size
        self.device = device
        self.threads = threads
        self.exclusion_writer = exclusion_writer

    def _load(self):
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        batch_size = self.batch_size or (512 if device.startswith("cuda") else 64)
        return self.load_classifier(self.classifier_dir, device, batch_size), batch_size

    def _score(self, classifier, docs: list[Document]) -> list[tuple[Document, float | None, str | None]]:
        """(doc, score, None) or (doc, None, reason); a failing batch is retried one document at a time."""
        try:
            scores = classifier.predict([d.text for d in docs])
            return [(d, float(s), None) for d, s in zip(docs, scores)]
        except Exception as batch_error:  # one bad document must not cost the whole batch
            if len(docs) == 1:
                logger.warning(f"EduScorer: cannot score document {docs[0].id}: {batch_error!r}")
                return [(docs[0], None, "model_error")]
            return [result for d in docs for result in self._score(classifier, [d])]

    def _exclude(self, doc: Document, reason: str, rank: int) -> None:
        self.stat_update("unscorable", f"unscorable/{reason}")
        doc.metadata["filter_reason"] = reason
        if isinstance(doc.text, bytes):
            doc.text = doc.text.decode("utf-8", "replace")
        doc.text = (doc.text or "").encode("utf-8", "replace").decode("utf-8")  # keep it writable
        if self.exclusion_writer is not None:
            self.exclusion_writer.write(doc, rank)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        classifier, batch_size = self._load()
        writer = self.exclusion_writer if self.exclusion_writer is not None else _NoWriter()
        with writer:
            batch: list[Document] = []
            for doc in with_end_marker(data):
                if doc is not None:
                    self.stat_update("documents")
                    reason = unscorable_reason(doc.text)
                    if reason:
                        self._exclude(doc, reason, rank)
                    else:
                        batch.append(doc)
                if batch and (doc is None or len(batch) >= batch_size):
                    with self.track_time("batch"):
                        results = self._score(classifier, batch)
                    for scored, score, reason in results:
                        if reason:
                            self._exclude(scored, reason, rank)
                            continue
                        scored.metadata["score"] = score
                        scored.metadata["int_score"] = int_score(score)
                        self.stat_update("scored", f"int_score/{scored.metadata['int_score']}")
                        yield scored
                    batch = []


def with_end_marker(data: DocumentsPipeline):
    """The documents, then one None: the signal to score the last, partial batch."""
    yield from data
    yield None


class _NoWriter:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
