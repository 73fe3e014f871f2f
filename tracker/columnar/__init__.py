"""The columnar store: closed days of each site as Parquet parts, read with DuckDB.

See docs/ARCHITECTURE.md, "Columnar store".
"""
