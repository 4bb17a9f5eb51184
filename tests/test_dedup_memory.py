"""The cluster step on arrays: the same decisions as the dict-based engine it replaced, in bounded memory.

`reference_decisions` below is the previous implementation (a Python union-find and one tuple per duplicated
document, kept here only as the reference). A generated work folder — docs indexes of 4 tasks and pair files
with a planted duplicate structure (chains, stars, pairs repeated across buckets, exact copies, ids shared by
different texts, dumps missing or empty, non-ASCII ids) — goes through both, and every decision must match.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.blocks.dedup.base import (
    EXACT_DUPLICATE,
    MINHASH_DUPLICATE,
    UnionFind,
    components,
    decide,
    node_of,
    resolve_clusters,
    survivor_order,
    write_decisions,
)
from winnow.blocks.dedup.clusters import DuplicateClusters

INDEX_BITS = 32
DUMPS = ["CC-MAIN-2024-10", "CC-MAIN-2023-50", "CC-MAIN-2013-20", "", None]


# ---- the previous engine, as the reference ----------------------------------------------------------------------
def reference_decisions(work: Path, pair_folders: list[str], exact: bool) -> dict[int, list[tuple]]:
    """rank → rows (index, reason, kept id, cluster id, cluster size), as the dict-based engine decided them."""
    union_find = UnionFind()
    for sub in pair_folders:
        for path in sorted((work / sub).glob("*.dups")):
            pairs = np.fromfile(path, dtype="<u4").reshape(-1, 4).astype(np.int64)
            a = (pairs[:, 0] << INDEX_BITS) | pairs[:, 1]
            b = (pairs[:, 2] << INDEX_BITS) | pairs[:, 3]
            for x, y in zip(a.tolist(), b.tolist()):
                union_find.union(x, y)
    keys = {}
    for rank_file in sorted((work / "docs").glob("*.parquet")):
        rank = int(rank_file.stem)
        for index, row in enumerate(pq.read_table(rank_file).to_pylist()):
            if node_of(rank, index) in union_find.parent:
                keys[node_of(rank, index)] = survivor_order(row["dump"], row["id"], row["exact_key"])
    groups = defaultdict(list)
    for node in union_find.parent:
        groups[union_find.find(node)].append(node)
    clusters = [sorted(members, key=keys.__getitem__) for members in groups.values()]
    clusters.sort(key=lambda members: keys[members[0]])
    decisions = defaultdict(list)
    for cluster_id, members in enumerate(clusters):
        seen_texts = set()
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
                (node & ((1 << INDEX_BITS) - 1), reason, keys[members[0]][2], cluster_id, len(members))
            )
    return {rank: sorted(rows) for rank, rows in decisions.items()}


# ---- a generated work folder ----------------------------------------------------------------------------------
def planted_work(folder: Path, docs_per_rank: int, ranks: int = 4, seed: int = 0) -> Path:
    """docs/<rank>.parquet and pairs/ + exact_pairs/ *.dups: clusters of 2 to ~300 documents, heavy-tailed."""
    rng = np.random.default_rng(seed)
    n = docs_per_rank * ranks
    ids = [f"<urn:uuid:{x:012x}>" for x in rng.integers(0, 1 << 48, n)]
    for i in rng.choice(n, n // 50, replace=False):  # some non-ASCII ids, some ids shared with another document
        ids[i] = rng.choice(["é", "Ω", "z", "ß", "日本"]) + ids[i] if i % 2 else ids[(i + 7) % n]
    dumps = [DUMPS[i] for i in rng.choice(len(DUMPS), n, p=[0.4, 0.3, 0.2, 0.05, 0.05])]
    text = rng.integers(0, 1 << 60, n, dtype=np.uint64)
    nodes = np.array([node_of(r, i) for r in range(ranks) for i in range(docs_per_rank)], dtype=np.int64)
    order = rng.permutation(n)
    a, b, exact_a, exact_b = [], [], [], []
    start = 0
    while start < n * 0.7:  # 70 % of the documents have a duplicate
        size = min(int(rng.zipf(1.6)) + 1, 300)
        members = order[start : start + size]
        start += size
        if len(members) < 2:
            break
        copies = members[rng.random(len(members)) < 0.4]
        text[copies] = text[members[0]]  # exact copies of the cluster's first document
        exact_a += [members[0]] * (len(copies))
        exact_b += list(copies)
        shape = rng.integers(3)
        if shape == 0:  # chain, as datatrove's bucket step writes consecutive equal signatures
            pa_, pb_ = members[:-1], members[1:]
        elif shape == 1:  # star
            pa_, pb_ = np.full(len(members) - 1, members[0]), members[1:]
        else:  # random spanning tree plus extra edges
            pa_ = [members[rng.integers(k)] for k in range(1, len(members))] + list(rng.choice(members, 3))
            pb_ = list(members[1:]) + list(rng.choice(members, 3))
        for _ in range(int(rng.integers(1, 4))):  # the same pair found in several buckets
            a += list(pa_)
            b += list(pb_)
    seen = set()
    for i, key in enumerate(zip(dumps, ids, text.tolist())):  # no two documents equal in dump, id and text
        if key in seen:
            text[i] += np.uint64(1)
        seen.add((key[0], key[1], int(text[i])))
    (folder / "docs").mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("dump", pa.string()), ("exact_key", pa.uint64())])
    for r in range(ranks):
        part = slice(r * docs_per_rank, (r + 1) * docs_per_rank)
        table = pa.table({"id": ids[part], "dump": dumps[part], "exact_key": text[part]}, schema=schema)
        pq.write_table(table, folder / "docs" / f"{r:05d}.parquet", row_group_size=5000)
    write_pairs(folder / "pairs", nodes[np.array(a)], nodes[np.array(b)], files=3)
    write_pairs(folder / "exact_pairs", nodes[np.array(exact_a, dtype=int)], nodes[np.array(exact_b, dtype=int)], 1)
    return folder


def write_pairs(folder: Path, a: np.ndarray, b: np.ndarray, files: int) -> None:
    folder.mkdir(parents=True)
    records = np.stack([a >> INDEX_BITS, a & 0xFFFFFFFF, b >> INDEX_BITS, b & 0xFFFFFFFF], axis=1).astype("<u4")
    for k, part in enumerate(np.array_split(records, files)):
        part.tofile(folder / f"{k:05d}_00.dups")


def written_decisions(work: Path) -> dict[int, list[tuple]]:
    out = {}
    for path in sorted((work / "clusters").glob("*.parquet")):
        rows = pq.read_table(path).to_pylist()
        if rows:
            out[int(path.stem)] = [tuple(row.values()) for row in rows]
    return out


@pytest.mark.parametrize("exact", [True, False])
def test_array_engine_decides_exactly_as_the_dict_engine(tmp_path, exact):
    work = planted_work(tmp_path / "work", docs_per_rank=5_000)
    step = DuplicateClusters(str(work), ["pairs", "exact_pairs"], exact=exact, records_per_read=4096)
    step.run()
    new, old = written_decisions(work), reference_decisions(work, ["pairs", "exact_pairs"], exact)
    assert new == old
    rows = [row for rank_rows in new.values() for row in rank_rows]
    reasons = {reason for _, reason, *_ in rows}
    assert reasons == ({None, EXACT_DUPLICATE, MINHASH_DUPLICATE} if exact else {None, MINHASH_DUPLICATE})
    assert len(rows) > 10_000 and max(size for *_, size in rows) >= 100  # large clusters, not only pairs
    assert step.stats["clusters"].total == sum(reason is None for _, reason, *_ in rows)


def test_in_memory_engine_adapter_decides_as_the_dict_engine(tmp_path):
    """datasketch's engine builds a UnionFind while it reads; `resolve_clusters` turns it into the same arrays."""
    work = planted_work(tmp_path / "work", docs_per_rank=1_000, ranks=2, seed=3)
    union_find = UnionFind()
    for sub in ("pairs", "exact_pairs"):
        for path in sorted((work / sub).glob("*.dups")):
            for r1, i1, r2, i2 in np.fromfile(path, dtype="<u4").reshape(-1, 4).tolist():
                union_find.union(node_of(r1, i1), node_of(r2, i2))
    keys = {}
    for r in range(2):
        for i, row in enumerate(pq.read_table(work / "docs" / f"{r:05d}.parquet").to_pylist()):
            keys[node_of(r, i)] = survivor_order(row["dump"], row["id"], row["exact_key"])
    decisions = resolve_clusters(union_find, {n: keys[n] for n in union_find.parent}, exact=True)
    write_decisions(str(work), range(2), decisions)
    assert written_decisions(work) == reference_decisions(work, ["pairs", "exact_pairs"], exact=True)


def test_documents_equal_in_dump_id_and_text_are_ordered_by_position():
    """The only case the survivor rule leaves open: the earlier position (rank, index) survives."""
    nodes, labels = components(np.array([node_of(3, 5)]), np.array([node_of(1, 9)]))
    same = np.zeros(2, np.int64)
    decisions = decide(nodes, labels, same, same, np.array([7, 7], np.uint64), exact=True)
    assert decisions.nodes.tolist() == [node_of(1, 9), node_of(3, 5)]
    assert decisions.reason.tolist() == [0, 1] and decisions.survivor.tolist() == [0]
    assert decisions.cluster.tolist() == [0, 0] and decisions.cluster_size.tolist() == [2]


def test_no_pairs_writes_an_empty_decisions_file_per_task(tmp_path):
    work = planted_work(tmp_path / "work", docs_per_rank=100, ranks=3)
    for sub in ("pairs", "exact_pairs"):
        for path in (work / sub).glob("*.dups"):
            path.unlink()
    DuplicateClusters(str(work), ["pairs", "exact_pairs"]).run()
    tables = [pq.read_table(work / "clusters" / f"{r:05d}.parquet") for r in range(3)]
    assert [t.num_rows for t in tables] == [0, 0, 0]
    assert tables[0].column_names == ["index", "reason", "kept_id", "cluster_id", "cluster_size"]


PEAK_RSS_MB = 'int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024'


def _cluster_step_memory_mb(work: Path) -> tuple[float, float]:
    """(peak RSS after the imports, peak RSS after the step) of a fresh process running the cluster step.

    The process's own high-water mark (VmHWM): getrusage's ru_maxrss would start at this test process's size,
    which Linux carries into a child across fork and exec."""
    code = (
        "import sys; from winnow.blocks.dedup.clusters import DuplicateClusters; import scipy.sparse.csgraph; "
        f"before = {PEAK_RSS_MB}; DuplicateClusters(sys.argv[1], ['pairs', 'exact_pairs']).run(); "
        f"print(before, {PEAK_RSS_MB})"
    )
    result = subprocess.run([sys.executable, "-c", code, str(work)], check=True, capture_output=True, text=True)
    before, after = map(float, result.stdout.split()[-2:])
    return before, after


@pytest.mark.slow
def test_cluster_step_memory_is_arrays_not_python_objects(tmp_path):
    """~210k duplicated documents in ~0.5 M pairs: the step itself needs < 0.6 KB per duplicated document, fixed
    costs (Parquet decoding buffers, ≈ 0.45-0.52 KB here at this size) included; the Python-object engine needed
    ~0.75 KB (benchmarks/bench_clusters.py measures both at 1-10 M pairs, where the new engine needs 0.1 KB)."""
    work = planted_work(tmp_path / "work", docs_per_rank=75_000, seed=1)
    pairs = sum(p.stat().st_size for p in work.rglob("*.dups")) // 16
    imports, peak = _cluster_step_memory_mb(work)
    duplicated = sum(pq.read_metadata(p).num_rows for p in (work / "clusters").glob("*.parquet"))
    assert pairs > 400_000 and duplicated > 200_000
    assert (peak - imports) * 2**20 / duplicated < 600, f"{peak - imports:.0f} MB for {duplicated:,} documents"
