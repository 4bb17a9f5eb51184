"""What both dedup engines share: document nodes, the survivor rule, clusters and the decisions file.

A document is a node `(rank << 32) | index` (the task that read it, its position in that task's input).
In each cluster the survivor is the document with the smallest (dump, id) — the earliest crawl, then the
smallest id; documents without a dump come last; then the smallest exact key (content hash), and for
documents equal in all three the smallest node — so who survives never depends on the number of tasks.

Everything after the pairs is held in numpy arrays, one entry per duplicated document (a few bytes each,
not Python tuples and dict entries): `components` joins the pairs into clusters (scipy's connected
components), `decide` sorts the documents by the survivor rule (`np.lexsort` on integer codes of dump and
id: `DumpCodes`, `id_ranks`) and decides every one of them, the engine adds the survivors' ids, and
`write_decisions` writes `clusters/<rank>.parquet` (one row per removed or clustered document, in chunks),
which `filter.DuplicateFilter` reads whichever engine (`clusters.DuplicateClusters` or
`datasketch.DatasketchDedup`) found the duplicates. `UnionFind` is the in-memory engine's, built one pair at
a time while it reads; `resolve_clusters` hands it to the same `decide`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from datatrove.io import get_datafolder

EXACT_DUPLICATE = "exact_duplicate"
MINHASH_DUPLICATE = "minhash_duplicate"
REASONS = (None, EXACT_DUPLICATE, MINHASH_DUPLICATE)  # `Decisions.reason` codes 0 (survivor), 1, 2
INDEX_BITS = 32
INDEX_MASK = (1 << INDEX_BITS) - 1


def node_of(rank: int, index: int) -> int:
    return (rank << INDEX_BITS) | index


class UnionFind:
    """Disjoint sets over the nodes that appear in at least one duplicate pair (the in-memory engine's, built
    one pair at a time while it reads the documents)."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while (up := parent.get(root, root)) != root:
            root = up
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        self.parent.setdefault(a, a)
        self.parent.setdefault(b, b)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def survivor_order(dump: str | None, doc_id: str, exact_key: int) -> tuple:
    """Sort key of a document inside its cluster: earliest dump, then id (then content, for equal ids)."""
    return (dump is None, dump or "", doc_id, exact_key)


def components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of the pairs (a[i], b[i]) (int64 nodes): the sorted distinct nodes, and a label 0..k-1 for each."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes = np.concatenate([a, b])
    nodes.sort()  # in place: np.unique would sort a copy
    distinct = np.ones(len(nodes), bool)
    distinct[1:] = nodes[1:] != nodes[:-1]
    nodes = nodes[distinct]
    index_dtype = np.int32 if len(nodes) < 2**31 else np.int64
    rows = np.searchsorted(nodes, a).astype(index_dtype)
    cols = np.searchsorted(nodes, b).astype(index_dtype)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(nodes), len(nodes)))
    del rows, cols
    _, labels = connected_components(graph, directed=False)
    return nodes, labels


class DumpCodes:
    """Dump names → integer codes that sort as the survivor rule does (names in code-point order, no dump last),
    built batch by batch, so that each distinct name is held once, not once per document."""

    def __init__(self):
        self.names: dict[str | None, int] = {}

    def encode(self, dumps) -> np.ndarray:
        """Provisional codes of a pyarrow string array (turn them into survivor-order codes with `in_order`)."""
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(dumps)
        lookup = [self.names.setdefault(name, len(self.names)) for name in encoded.dictionary.to_pylist() + [None]]
        indices = encoded.indices.fill_null(len(lookup) - 1).to_numpy(zero_copy_only=False)
        return np.asarray(lookup, dtype=np.int32)[indices]

    def in_order(self, codes: np.ndarray) -> np.ndarray:
        """Provisional codes → codes in survivor order (in place)."""
        ordered = sorted(self.names, key=lambda name: (name is None, name or ""))
        remap = np.empty(len(self.names), dtype=np.int32)
        remap[[self.names[name] for name in ordered]] = np.arange(len(ordered), dtype=np.int32)
        codes[:] = remap[codes]
        return codes


def id_ranks(ids) -> np.ndarray:
    """Dense rank of every id (pyarrow string array, chunked or not) in code-point order (UTF-8 byte order)."""
    import pyarrow.compute as pc

    return pc.rank(ids, sort_keys="ascending", tiebreaker="dense").to_numpy()


@dataclass
class Decisions:
    """The decision for every duplicated document (`nodes`, sorted) and the facts of every cluster (by cluster id)."""

    nodes: np.ndarray  # int64 (rank << 32) | index, sorted
    cluster: np.ndarray  # per node: cluster id; clusters are numbered in survivor order
    reason: np.ndarray  # per node: int8 code into REASONS (0 survivor, 1 exact_duplicate, 2 minhash_duplicate)
    cluster_size: np.ndarray  # per cluster
    survivor: np.ndarray  # per cluster: the survivor's entry in `nodes`
    survivor_ids: object = None  # per cluster: the survivor's id (pyarrow string array), filled by the engine

    def counts(self) -> dict[str, int]:
        """Survivors ("clusters") and removed documents per reason, as the step's stats count them."""
        per_code = np.bincount(self.reason, minlength=len(REASONS))
        return {reason or "clusters": int(n) for reason, n in zip(REASONS, per_code) if n}


def decide(
    nodes: np.ndarray,
    labels: np.ndarray,
    dump_codes: np.ndarray,
    id_ranks: np.ndarray,
    exact_keys: np.ndarray,
    exact: bool,
) -> Decisions:
    """Survivor, reason, cluster id and size of every node, by the rule in the module docstring.

    Per node (`nodes` sorted int64): `labels` 0..k-1 from `components`, `dump_codes` from `DumpCodes.in_order`,
    `id_ranks` from `id_ranks`, `exact_keys` uint64. A removed document is an `exact_duplicate` (when `exact`) if a
    document of its cluster with the same exact key precedes it in survivor order, else a `minhash_duplicate`.
    The survivors' ids are left to the caller (`Decisions.survivor_ids`), who can read them for the survivors only.
    """
    n = len(nodes)
    in_order = np.lexsort((nodes, exact_keys, id_ranks, dump_codes))  # the last key sorts first
    position = np.empty(n, np.int64)  # of each node in survivor order
    position[in_order] = np.arange(n)
    del in_order
    sizes = np.bincount(labels)
    grouped = np.lexsort((position, labels))  # the nodes cluster by cluster, each cluster in survivor order
    survivor = grouped[np.cumsum(sizes) - sizes]  # per label
    del grouped
    by_survivor = np.argsort(position[survivor])  # the labels in survivor order: cluster id → label
    cluster_of_label = np.empty(len(sizes), np.int64)
    cluster_of_label[by_survivor] = np.arange(len(sizes))
    reason = np.full(n, 2, np.int8)
    reason[survivor] = 0
    if exact:
        by_text = np.lexsort((position, exact_keys, labels))  # per cluster, per exact key, in survivor order
        label_run, key_run = labels[by_text], exact_keys[by_text]
        repeated = np.zeros(n, bool)
        repeated[by_text[1:]] = (label_run[1:] == label_run[:-1]) & (key_run[1:] == key_run[:-1])
        reason[repeated] = 1  # never a survivor: the survivor comes first among its cluster's equal texts
    return Decisions(
        nodes=nodes,
        cluster=cluster_of_label[labels],
        reason=reason,
        cluster_size=sizes[by_survivor],
        survivor=survivor[by_survivor],
    )


def resolve_clusters(union_find: UnionFind, keys: dict[int, tuple], exact: bool) -> Decisions:
    """`decide` for the in-memory engine: its union-find and `keys[node]` = survivor_order(...) of each node."""
    import pyarrow as pa

    nodes = np.fromiter(union_find.parent, dtype=np.int64, count=len(union_find.parent))
    parents = np.fromiter(union_find.parent.values(), dtype=np.int64, count=len(nodes))
    cluster_nodes, labels = components(nodes, parents)  # every node is joined to its parent
    row = [keys[node] for node in cluster_nodes.tolist()]
    dumps = DumpCodes()
    dump_codes = dumps.in_order(
        dumps.encode(pa.array([None if no_dump else d for no_dump, d, _, _ in row], pa.string()))
    )
    ids = pa.array([doc_id for _, _, doc_id, _ in row], pa.string())
    exact_keys = np.array([key for *_, key in row], dtype=np.uint64)
    decisions = decide(cluster_nodes, labels, dump_codes, id_ranks(ids), exact_keys, exact)
    decisions.survivor_ids = ids.take(decisions.survivor)
    return decisions


DECISION_COLUMNS = ("index", "reason", "kept_id", "cluster_id", "cluster_size")


def write_decisions(folder, ranks: Iterable[int], decisions: Decisions, rows_per_write: int = 1 << 20) -> None:
    """One `clusters/<rank>.parquet` per rank, rows sorted by index (empty when the rank has no duplicated
    document), written `rows_per_write` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("index", pa.uint32()),
            ("reason", pa.string()),
            ("kept_id", pa.string()),
            ("cluster_id", pa.int64()),
            ("cluster_size", pa.int64()),
        ]
    )
    reasons = pa.array(REASONS, pa.string())
    node_ranks = decisions.nodes >> INDEX_BITS
    folder = get_datafolder(folder)
    for rank in ranks:
        lo, hi = np.searchsorted(node_ranks, [rank, rank + 1])
        with folder.open(f"clusters/{rank:05d}.parquet", "wb") as f, pq.ParquetWriter(f, schema) as writer:
            if hi == lo:
                writer.write_table(schema.empty_table())
            for start in range(lo, hi, rows_per_write):
                part = slice(start, min(start + rows_per_write, hi))
                cluster = decisions.cluster[part]
                columns = [
                    (decisions.nodes[part] & INDEX_MASK).astype(np.uint32),
                    reasons.take(decisions.reason[part]),
                    decisions.survivor_ids.take(cluster).cast(pa.string()),
                    cluster,
                    decisions.cluster_size[cluster],
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
