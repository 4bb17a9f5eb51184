"""EduSubsetWriter: write scored documents into FineWeb-Edu style threshold subsets, without re-scoring.

Every document goes to `all/`, and to `edu-<t>/` for each threshold t with `int_score >= t`
(FineWeb-Edu is `int_score >= 3`; its larger "score-2" variant is `>= 2`). Counters: documents and
tokens (`token_count` column) per subset. A document without an `int_score` (not produced by
`winnow score`) is written to the exclusion writer with `filter_reason: no_score`.
"""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter


class EduSubsetWriter(PipelineStep):
    name = "EduSubsetWriter"
    type = "WRITER"

    def __init__(
        self, writers: dict[str, DiskWriter], thresholds: list[int], exclusion_writer: DiskWriter | None = None
    ):
        """`writers` maps "all" and "edu-<t>" (for each threshold t) to a writer."""
        super().__init__()
        missing = [name for name in ["all"] + [f"edu-{t}" for t in thresholds] if name not in writers]
        if missing:
            raise ValueError(f"EduSubsetWriter: no writer for {missing}")
        self.writers = writers
        self.thresholds = sorted(thresholds)
        self.exclusion_writer = exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from contextlib import ExitStack

        with ExitStack() as stack:
            for writer in list(self.writers.values()) + [self.exclusion_writer]:
                if writer is not None:
                    stack.enter_context(writer)
            for doc in data:
                self.stat_update("documents")
                int_score = doc.metadata.get("int_score")
                if int_score is None:
                    self.stat_update("no_score")
                    doc.metadata["filter_reason"] = "no_score"
                    if self.exclusion_writer is not None:
                        self.exclusion_writer.write(doc, rank)
                    continue
                tokens = int(doc.metadata.get("token_count") or 0)
                for name in ["all"] + [f"edu-{t}" for t in self.thresholds if int_score >= t]:
                    self.writers[name].write(doc, rank)
                    self.stat_update(name)
                    self.stat_update(f"tokens/{name}", value=tokens)
                yield doc
