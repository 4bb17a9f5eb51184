"""Writers: Parquet with one explicit schema per stage (FineWeb's columns, or FineWeb-Edu's), in a flat or FineWeb
layout, and the threshold-subset writer."""

from winnow.blocks.writers.parquet import (
    COLUMN_SETS,
    FINEWEB_COLUMNS,
    FINEWEB_EDU_COLUMNS,
    LAYOUTS,
    DocumentParquetWriter,
    ExcludedParquetWriter,
    FineWebParquetWriter,
    ScoredParquetWriter,
    fineweb_edu_schema,
    fineweb_schema,
)
from winnow.blocks.writers.subsets import EduSubsetWriter

__all__ = [
    "COLUMN_SETS",
    "FINEWEB_COLUMNS",
    "FINEWEB_EDU_COLUMNS",
    "LAYOUTS",
    "DocumentParquetWriter",
    "EduSubsetWriter",
    "ExcludedParquetWriter",
    "FineWebParquetWriter",
    "ScoredParquetWriter",
    "fineweb_edu_schema",
    "fineweb_schema",
]
