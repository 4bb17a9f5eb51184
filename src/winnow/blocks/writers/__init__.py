"""Writers: Parquet with one explicit schema per stage (FineWeb's columns), and the threshold-subset writer."""

from winnow.blocks.writers.parquet import FINEWEB_COLUMNS, ExcludedParquetWriter, FineWebParquetWriter, fineweb_schema
from winnow.blocks.writers.subsets import EduSubsetWriter

__all__ = ["FINEWEB_COLUMNS", "EduSubsetWriter", "ExcludedParquetWriter", "FineWebParquetWriter", "fineweb_schema"]
