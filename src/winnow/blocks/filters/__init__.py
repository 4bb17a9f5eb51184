"""FineWeb's filter stack as datatrove blocks, each usable alone in any datatrove pipeline.

`FILTERS` maps the names used in configs (`filters.enabled`, `filters.<name>.<argument>`) to the block class;
`FINEWEB_PRESET` holds the arguments FineWeb ran with where they differ from the class defaults.
`build_filter(name, overrides, ...)` checks overrides against the class's constructor before any work starts.
"""

from __future__ import annotations

import inspect
from typing import Any

from winnow.blocks.filters.c4 import C4Quality
from winnow.blocks.filters.fineweb import FineWebQuality
from winnow.blocks.filters.gopher import GopherQuality, GopherRepetition
from winnow.blocks.filters.language import FastTextLanguageFilter, LanguagePrescreen, lid176_path
from winnow.blocks.filters.url import OfflineURLFilter

FILTERS: dict[str, type] = {
    "url": OfflineURLFilter,
    "language_prescreen": LanguagePrescreen,  # on the HTML, before a slow extractor; added by the base stage
    "language": FastTextLanguageFilter,
    "gopher_repetition": GopherRepetition,
    "gopher_quality": GopherQuality,
    "c4_quality": C4Quality,
    "fineweb_quality": FineWebQuality,
}

# FineWeb's published pipeline (datatrove examples/fineweb.py) where it differs from today's class defaults:
# C4 without its terminal-punctuation rule; FineWeb's line-punctuation rule with the stop characters of the
# datatrove release FineWeb ran (datatrove 0.10.1 uses 159 multilingual marks but no quotes, and then removes
# documents FineWeb kept whose lines end in quotes: 4 of 1,998 in fineweb-edu-llama3).
FINEWEB_PRESET: dict[str, dict[str, Any]] = {
    "c4_quality": {"filter_no_terminal_punct": False},
    "fineweb_quality": {"stop_chars": (".", "'", '"', "!", "?")},
}

# arguments the stage sets itself (not user overrides)
RESERVED_ARGS = {"self", "exclusion_writer", "kwargs", "args", "word_splitter"}  # word_splitter: filters.word_splitter


class FilterConfigError(ValueError):
    """An unknown filter name or argument in the configuration."""


def filter_arguments(name: str) -> list[str]:
    if name not in FILTERS:
        raise FilterConfigError(f"filters.{name}: unknown filter (known: {', '.join(FILTERS)})")
    params = inspect.signature(FILTERS[name].__init__).parameters
    return [p for p in params if p not in RESERVED_ARGS]


def check_overrides(overrides: dict[str, dict[str, Any]]) -> None:
    """Raise FilterConfigError (one line) for an unknown filter name or constructor argument."""
    for name, args in overrides.items():
        known = filter_arguments(name)
        for arg in args:
            if arg not in known:
                raise FilterConfigError(f"filters.{name}.{arg}: unknown argument (known: {', '.join(known)})")


def build_filter(name: str, overrides: dict[str, Any] | None = None, exclusion_writer=None, **shared):
    """The block for `name` with FineWeb's preset, then `overrides`, then `shared` args it accepts."""
    check_overrides({name: overrides or {}})
    accepted = inspect.signature(FILTERS[name].__init__).parameters
    args = {**FINEWEB_PRESET.get(name, {}), **(overrides or {})}
    args.update({k: v for k, v in shared.items() if k in accepted and k not in args})
    return FILTERS[name](exclusion_writer=exclusion_writer, **args)


__all__ = [
    "C4Quality",
    "FineWebQuality",
    "GopherQuality",
    "GopherRepetition",
    "FILTERS",
    "FINEWEB_PRESET",
    "FilterConfigError",
    "build_filter",
    "check_overrides",
    "filter_arguments",
    "FastTextLanguageFilter",
    "LanguagePrescreen",
    "OfflineURLFilter",
    "lid176_path",
]
