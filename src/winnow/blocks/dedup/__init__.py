"""FineWeb's MinHash deduplication as datatrove blocks, with two engines that write the same decisions.

    sharded (datatrove engine):  minhash.MinhashSignatures → datatrove MinhashDedupBuckets → clusters.DuplicateClusters
    in memory (datasketch):      datasketch.DatasketchDedup
    both:                        filter.DuplicateFilter (+ filter.DedupParquetWriter)

`base` holds what the engines share (document nodes, the survivor rule, union-find, the decisions file).
"""

from winnow.blocks.dedup.clusters import DuplicateClusters
from winnow.blocks.dedup.datasketch import DatasketchDedup
from winnow.blocks.dedup.filter import DedupParquetWriter, DuplicateFilter
from winnow.blocks.dedup.minhash import MinhashSignatures

__all__ = ["DatasketchDedup", "DedupParquetWriter", "DuplicateClusters", "DuplicateFilter", "MinhashSignatures"]
