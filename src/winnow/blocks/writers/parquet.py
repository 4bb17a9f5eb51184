"""Parquet writers with one explicit schema, so every file of a stage has the same flat columns.

Base output (FineWeb's schema): text, id, dump, url, date, file_path, language, language_score, token_count.
Removed and failed documents: the same columns plus `filter_reason`.
"""

from __future__ import annotations

from datatrove.pipeline.writers import ParquetWriter

FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]


def fineweb_schema(with_reason: bool = False):
    import pyarrow as pa

    fields = [
        ("text", pa.string()), ("id", pa.string()), ("dump", pa.string()), ("url", pa.string()),
        ("date", pa.string()), ("file_path", pa.string()), ("language", pa.string()),
        ("language_score", pa.float64()), ("token_count", pa.int64()),
    ]
    if with_reason:
        fields.append(("filter_reason", pa.string()))
    return pa.schema(fields)


def _as_str(value):
    return None if value is None else str(value)


def fineweb_row(self, document) -> dict:
    """datatrove writer adapter: a Document → one flat row of the FineWeb schema (+ filter_reason if present)."""
    meta = document.metadata
    score = meta.get("language_score")
    count = meta.get("token_count")
    return {
        "text": document.text, "id": _as_str(document.id), "dump": _as_str(meta.get("dump")),
        "url": _as_str(meta.get("url")), "date": _as_str(meta.get("date")),
        "file_path": _as_str(meta.get("file_path")), "language": _as_str(meta.get("language")),
        "language_score": None if score is None else float(score),
        "token_count": None if count is None else int(count),
        "filter_reason": _as_str(meta.get("filter_reason")),
    }


def _kept_row(self, document) -> dict:
    row = fineweb_row(self, document)
    row.pop("filter_reason")
    return row


class FineWebParquetWriter(ParquetWriter):
    """Kept documents as `${rank}.parquet` in the FineWeb schema (flat columns, explicit types)."""

    name = "📒 Parquet (FineWeb schema)"

    def __init__(self, output_folder, output_filename: str = "${rank}.parquet", compression: str = "zstd", **kw):
        super().__init__(output_folder, output_filename, compression=compression, adapter=_kept_row,
                         schema=fineweb_schema(), max_file_size=-1, **kw)


class ExcludedParquetWriter(ParquetWriter):
    """Removed or failed documents as `${rank}.parquet`: the FineWeb columns plus `filter_reason`."""

    name = "🗑 Parquet (removed)"

    def __init__(self, output_folder, output_filename: str = "${rank}.parquet", compression: str = "zstd", **kw):
        super().__init__(output_folder, output_filename, compression=compression, adapter=fineweb_row,
                         schema=fineweb_schema(with_reason=True), max_file_size=-1, **kw)
