"""Duplicate pairs → clusters → one survivor per cluster, chosen the same way whatever the number of tasks.

A document is a node `(rank << 32) | index` (the task that read it, its position in that task's input).
Nodes only tell where a document is; who survives depends on the documents themselves: in each
cluster the survivor is the document with the smallest (dump, id) — the earliest crawl, then the
smallest id; documents without a dump come last. Removed documents get the reason
`exact_duplicate` when a document with the same normalised text precedes them in that order, else
`minhash_duplicate`, and the id of the survivor. Cluster ids number the clusters in survivor order,
so they too do not depend on the number of tasks.

`DuplicateClusters` is stage 3 of the sharded dedup (one task): it reads the pairs written by
datatrove's `MinhashDedupBuckets`, keeps a union-find over the duplicated documents only (memory
grows with the duplicates, not with the corpus) and writes `clusters/<rank>.parquet` for the filter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from winnow.blocks.dedup.base import INDEX_BITS, UnionFind, node_of, resolve_clusters, survivor_order, write_decisions


def read_doc_keys(work_folder, rank: int, wanted: np.ndarray) -> dict[int, tuple]:
    """survivor_order keys of the documents at indices `wanted` (sorted) of one rank's docs index."""
    import pyarrow.parquet as pq

    keys: dict[int, tuple] = {}
    start = 0
    with get_datafolder(work_folder).open(f"docs/{rank:05d}.parquet", "rb") as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536):
            lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
            if hi > lo:
                ids, dumps, exact_keys = (batch.column(c).to_pylist() for c in ("id", "dump", "exact_key"))
                for index in wanted[lo:hi].tolist():
                    i = index - start
                    keys[node_of(rank, index)] = survivor_order(dumps[i], ids[i], exact_keys[i])
            start += batch.num_rows
    if len(wanted) and wanted[-1] >= start:
        raise ValueError(f"docs/{rank:05d}.parquet has {start} documents but a pair names document {wanted[-1]}")
    return keys


def work_ranks(work_folder) -> list[int]:
    return sorted(int(Path(p).stem) for p in get_datafolder(work_folder).list_files("docs", glob_pattern="*.parquet"))


class DuplicateClusters(PipelineStep):
    """Stage 3 (one task): union the pairs of `pair_folders` (*.dups) and write the decisions."""

    type = "🫂 - DEDUP"
    name = "🎯 MinHash clusters (deterministic survivor)"

    def __init__(self, work_folder, pair_folders: list[str], exact: bool = True, records_per_read: int = 1 << 20):
        super().__init__()
        self.work_folder = work_folder
        self.pair_folders = pair_folders
        self.exact = exact
        self.records_per_read = records_per_read

    def _pairs(self) -> Iterable[np.ndarray]:
        for sub in self.pair_folders:
            folder = get_datafolder(str(Path(self.work_folder) / sub))
            for name in folder.list_files(glob_pattern="*.dups"):
                with folder.open(name, "rb") as f:
                    while chunk := f.read(16 * self.records_per_read):
                        yield np.frombuffer(chunk, dtype="<u4").reshape(-1, 4).astype(np.int64)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("the cluster step runs as one task")
        union_find = UnionFind()
        with self.track_time():
            for pairs in self._pairs():
                a = (pairs[:, 0] << INDEX_BITS) | pairs[:, 1]
                b = (pairs[:, 2] << INDEX_BITS) | pairs[:, 3]
                for x, y in zip(a.tolist(), b.tolist()):
                    union_find.union(x, y)
                self.stat_update("pairs", value=len(pairs))
            by_rank: dict[int, list[int]] = defaultdict(list)
            for node in union_find.parent:
                by_rank[node >> INDEX_BITS].append(node & ((1 << INDEX_BITS) - 1))
            keys: dict[int, tuple] = {}
            for r, indices in by_rank.items():
                keys.update(read_doc_keys(self.work_folder, r, np.array(sorted(indices), dtype=np.int64)))
            decisions = resolve_clusters(union_find, keys, self.exact)
            write_decisions(self.work_folder, work_ranks(self.work_folder), decisions)
            for rows in decisions.values():
                for _, reason, _, _, size in rows:
                    self.stat_update(reason or "clusters")
                    if reason is None:
                        self.stat_update("documents_in_clusters", value=size)
        return iter(())
