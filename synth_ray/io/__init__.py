"""Data in and out: readers with rejects, Parquet writers, stable ids, run layout."""
