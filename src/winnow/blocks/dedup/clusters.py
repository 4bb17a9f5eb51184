"""Duplicate pairs → clusters → one survivor per cluster, chosen the same way whatever the number of tasks.

A document is a node `(rank << 32) | index` (the task that read it, its position in that task's input).
Nodes only tell where a document is; who survives depends on the documents themselves: in each
cluster the survivor is the document with the smallest (dump, id) — the earliest crawl, then the
smallest id; documents without a dump come last. Removed documents get the reason
`exact_duplicate` when a document with the same normalised text precedes them in that order, else
`minhash_duplicate`, and the id of the survivor. Cluster ids number the clusters in survivor order,
so they too do not depend on the number of tasks.

`DuplicateClusters` is stage 3 of the sharded dedup (one task): it reads the pairs written by
datatrove's `MinhashDedupBuckets` into two int64 arrays, joins them into clusters (scipy's connected
components), reads the dump, id and exact key of the duplicated documents only (the ids just long
enough to rank them), decides (`base.decide`), reads the survivors' ids again and writes
`clusters/<rank>.parquet` for the filter. Memory grows with the duplicates, not with the corpus: about
0.1 KB per duplicated document, its pairs included, over a fixed ~0.15 GB (measured by
benchmarks/bench_clusters.py; figures in docs/sections/dedup.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from winnow.blocks.dedup.base import (
    INDEX_BITS,
    INDEX_MASK,
    DumpCodes,
    components,
    decide,
    id_ranks,
    write_decisions,
)

PAIR_BYTES = 16  # datatrove's record: rank and index of one document, rank and index of the other (4 x uint32)


def doc_rows(work_folder, rank: int, wanted: np.ndarray, columns: list[str]) -> Iterator:
    """(position in `wanted`, record batch of `columns`) for the documents at indices `wanted` (sorted) of one
    rank's docs index, a Parquet batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = 0
    with get_datafolder(work_folder).open(f"docs/{rank:05d}.parquet", "rb") as f:
        for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=65_536, columns=columns):
            lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
            if hi > lo:
                yield int(lo), batch.take(pa.array(wanted[lo:hi] - start))
            start += batch.num_rows
    if len(wanted) and wanted[-1] >= start:
        raise ValueError(f"docs/{rank:05d}.parquet has {start} documents but a pair names document {wanted[-1]}")


def rank_ranges(nodes: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(rank, first, end) of each rank's run of entries in the sorted `nodes`."""
    node_ranks = nodes >> INDEX_BITS
    for rank in np.unique(node_ranks).tolist():
        lo, hi = np.searchsorted(node_ranks, [rank, rank + 1])
        yield rank, int(lo), int(hi)


def work_ranks(work_folder) -> list[int]:
    return sorted(int(Path(p).stem) for p in get_datafolder(work_folder).list_files("docs", glob_pattern="*.parquet"))


class DuplicateClusters(PipelineStep):
    """Stage 3 (one task): cluster the pairs of `pair_folders` (*.dups) and write the decisions."""

    type = "🫂 - DEDUP"
    name = "🎯 MinHash clusters (deterministic survivor)"

    def __init__(self, work_folder, pair_folders: list[str], exact: bool = True, records_per_read: int = 1 << 18):
        super().__init__()
        self.work_folder = work_folder
        self.pair_folders = pair_folders
        self.exact = exact
        self.records_per_read = records_per_read

    def read_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Both sides of every pair as int64 nodes (16 bytes per pair, filled in place)."""
        files = []
        for sub in self.pair_folders:
            folder = get_datafolder(str(Path(self.work_folder) / sub))
            files += [(folder, name, folder.size(name)) for name in folder.list_files(glob_pattern="*.dups")]
        for folder, name, size in files:
            if size % PAIR_BYTES:
                raise ValueError(f"{folder.path}/{name}: {size} bytes is not a whole number of {PAIR_BYTES}-byte pairs")
        total = sum(size for *_, size in files) // PAIR_BYTES
        a, b = np.empty(total, np.int64), np.empty(total, np.int64)
        filled = 0
        for folder, name, _ in files:
            with folder.open(name, "rb") as f:
                while chunk := f.read(PAIR_BYTES * self.records_per_read):
                    pairs = np.frombuffer(chunk, dtype="<u4").reshape(-1, 4).astype(np.int64)
                    part = slice(filled, filled + len(pairs))
                    a[part] = (pairs[:, 0] << INDEX_BITS) | pairs[:, 1]
                    b[part] = (pairs[:, 2] << INDEX_BITS) | pairs[:, 3]
                    filled += len(pairs)
                    self.stat_update("pairs", value=len(pairs))
        return a[:filled], b[:filled]

    def read_keys(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Survivor-order codes of the dump and of the id, and the exact key, of the sorted `nodes` (read from the
        docs index of their ranks; the ids are held only until they are ranked)."""
        import pyarrow as pa

        dumps, ids = DumpCodes(), []
        dump_codes, exact_keys = np.empty(len(nodes), np.int32), np.empty(len(nodes), np.uint64)
        for rank, lo, hi in rank_ranges(nodes):
            for at, rows in doc_rows(self.work_folder, rank, nodes[lo:hi] & INDEX_MASK, ["id", "dump", "exact_key"]):
                part = slice(lo + at, lo + at + rows.num_rows)
                dump_codes[part] = dumps.encode(rows.column("dump"))
                exact_keys[part] = rows.column("exact_key").to_numpy()
                ids.append(rows.column("id"))
        ranks = id_ranks(pa.chunked_array(ids, pa.string())) if ids else np.empty(0, np.uint64)
        del ids
        pa.default_memory_pool().release_unused()  # hand the ids' memory back before the sorts need theirs
        return dumps.in_order(dump_codes), ranks, exact_keys

    def read_survivor_ids(self, nodes: np.ndarray, survivor: np.ndarray):
        """The ids of the documents `nodes[survivor]`, in the order of `survivor`, read again for them only."""
        import pyarrow as pa

        order = np.argsort(survivor)
        survivors = nodes[survivor[order]]
        ids = []
        for rank, lo, hi in rank_ranges(survivors):
            for _, rows in doc_rows(self.work_folder, rank, survivors[lo:hi] & INDEX_MASK, ["id"]):
                ids.append(rows.column("id").cast(pa.large_string()))  # may pass 2 GB in all
        in_node_order = pa.concat_arrays(ids) if ids else pa.array([], pa.large_string())
        back = np.empty(len(order), np.int64)
        back[order] = np.arange(len(order))
        return in_node_order.take(back)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("the cluster step runs as one task")
        with self.track_time():
            a, b = self.read_pairs()
            nodes, labels = components(a, b)
            del a, b
            decisions = decide(nodes, labels, *self.read_keys(nodes), exact=self.exact)
            del labels
            decisions.survivor_ids = self.read_survivor_ids(nodes, decisions.survivor)
            write_decisions(self.work_folder, work_ranks(self.work_folder), decisions)
            for name, count in decisions.counts().items():
                self.stat_update(name, value=count)
            if len(nodes):
                self.stat_update("documents_in_clusters", value=len(nodes))
        return iter(())
