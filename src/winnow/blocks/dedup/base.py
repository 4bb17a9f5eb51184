"""What both dedup engines share: document nodes, the survivor rule, union-find clusters and the decisions file.

A document is a node `(rank << 32) | index` (the task that read it, its position in that task's input).
In each cluster the survivor is the document with the smallest (dump, id) — the earliest crawl, then the
smallest id; documents without a dump come last — so who survives never depends on the number of tasks.
`write_decisions` writes `clusters/<rank>.parquet` (one row per removed or clustered document), which
`filter.DuplicateFilter` reads whichever engine (`clusters.DuplicateClusters` or
`datasketch.DatasketchDedup`) found the duplicates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from datatrove.io import get_datafolder

EXACT_DUPLICATE = "exact_duplicate"
MINHASH_DUPLICATE = "minhash_duplicate"
INDEX_BITS = 32


def node_of(rank: int, index: int) -> int:
    return (rank << INDEX_BITS) | index


class UnionFind:
    """Disjoint sets over the nodes that appear in at least one duplicate pair."""

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

    def components(self) -> Iterable[list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for node in self.parent:
            groups[self.find(node)].append(node)
        return groups.values()


def survivor_order(dump: str | None, doc_id: str, exact_key: int) -> tuple:
    """Sort key of a document inside its cluster: earliest dump, then id (then content, for equal ids)."""
    return (dump is None, dump or "", doc_id, exact_key)


def resolve_clusters(union_find: UnionFind, keys: dict[int, tuple], exact: bool) -> dict[int, list[tuple]]:
    """Decide every duplicated document. `keys[node]` = survivor_order(...) of that node.

    Returns rank → rows (index, reason or None for the survivor, survivor id, cluster id, cluster size),
    sorted by index.
    """
    clusters = [sorted(members, key=keys.__getitem__) for members in union_find.components()]
    clusters.sort(key=lambda members: keys[members[0]])
    decisions: dict[int, list[tuple]] = defaultdict(list)
    for cluster_id, members in enumerate(clusters):
        survivor_id = keys[members[0]][2]
        seen_texts: set[int] = set()
        for position, node in enumerate(members):
            text_key = keys[node][3]
            if position == 0:
                reason = None
            elif exact and text_key in seen_texts:
                reason = EXACT_DUPLICATE
            else:
                reason = MINHASH_DUPLICATE
            seen_texts.add(text_key)
            decisions[node >> INDEX_BITS].append(
                (node & ((1 << INDEX_BITS) - 1), reason, survivor_id, cluster_id, len(members))
            )
    for rows in decisions.values():
        rows.sort()
    return decisions


DECISION_COLUMNS = ("index", "reason", "kept_id", "cluster_id", "cluster_size")


def write_decisions(folder, ranks: Iterable[int], decisions: dict[int, list[tuple]]) -> None:
    """One `clusters/<rank>.parquet` per rank (empty when the rank has no duplicated document)."""
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
    folder = get_datafolder(folder)
    for rank in ranks:
        rows = decisions.get(rank, [])
        table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(DECISION_COLUMNS)}, schema=schema)
        with folder.open(f"clusters/{rank:05d}.parquet", "wb") as f:
            pq.write_table(table, f)
