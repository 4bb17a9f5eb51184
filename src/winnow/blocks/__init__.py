"""datatrove blocks of winnow, one subpackage (or module) per kind: readers, extractors/, filters/, formatters,
dedup/, scorers/, writers/, synthetic/. Each block is a datatrove PipelineStep usable in any datatrove pipeline;
this package imports nothing else of winnow.

Names are exported lazily, so `import winnow.blocks.<module>` stays cheap for modules that do not need datatrove.
"""

_EXPORTS = {
    "WebArchiveReader": "winnow.blocks.readers",
    "StreamingParquetReader": "winnow.blocks.readers",
    "EXTRACTORS": "winnow.blocks.extractors",
    "TrafilaturaExtractor": "winnow.blocks.extractors",
    "ResiliparseExtractor": "winnow.blocks.extractors",
    "build_extractor": "winnow.blocks.extractors",
    "FILTERS": "winnow.blocks.filters",
    "build_filter": "winnow.blocks.filters",
    "OfflineURLFilter": "winnow.blocks.filters",
    "FastTextLanguageFilter": "winnow.blocks.filters",
    "LanguagePrescreen": "winnow.blocks.filters",
    "GopherRepetition": "winnow.blocks.filters",
    "GopherQuality": "winnow.blocks.filters",
    "C4Quality": "winnow.blocks.filters",
    "FineWebQuality": "winnow.blocks.filters",
    "PIIFormatter": "winnow.blocks.formatters",
    "GPT2TokenCounter": "winnow.blocks.formatters",
    "MinhashSignatures": "winnow.blocks.dedup",
    "DuplicateClusters": "winnow.blocks.dedup",
    "DuplicateFilter": "winnow.blocks.dedup",
    "DatasketchDedup": "winnow.blocks.dedup",
    "EduScorer": "winnow.blocks.scorers",
    "EduSubsetWriter": "winnow.blocks.writers",
    "FineWebParquetWriter": "winnow.blocks.writers",
    "DocumentParquetWriter": "winnow.blocks.writers",
    "ScoredParquetWriter": "winnow.blocks.writers",
    "ExcludedParquetWriter": "winnow.blocks.writers",
    "GenerationFailed": "winnow.blocks.synthetic",
    "TruncatedGeneration": "winnow.blocks.synthetic",
    "SyntheticNearDuplicates": "winnow.blocks.synthetic",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'winnow.blocks' has no attribute {name!r}")


__all__ = list(_EXPORTS)
