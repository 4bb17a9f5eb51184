"""The in-memory dedup engine: datasketch's MinHash and MinHashLSH on one node, for small and medium corpora.

One task reads every document (in the same task order as the filter step will), computes the same
shingles as the sharded engine (FineWeb's normalisation, word 5-grams, xxhash64), lets datasketch
compute a `num_buckets * hashes_per_bucket` MinHash with its own permutations and finds collisions
with `MinHashLSH(params=(num_buckets, hashes_per_bucket))` — the same banding as the sharded engine.
Exact duplicates (same normalised text) are joined before MinHash and never enter the LSH index.
It then writes the same `docs/` and `clusters/` files as the sharded engine, so the same
`DuplicateFilter` step produces the output.

The two engines differ only in their random permutations (and datasketch keeps 32 bits of each
hash value), so they can disagree on pairs near the LSH threshold (Jaccard ≈ 0.6-0.8); see
tests/test_dedup.py for the measured agreement.
"""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.typeshelper import StatHints
from xxhash import xxh64_intdigest

from winnow.blocks.dedup.base import UnionFind, node_of, resolve_clusters, survivor_order, write_decisions
from winnow.blocks.dedup.minhash import FastWordSplitter, exact_key, normalized_chunks


class TooManyDocumentsError(RuntimeError):
    """The corpus is larger than the in-memory engine accepts."""


def refusal_message(n_documents: int, limit: int) -> str:
    return (
        f"the datasketch engine keeps every signature in memory and accepts at most "
        f"dedup.max_documents_in_memory={limit:,} documents; this corpus has {n_documents:,}. "
        "Use dedup.engine=datatrove (sharded, bounded memory) or raise the limit if you have the RAM."
    )


class DatasketchDedup(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🧮 datasketch MinHashLSH dedup"

    def __init__(
        self,
        reader,
        work_folder,
        tasks: int,
        config: MinhashConfig | None = None,
        language: str = "en",
        scope: str = "per_dump",
        exact: bool = True,
        max_documents: int = 2_000_000,
    ):
        super().__init__()
        self.reader = reader
        self.work_folder = work_folder
        self.tasks = tasks
        self.config = config or MinhashConfig()
        self.language = language
        self.scope = scope
        self.exact = exact
        self.max_documents = max_documents

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        import pyarrow as pa
        import pyarrow.parquet as pq
        from datasketch import MinHash, MinHashLSH

        if world_size != 1:
            raise ValueError("the datasketch engine runs as one task")
        num_perm = self.config.num_buckets * self.config.hashes_per_bucket
        permutations = MinHash(num_perm=num_perm, seed=self.config.seed).permutations
        splitter = FastWordSplitter(self.language)
        indexes: dict[str | None, MinHashLSH] = {}
        first_with_text: dict[int, int] = {}
        union_find = UnionFind()
        keys: dict[int, tuple] = {}
        folder = get_datafolder(self.work_folder)
        schema = pa.schema([("id", pa.string()), ("dump", pa.string()), ("exact_key", pa.uint64())])
        seen = 0
        with self.track_time():
            for task in range(self.tasks):  # the filter step's task order: document i of task t is node (t, i)
                columns: dict[str, list] = {"id": [], "dump": [], "exact_key": []}
                for index, doc in enumerate(self.reader.run(rank=task, world_size=self.tasks)):
                    seen += 1
                    if seen > self.max_documents:
                        raise TooManyDocumentsError(refusal_message(seen, self.max_documents))
                    self.stat_update(StatHints.total)
                    node = node_of(task, index)
                    dump = doc.metadata.get("dump")
                    scope = (dump or "") if self.scope == "per_dump" else None
                    chunks = normalized_chunks(doc.text or "", self.config.norm_config)
                    text_key = exact_key(" ".join(chunks), scope)
                    keys[node] = survivor_order(dump, str(doc.id), text_key)
                    for column, value in zip(columns, (str(doc.id), dump, text_key)):
                        columns[column].append(value)
                    if self.exact:
                        earlier = first_with_text.setdefault(text_key, node)
                        if earlier != node:
                            union_find.union(earlier, node)
                            self.stat_update("exact_match")
                            continue
                    words = splitter.split_chunks(chunks)
                    n = self.config.n_grams
                    if len(words) < n:
                        self.stat_update("too_short_for_minhash")
                        continue
                    minhash = MinHash(num_perm=num_perm, hashfunc=xxh64_intdigest, permutations=permutations)
                    minhash.update_batch(map(" ".join, zip(*(words[i:] for i in range(n)))))
                    index_lsh = indexes.get(scope)
                    if index_lsh is None:
                        index_lsh = indexes[scope] = MinHashLSH(
                            num_perm=num_perm, params=(self.config.num_buckets, self.config.hashes_per_bucket)
                        )
                    for other in index_lsh.query(minhash):
                        union_find.union(other, node)
                        self.stat_update("lsh_match")
                    index_lsh.insert(node, minhash, check_duplication=False)
                with folder.open(f"docs/{task:05d}.parquet", "wb") as f:
                    pq.write_table(pa.table(columns, schema=schema), f)
            cluster_keys = {node: keys[node] for node in union_find.parent}
            del keys
            decisions = resolve_clusters(union_find, cluster_keys, self.exact)
            write_decisions(self.work_folder, range(self.tasks), decisions)
        return iter(())
