"""MinHash near-duplicates among synthetic generations and against their seeds, in memory, in one task.

The dedup stage's shingles (winnow.blocks.dedup.minhash: FineWeb's normalisation, spaCy-compatible words,
word 5-grams hashed with xxhash64) and its in-memory engine's index (datasketch MinHash + MinHashLSH with the
same banding, `num_buckets` bands of `hashes_per_bucket` rows; FineWeb's 14 × 8 flags pairs above Jaccard ≈ 0.72).

The references (the seed documents' extracts) are indexed first and are never dropped; then each generation,
in input order, is dropped when it collides with a reference (`near_duplicate_of_seed`: the model copied its
seed) or with an earlier kept generation (`near_duplicate`), and is indexed otherwise. The first of a group of
near-identical generations is the one kept, so the result does not depend on anything but the input order.

In memory by design: a synthetic set is orders of magnitude smaller than a crawl (datasketch holds ~1 kB per
document: a million generations fit in ~1 GB); for more, run the dedup stage's sharded engine on the output.
"""

from __future__ import annotations

from datatrove.pipeline.filters.base_filter import BaseFilter
from xxhash import xxh64_intdigest

from winnow.blocks.dedup.minhash import FastWordSplitter, normalized_chunks

NEAR_DUPLICATE = "near_duplicate"
NEAR_DUPLICATE_OF_SEED = "near_duplicate_of_seed"


class SyntheticNearDuplicates(BaseFilter):
    name = "🫂 synthetic near-duplicates"
    _requires_dependencies = ["datasketch"]

    def __init__(
        self,
        references=None,  # a datatrove reader (or any iterable of Documents) of texts to compare against
        n_grams: int = 5,  # FineWeb: word 5-grams
        num_buckets: int = 14,  # FineWeb: 14 bands ...
        hashes_per_bucket: int = 8,  # ... of 8 hashes
        seed: int = 1,
        language: str = "en",
        exclusion_writer=None,
    ):
        super().__init__(exclusion_writer)
        self.references = references
        self.n_grams = n_grams
        self.num_buckets = num_buckets
        self.hashes_per_bucket = hashes_per_bucket
        self.seed = seed
        self.language = language
        self._index = None

    def _minhash(self, text: str):
        from datasketch import MinHash

        words = self._splitter.split_chunks(normalized_chunks(text or ""))
        n = self.n_grams
        if len(words) < n:
            return None
        minhash = MinHash(num_perm=self._num_perm, hashfunc=xxh64_intdigest, permutations=self._permutations)
        minhash.update_batch(map(" ".join, zip(*(words[i:] for i in range(n)))))
        return minhash

    def _build_index(self):
        from datasketch import MinHash, MinHashLSH

        self._num_perm = self.num_buckets * self.hashes_per_bucket
        self._permutations = MinHash(num_perm=self._num_perm, seed=self.seed).permutations
        self._splitter = FastWordSplitter(self.language)
        self._index = MinHashLSH(num_perm=self._num_perm, params=(self.num_buckets, self.hashes_per_bucket))
        self._kept = 0
        references = self.references.run() if hasattr(self.references, "run") else (self.references or [])
        for i, doc in enumerate(references):
            minhash = self._minhash(doc.text)
            if minhash is not None:
                self._index.insert(("reference", i), minhash, check_duplication=False)
                self.stat_update("references")

    def run(self, data, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("SyntheticNearDuplicates compares every generation with every other: run it as one task")
        return super().run(data, rank, world_size)

    def filter(self, doc) -> bool | tuple[bool, str]:
        if self._index is None:
            self._build_index()
        minhash = self._minhash(doc.text)
        if minhash is None:
            self.stat_update("too_short_for_minhash")
            return True
        hits = self._index.query(minhash)
        if any(kind == "reference" for kind, _ in hits):
            return False, NEAR_DUPLICATE_OF_SEED
        if hits:
            return False, NEAR_DUPLICATE
        self._index.insert(("generation", self._kept), minhash, check_duplication=False)
        self._kept += 1
        return True
