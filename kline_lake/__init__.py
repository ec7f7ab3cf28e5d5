"""kline-lake: Binance klines, aggregate trades and funding into a Hive-partitioned Parquet lake."""

from __future__ import annotations

__all__ = ["Lake"]


def __getattr__(name: str):
    # `from kline_lake import Lake` without importing DuckDB/Polars for every CLI call.
    if name == "Lake":
        from kline_lake.lake.catalog import Lake

        return Lake
    raise AttributeError(name)
