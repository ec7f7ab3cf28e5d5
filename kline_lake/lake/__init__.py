"""The Hive-partitioned Parquet lake on disk: writing it safely and reading it fast.

Owns: paths and partitions (`layout`), atomic file writes (`atomic`), the per-series lock
(`lock`), the writer, the only code that writes or rewrites a partition (`writer`),
the coverage record (`coverage`), finding and scanning a series' files (`scan`), the
kline time grid (`grid`), which series the lake holds (`holdings`), and the read side:
the `Lake` catalog with DuckDB views (`catalog`), gaps of klines (`gaps`) and of funding
and aggregate trades (`event_gaps`), resample, inventory, verify with its value checks
(`sanity`) and compact, plus synthetic tables for tests and benchmarks (`synthetic`).

May import: `kline_lake.core`, `kline_lake.errors`. Never the exchange or the downloader.
"""
