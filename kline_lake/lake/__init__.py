"""The Hive-partitioned Parquet lake on disk: writing it safely and reading it fast.

Owns: paths and partitions (`layout`), atomic file writes (`atomic`), the per-series lock
(`lock`), the writer, the only code that writes or rewrites a partition (`writer`),
the coverage record (`coverage`), finding and scanning a series' files (`scan`), the
kline time grid (`grid`), and the read side: the `Lake` catalog with DuckDB views
(`catalog`), gaps, resample, inventory, verify and compact, plus synthetic tables for
tests and benchmarks (`synthetic`).

May import: `kline_lake.core`, `kline_lake.errors`. Never the exchange or the downloader.
"""
