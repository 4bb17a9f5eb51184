"""Main-text extractors (HTML → plain text) that account for every document, as datatrove blocks.

`EXTRACTORS` is the one list of extractor names: `extract.extractor` in a config, `winnow eval-extract
--extractor`, the docs and the tests all read it. Adding an extractor is one module beside this file
(a subclass of `base.AccountedExtractor` with an `extract(html) -> str`) and one line below.
"""

from __future__ import annotations

from collections.abc import Callable

from winnow.blocks.extractors.base import AccountedExtractor, CpuTimeout, ExtractionTimeout
from winnow.blocks.extractors.fast import FastExtractor
from winnow.blocks.extractors.resiliparse import ResiliparseExtractor
from winnow.blocks.extractors.trafilatura import TrafilaturaExtractor

EXTRACTORS: dict[str, Callable[..., AccountedExtractor]] = {
    "trafilatura": TrafilaturaExtractor,
    "resiliparse": ResiliparseExtractor,
    "fast": FastExtractor,
}


def build_extractor(name: str, timeout: float = 1.0, favour_precision: bool = True, **kwargs):
    if name not in EXTRACTORS:
        raise KeyError(f"unknown extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name](timeout=timeout, favour_precision=favour_precision, **kwargs)


__all__ = [
    "EXTRACTORS",
    "AccountedExtractor",
    "CpuTimeout",
    "ExtractionTimeout",
    "FastExtractor",
    "ResiliparseExtractor",
    "TrafilaturaExtractor",
    "build_extractor",
]
