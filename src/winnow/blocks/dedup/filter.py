"""Stage 4 of the dedup: drop the duplicates decided by the cluster step, annotate the survivors.

Every document gets `minhash_cluster_id` (-1 when it has no duplicate) and `minhash_cluster_size`
(1 when it has no duplicate; for a kept document, the number of documents of its cluster, for
FineWeb-2's rehydration). Removed documents also get `filter_reason` and `duplicate_of` (the id of
the document kept in their place) and go to the exclusion writer.

FineWeb v1 shipped a MinHash bug in which the stages did not read the files in the same order, so
"document 12 of task 3" was not the same document in the signature and filter steps. Here every
document's id is checked against the id the signature step recorded at that position
(`docs/<rank>.parquet`); any difference stops the task with an explanation instead of removing the
wrong documents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import ParquetWriter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.typeshelper import StatHints


class InputChangedError(RuntimeError):
    """The filter step does not read the documents the signature step read, in the same order."""


def _rows(folder, path: str, columns: list[str]) -> Iterator[tuple]:
    import pyarrow.parquet as pq

    with folder.open(path, "rb") as f:
        for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=65_536, columns=columns):
            yield from zip(*(batch.column(c).to_pylist() for c in columns))


class DuplicateFilter(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 MinHash filter (checked order)"

    def __init__(self, work_folder, exclusion_writer: DiskWriter | None = None):
        super().__init__()
        self.work_folder = work_folder
        self.exclusion_writer = exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        folder = get_datafolder(self.work_folder)
        docs_path, clusters_path = f"docs/{rank:05d}.parquet", f"clusters/{rank:05d}.parquet"
        for path in (docs_path, clusters_path):
            if not folder.exists(path):
                raise FileNotFoundError(f"{folder.path}/{path} is missing: the earlier dedup steps did not finish")
        recorded_ids = _rows(folder, docs_path, ["id"])
        decisions = _rows(folder, clusters_path, ["index", "reason", "kept_id", "cluster_id", "cluster_size"])
        decision = next(decisions, None)
        writer = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer as exclusions:
            for index, doc in enumerate(data):
                with self.track_time():
                    recorded = next(recorded_ids, None)
                    if recorded is None or recorded[0] != str(doc.id):
                        raise InputChangedError(
                            f"task {rank}: document {index} is {doc.id!r} but the signature step read "
                            f"{recorded[0] if recorded else 'no document'!r} there. The input or the number of "
                            "tasks changed since the signatures were computed; delete the dedup folder and run again."
                        )
                    self.stat_update(StatHints.total)
                    if decision is not None and decision[0] == index:
                        _, reason, kept_id, cluster_id, cluster_size = decision
                        decision = next(decisions, None)
                    else:
                        reason, kept_id, cluster_id, cluster_size = None, None, -1, 1
                    doc.metadata["minhash_cluster_id"] = cluster_id
                    doc.metadata["minhash_cluster_size"] = cluster_size
                    if reason is not None:
                        doc.metadata["filter_reason"] = reason
                        doc.metadata["duplicate_of"] = kept_id
                        self.stat_update(StatHints.dropped, reason)
                        if exclusions is not None:
                            exclusions.write(doc, rank)
                        continue
                    self.stat_update(StatHints.forwarded)
                yield doc
        if next(recorded_ids, None) is not None:
            raise InputChangedError(
                f"task {rank}: read fewer documents than the signature step did; the input changed since. "
                "Delete the dedup folder and run again."
            )


# The base stage's FineWeb columns, then the dedup's own (removed documents also say why and in favour of what).
FINEWEB_FIELDS = [
    ("text", "string"),
    ("id", "string"),
    ("dump", "string"),
    ("url", "string"),
    ("date", "string"),
    ("file_path", "string"),
    ("language", "string"),
    ("language_score", "float64"),
    ("token_count", "int64"),
]
DEDUP_FIELDS = [("minhash_cluster_id", "int64"), ("minhash_cluster_size", "int64")]
REMOVED_FIELDS = [("filter_reason", "string"), ("duplicate_of", "string")]


def dedup_schema(base_folder: str | None = None, removed: bool = False):
    """The base stage's columns (read from its first Parquet file, else FineWeb's), then the dedup's own."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ours = DEDUP_FIELDS + (REMOVED_FIELDS if removed else [])
    names = {name for name, _ in ours}
    base_files = sorted(get_datafolder(base_folder).list_files(glob_pattern="*.parquet")) if base_folder else []
    if base_files:
        with get_datafolder(base_folder).open(base_files[0], "rb") as f:
            fields = [field for field in pq.read_schema(f) if field.name not in names]
    else:
        fields = [pa.field(name, pa.type_for_alias(kind)) for name, kind in FINEWEB_FIELDS]
    return pa.schema(fields + [pa.field(name, pa.type_for_alias(kind)) for name, kind in ours])


def flat_row(self, document) -> dict:
    """datatrove writer adapter: text, id and every metadata field as top-level columns (the schema picks)."""
    return {**document.metadata, "text": document.text, "id": None if document.id is None else str(document.id)}


class DedupParquetWriter(ParquetWriter):
    """Kept documents as `${rank}.parquet`, or removed ones as `<filter_reason>/${rank}.parquet`, with every
    column of the base stage's files (whatever they are) plus the dedup's columns."""

    name = "📒 Parquet (base columns + dedup)"

    def __init__(self, output_folder, base_folder: str, removed: bool = False):
        filename = "${filter_reason}/${rank}.parquet" if removed else "${rank}.parquet"
        super().__init__(
            output_folder, output_filename=filename, compression="zstd", adapter=flat_row, max_file_size=-1
        )
        self.base_folder = base_folder
        self.removed = removed

    def _write(self, document: dict, file_handler, filename: str):
        if self.schema is None:  # read when the task runs: on Slurm the base files may not exist at submission
            self.schema = dedup_schema(self.base_folder, self.removed)
        super()._write(document, file_handler, filename)
