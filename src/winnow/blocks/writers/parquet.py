"""Parquet writers with one explicit schema, so every file of a stage has the same flat columns.

Base output (FineWeb's schema): text, id, dump, url, date, file_path, language, language_score, token_count.
Removed and failed documents: the same columns plus `filter_reason`. Scored documents (the subsets) carry every
column they arrive with, or exactly FineWeb-Edu's (`columns="fineweb-edu"`).

Where the files go is a layout (LAYOUTS): `flat`, one `${rank}.parquet` per task at the top of the folder, or
`fineweb`, FineWeb's `data/<dump>/000_<rank>.parquet`.
"""

from __future__ import annotations

import re

from datatrove.pipeline.writers import ParquetWriter

FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]
# FineWeb-Edu's published columns, in its order: FineWeb's without `date`, plus the classifier's score
FINEWEB_EDU_COLUMNS = [
    "text",
    "id",
    "dump",
    "url",
    "file_path",
    "language",
    "language_score",
    "token_count",
    "score",
    "int_score",
]

# layout name → (file name template, max_file_size in bytes; -1 = one file per task)
LAYOUTS = {
    "flat": ("${rank}.parquet", -1),
    # datatrove prefixes a file counter (000_, 001_, ...) when max_file_size is set: FineWeb's names,
    # e.g. data/CC-MAIN-2024-10/000_00000.parquet; 5 GB is datatrove's ParquetWriter default
    "fineweb": ("data/${dump}/${rank}.parquet", 5 * 2**30),
}
# column set name → what a scored document's row holds (ScoredParquetWriter)
COLUMN_SETS = {
    "winnow": "every column the document carries (types inferred from its first row)",
    "fineweb-edu": "exactly FineWeb-Edu's columns and Arrow types (FINEWEB_EDU_COLUMNS)",
}


def fineweb_schema(with_reason: bool = False):
    import pyarrow as pa

    fields = [
        ("text", pa.string()),
        ("id", pa.string()),
        ("dump", pa.string()),
        ("url", pa.string()),
        ("date", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("token_count", pa.int64()),
    ]
    if with_reason:
        fields.append(("filter_reason", pa.string()))
    return pa.schema(fields)


def fineweb_edu_schema():
    """FineWeb-Edu's Arrow schema, so a subset concatenates with the published dataset."""
    import pyarrow as pa

    types = {"language_score": pa.float64(), "token_count": pa.int64(), "score": pa.float64(), "int_score": pa.int64()}
    return pa.schema([(name, types.get(name, pa.string())) for name in FINEWEB_EDU_COLUMNS])


def _as_str(value):
    return None if value is None else str(value)


def _as(kind, value):
    return None if value is None else kind(value)


def fineweb_row(self, document) -> dict:
    """datatrove writer adapter: a Document → one flat row of the FineWeb schema (+ filter_reason if present)."""
    meta = document.metadata
    return {
        "text": document.text,
        "id": _as_str(document.id),
        "dump": _as_str(meta.get("dump")),
        "url": _as_str(meta.get("url")),
        "date": _as_str(meta.get("date")),
        "file_path": _as_str(meta.get("file_path")),
        "language": _as_str(meta.get("language")),
        "language_score": _as(float, meta.get("language_score")),
        "token_count": _as(int, meta.get("token_count")),
        "filter_reason": _as_str(meta.get("filter_reason")),
    }


def _kept_row(self, document) -> dict:
    row = fineweb_row(self, document)
    row.pop("filter_reason")
    return row


def fineweb_edu_row(self, document) -> dict:
    """datatrove writer adapter: a scored Document → one row of FineWeb-Edu's columns (no date, no minhash_*)."""
    row = fineweb_row(self, document)
    row.update(score=_as(float, document.metadata.get("score")), int_score=_as(int, document.metadata.get("int_score")))
    return {name: row[name] for name in FINEWEB_EDU_COLUMNS}


def dump_folder(dump) -> str:
    """A document's `dump` as one safe folder name (`data/<dump>/`); `unknown` when it has none."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(dump or "")).lstrip(".")
    return name or "unknown"


class DocumentParquetWriter(ParquetWriter):
    """Documents as Parquet in one of LAYOUTS: `flat` (`${rank}.parquet`) or `fineweb`
    (`data/<dump>/000_<rank>.parquet`)."""

    def __init__(self, output_folder, layout: str = "flat", **kw):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown Parquet layout {layout!r} (known: {', '.join(LAYOUTS)})")
        filename, max_file_size = LAYOUTS[layout]
        super().__init__(output_folder, filename, max_file_size=max_file_size, **kw)
        self.layout = layout

    def _get_output_filename(self, document, rank: int | str = 0, **kwargs) -> str:
        # the dump becomes a folder name: never a path of its own, never empty
        return super()._get_output_filename(
            document, rank, **{"dump": dump_folder(document.metadata.get("dump")), **kwargs}
        )


class FineWebParquetWriter(DocumentParquetWriter):
    """Kept documents in the FineWeb schema (flat columns, explicit types), by default as `${rank}.parquet`."""

    name = "📒 Parquet (FineWeb schema)"

    def __init__(self, output_folder, layout: str = "flat", compression: str = "zstd", **kw):
        super().__init__(
            output_folder, layout, compression=compression, adapter=_kept_row, schema=fineweb_schema(), **kw
        )


class ExcludedParquetWriter(ParquetWriter):
    """Removed or failed documents as `${rank}.parquet`: the FineWeb columns plus `filter_reason`."""

    name = "🗑 Parquet (removed)"

    def __init__(self, output_folder, output_filename: str = "${rank}.parquet", compression: str = "zstd", **kw):
        super().__init__(
            output_folder,
            output_filename,
            compression=compression,
            adapter=fineweb_row,
            schema=fineweb_schema(with_reason=True),
            max_file_size=-1,
            **kw,
        )


class ScoredParquetWriter(DocumentParquetWriter):
    """Scored documents with the columns of one of COLUMN_SETS: `winnow` (every column they carry, metadata
    expanded) or `fineweb-edu` (exactly FineWeb-Edu's ten columns and types)."""

    name = "📒 Parquet (scored documents)"

    def __init__(self, output_folder, layout: str = "flat", columns: str = "winnow", **kw):
        if columns not in COLUMN_SETS:
            raise ValueError(f"unknown column set {columns!r} (known: {', '.join(COLUMN_SETS)})")
        if columns == "fineweb-edu":
            kw.update(adapter=fineweb_edu_row, schema=fineweb_edu_schema())
        else:
            kw.update(expand_metadata=True)
        super().__init__(output_folder, layout, **kw)
        self.columns = columns
