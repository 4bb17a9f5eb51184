"""datatrove blocks of winnow: readers, extractors, filters, formatters, writers (one module per kind).

Names are exported lazily, so `import blocks.<module>` stays cheap for modules that do not need datatrove.
"""

_EXPORTS = {
    "WebArchiveReader": "blocks.readers",
    "EXTRACTORS": "blocks.extractors",
    "TrafilaturaExtractor": "blocks.extractors",
    "ResiliparseExtractor": "blocks.extractors",
    "build_extractor": "blocks.extractors",
    "FILTERS": "blocks.filters",
    "build_filter": "blocks.filters",
    "OfflineURLFilter": "blocks.filters",
    "FastTextLanguageFilter": "blocks.filters",
    "LanguagePrescreen": "blocks.filters",
    "GopherRepetition": "blocks.filters",
    "GopherQuality": "blocks.filters",
    "C4Quality": "blocks.filters",
    "FineWebQuality": "blocks.filters",
    "PIIFormatter": "blocks.formatters",
    "GPT2TokenCounter": "blocks.formatters",
    "FineWebParquetWriter": "blocks.writers",
    "ExcludedParquetWriter": "blocks.writers",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'blocks' has no attribute {name!r}")


__all__ = list(_EXPORTS)
