"""FineWeb's filter stack as datatrove blocks, each usable alone in any datatrove pipeline.

`FILTERS` maps the names used in configs (`filters.enabled`, `filters.<name>.<argument>`) to the block class;
`FINEWEB_PRESET` holds the arguments FineWeb ran with where they differ from the class defaults.
`build_filter(name, overrides, ...)` checks overrides against the class's constructor (names and types) before any
work starts; `check_overrides` does the same for a whole `filters:` section, at config load.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

from winnow.blocks.filters.c4 import C4Quality
from winnow.blocks.filters.decontamination import DecontaminationFilter, normalize_words
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
    """An unknown filter name or argument, or a value of the wrong type, in the configuration."""


def filter_arguments(name: str) -> list[str]:
    if name not in FILTERS:
        raise FilterConfigError(f"filters.{name}: unknown filter (known: {', '.join(FILTERS)})")
    params = inspect.signature(FILTERS[name].__init__).parameters
    return [p for p in params if p not in RESERVED_ARGS]


def check_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Raise FilterConfigError (one line) for an unknown filter name, an unknown constructor argument or a value the
    argument's type refuses; return the overrides with each value converted to that type (a YAML list → a tuple)."""
    checked = {}
    for name, args in overrides.items():
        known = filter_arguments(name)
        for arg in args:
            if arg not in known:
                raise FilterConfigError(f"filters.{name}.{arg}: unknown argument (known: {', '.join(known)})")
        checked[name] = {arg: _checked_value(name, arg, value) for arg, value in args.items()}
    return checked


def build_filter(name: str, overrides: dict[str, Any] | None = None, exclusion_writer=None, **shared):
    """The block for `name` with FineWeb's preset, then `overrides`, then `shared` args it accepts."""
    checked = check_overrides({name: overrides or {}})[name]
    accepted = inspect.signature(FILTERS[name].__init__).parameters
    args = {**FINEWEB_PRESET.get(name, {}), **checked}
    args.update({k: v for k, v in shared.items() if k in accepted and k not in args})
    return FILTERS[name](exclusion_writer=exclusion_writer, **args)


# ------------------------------------------------------------------------------------------------ argument types


def _checked_value(name: str, arg: str, value: Any) -> Any:
    """`value` as the type `arg` declares (pydantic, lax: "5" → 5, [..] → tuple), and where the hint says nothing
    of the items (a bare `tuple`) or there is none, with the type of its default. A YAML true/false is never taken
    for a number."""
    annotation, default = _declaration(FILTERS[name], arg)
    given = value
    try:
        adapter = TypeAdapter(annotation) if annotation is not inspect.Parameter.empty else None
    except PydanticSchemaGenerationError:  # a type pydantic cannot check: judge by the default alone
        adapter = None
    if adapter is not None:
        try:
            value = adapter.validate_python(value, strict=True if isinstance(value, bool) else None)
        except ValidationError:
            raise FilterConfigError(
                f"filters.{name}.{arg}: expected {_type_name(annotation)} (got {given!r})"
            ) from None
        if annotation not in (tuple, list):
            return value
    if not _like_default(value, default):
        raise FilterConfigError(f"filters.{name}.{arg}: expected {_default_type_name(default)} (got {given!r})")
    return tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value


def _declaration(cls: type, arg: str) -> tuple[Any, Any]:
    """(type hint, default) of `arg` in the `__init__` that declares it: ours, or the datatrove class it subclasses
    when ours passes it on through **kwargs. `inspect.Parameter.empty` for what is not there."""
    empty = inspect.Parameter.empty
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        param = inspect.signature(init).parameters.get(arg) if init is not None else None
        if param is None or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        try:  # string annotations (`from __future__ import annotations`) are resolved in the class's module
            hints = typing.get_type_hints(init)
        except (NameError, TypeError, AttributeError):  # an annotation naming something its module lacks
            hints = {}
        return hints.get(arg, empty), param.default
    return empty, empty


def _like_default(value: Any, default: Any) -> bool:
    """Whether `value` has the type of an argument's default (None or no default: anything goes). A sequence
    default is a list of like items, or, when its items differ in type (`(2, 0.2)`), a record of that shape."""
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            return False
        if _is_record(default):
            return len(value) == len(default) and all(map(_like_default, value, default))
        return not default or all(_like_default(v, default[0]) for v in value)
    return isinstance(value, type(default))


def _is_record(default: tuple | list) -> bool:
    return len({type(item) for item in default}) > 1


def _default_type_name(default: Any) -> str:
    if isinstance(default, (tuple, list)):
        if _is_record(default):
            return "[" + ", ".join(map(_default_type_name, default)) + "]"
        return f"a list of {_default_type_name(default[0])}" if default else "a list"
    return {bool: "true or false", float: "a number"}.get(type(default), type(default).__name__)


def _type_name(annotation: Any) -> str:
    """A type hint as a user reads it: `int | None` → "int or null", `list[str]` → "list[str]"."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


__all__ = [
    "C4Quality",
    "DecontaminationFilter",  # not in FILTERS: it needs benchmark items (the decontaminate stage builds it)
    "normalize_words",
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
