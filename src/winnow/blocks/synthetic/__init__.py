"""Post-processing of synthetic generations as datatrove filters, each usable alone in any datatrove pipeline.

    GenerationFailed        drops rows whose request failed (status column), reason `generation_failed`
    TruncatedGeneration     drops generations cut by the token limit without an ending, reason `truncated`
    SyntheticNearDuplicates drops MinHash near-duplicates of an earlier generation (`near_duplicate`) or of a
                            reference text such as the generation's seed (`near_duplicate_of_seed`)

Like every block, they know only datatrove documents and their metadata (`status`, `finish_reason`).
"""

from winnow.blocks.synthetic.filters import GenerationFailed, TruncatedGeneration
from winnow.blocks.synthetic.near_duplicates import SyntheticNearDuplicates

__all__ = ["GenerationFailed", "SyntheticNearDuplicates", "TruncatedGeneration"]
